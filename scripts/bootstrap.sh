#!/usr/bin/env bash
# Install what coldchain and its tests need on Debian (as root): the broker and database used by the
# tests and the local stack, Python's venv, then the package into .venv with pinned versions.
#
#   scripts/bootstrap.sh              # everything the tests and scripts/run-local.sh need
#   scripts/bootstrap.sh --runtime    # no servers or browser: Python and the package, enough for `coldchain demo`
set -euo pipefail
cd "$(dirname "$0")/.."
runtime_only=false
[ "${1:-}" = "--runtime" ] && runtime_only=true

missing=()
if ! $runtime_only; then
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
    command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)  # the README's mosquitto_pub
    command -v curl >/dev/null 2>&1 || missing+=(curl)  # the README's HTTP examples
    command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # headless browser tests (ack page)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)  # export tests render report.pdf
    command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)  # the deploy test verifies deploy/systemd/*.service
    command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)  # tsc checks dashboards/*.json against Grafana's schema
fi
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's packages may start system services on the default ports; coldchain's tests and local
# stack start their own servers on other ports, so those services are left alone.

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# The package is installed editable: code changes need no reinstall, only changed dependencies do.
# Skip pip when pyproject.toml and constraints.txt are what the last successful install used.
stamp=.venv/.coldchain-install-stamp
wanted=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] || [ ! -x .venv/bin/coldchain ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
    echo "$wanted" > "$stamp"
fi
# typescript and @grafana/schema as tests/grafana_schema/package-lock.json pins them (the dashboards' type
# check); npm ci again only when node_modules is missing or the lock changed since the last install.
if ! $runtime_only; then
    schema_deps=tests/grafana_schema
    lock=$(sha256sum "$schema_deps/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat .venv/.grafana-schema-stamp 2>/dev/null)" != "$lock" ] || [ ! -d "$schema_deps/node_modules" ]; then
        npm ci --prefix "$schema_deps" --no-audit --no-fund --loglevel=error >/dev/null
        echo "$lock" > .venv/.grafana-schema-stamp
    fi
fi
