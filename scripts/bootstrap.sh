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
    command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # headless browser tests (ack page)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)  # export tests render report.pdf
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
# typescript and @grafana/schema as tests/grafana_schema/package-lock.json pins them; npm ci again only when
# node_modules is missing or the lock changed since (a copy of the lock installed is kept in node_modules).
schema_deps=tests/grafana_schema
if ! $runtime_only && ! cmp -s "$schema_deps/package-lock.json" "$schema_deps/node_modules/.installed-lock.json"; then
    npm ci --prefix "$schema_deps" --no-audit --no-fund --loglevel=error >/dev/null
    cp "$schema_deps/package-lock.json" "$schema_deps/node_modules/.installed-lock.json"
fi
# Debian's packages may start system services on the default ports; coldchain's tests and local
# stack start their own servers on other ports, so those services are left alone.

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
