#!/usr/bin/env bash
# The README's first command: coldchain on a simulated pharmacy, in one process, in about a minute.
# Needs only python3 (installed with python3-venv when missing); extra arguments go to `coldchain demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --runtime
exec .venv/bin/coldchain demo "$@"
