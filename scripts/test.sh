#!/usr/bin/env bash
# The test suite: unit, property and integration tests (real mosquitto and influxd, started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check coldchain tests bench
.venv/bin/mypy  # coldchain/, as [tool.mypy] in pyproject.toml says
exec .venv/bin/python -m pytest "$@"
