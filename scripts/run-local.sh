#!/usr/bin/env bash
# Run coldchain on the example configuration with a private mosquitto and InfluxDB.
#
#   scripts/run-local.sh            # Ctrl-C stops all three (coldchain first)
#
# mosquitto listens on 127.0.0.1:${MQTT_PORT:-11883}, InfluxDB on 127.0.0.1:${INFLUX_PORT:-18086},
# coldchain's HTTP (health, metrics, /api/) on 127.0.0.1:${API_PORT:-8080}; their data lives under
# ${VAR_DIR:-var}/. The configuration coldchain runs on is written to ${VAR_DIR:-var}/local/coldchain.toml:
# examples/coldchain.toml with these ports and absolute state paths, so CLI commands given
# `--config var/local/coldchain.toml` talk to this stack (edit the example, not the copy).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

MQTT_PORT=${MQTT_PORT:-11883}
INFLUX_PORT=${INFLUX_PORT:-18086}
API_PORT=${API_PORT:-8080}
RPC_PORT=${RPC_PORT:-18088}
VAR=$(mkdir -p "${VAR_DIR:-var}" && cd "${VAR_DIR:-var}" && pwd)
LOCAL=$VAR/local
mkdir -p "$VAR/mosquitto" "$VAR/influxdb" "$LOCAL"

cat > "$VAR/mosquitto/mosquitto.conf" <<CONF
user $(id -un)
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $VAR/mosquitto/
# never drop QoS-1 messages queued for coldchain's persistent session
max_queued_messages 1000000
max_queued_bytes 1073741824
# coldchain's Maximum Packet Size (64 KiB payload + 4 KiB): bigger publishes are refused at the publisher
max_packet_size 69632
log_dest file $VAR/mosquitto/mosquitto.log
CONF

cat > "$VAR/influxdb/influxdb.conf" <<CONF
reporting-disabled = true
reporting-enabled = false
bind-address = "127.0.0.1:$RPC_PORT"
[meta]
  dir = "$VAR/influxdb/meta"
[data]
  dir = "$VAR/influxdb/data"
  wal-dir = "$VAR/influxdb/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
[monitor]
  store-enabled = false
CONF

# The effective configuration: the example's text with this stack's addresses and state paths.
.venv/bin/python - examples/coldchain.toml "$LOCAL/coldchain.toml" <<PY
import sys
source, target = sys.argv[1], sys.argv[2]
text = open(source, encoding="utf-8").read()
for old, new in [
    ('url = "mqtt://127.0.0.1:1883"', 'url = "mqtt://127.0.0.1:$MQTT_PORT"'),
    ('url = "http://127.0.0.1:8086"', 'url = "http://127.0.0.1:$INFLUX_PORT"'),
    ('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:$API_PORT"'),
    ('path = "var/coldchain-spool.sqlite"', 'path = "$LOCAL/spool.sqlite"'),
]:
    if text.count(old) != 1:
        sys.exit(f"run-local.sh: {source} no longer has exactly one line {old!r}; update scripts/run-local.sh")
    text = text.replace(old, new)
header = f"# Written by scripts/run-local.sh from {source} at each start: edit that file, not this one.\n"
state = '''
[rules]
state_path = "$LOCAL/rules-state.sqlite"
spool_path = "$LOCAL/rules-spool.sqlite"

[notify]
state_path = "$LOCAL/notify.sqlite"

[rollups]
state_path = "$LOCAL/rollups.sqlite"
'''
open(target, "w", encoding="utf-8").write(header + text + state)
PY
if ! checked=$(.venv/bin/coldchain check-config --config "$LOCAL/coldchain.toml" 2>&1); then
    echo "$checked" >&2
    exit 1
fi

# The servers get their own session: Ctrl-C reaches only this script and coldchain, and the servers
# are stopped after coldchain has disconnected (else it would log losing the broker).
coldchain_pid=
servers=()
stop() {
    trap - EXIT INT TERM
    if [ -n "$coldchain_pid" ]; then
        kill -TERM "$coldchain_pid" 2>/dev/null || true
        wait "$coldchain_pid" 2>/dev/null || true
    fi
    for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

setsid "$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$VAR/mosquitto/mosquitto.conf" &
servers+=($!)
setsid influxd run -config "$VAR/influxdb/influxdb.conf" >"$VAR/influxdb/influxd.log" 2>&1 &
servers+=($!)

for _ in $(seq 100); do
    if curl -sf "http://127.0.0.1:$INFLUX_PORT/ping" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
echo "mosquitto on 127.0.0.1:$MQTT_PORT, InfluxDB on 127.0.0.1:$INFLUX_PORT, coldchain's API on" \
    "127.0.0.1:$API_PORT; configuration $LOCAL/coldchain.toml; starting coldchain (Ctrl-C stops)" >&2

.venv/bin/coldchain run --config "$LOCAL/coldchain.toml" &
coldchain_pid=$!
status=0
wait "$coldchain_pid" || status=$?
coldchain_pid=
exit "$status"
