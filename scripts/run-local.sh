#!/usr/bin/env bash
# Run coldchain on its embedded example configuration with a private mosquitto and InfluxDB.
#
#   scripts/run-local.sh            # Ctrl-C stops all three
#
# mosquitto listens on 127.0.0.1:${MQTT_PORT:-11883}, InfluxDB on 127.0.0.1:${INFLUX_PORT:-18086},
# coldchain's HTTP (health, metrics) on 127.0.0.1:8080; their data lives under var/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

MQTT_PORT=${MQTT_PORT:-11883}
INFLUX_PORT=${INFLUX_PORT:-18086}
RPC_PORT=${RPC_PORT:-18088}
VAR=$PWD/var
mkdir -p "$VAR/mosquitto" "$VAR/influxdb"

cat > "$VAR/mosquitto/mosquitto.conf" <<CONF
user $(id -un)
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $VAR/mosquitto/
# never drop QoS-1 messages queued for coldchain's persistent session
max_queued_messages 1000000
max_queued_bytes 1073741824
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

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$VAR/mosquitto/mosquitto.conf" &
pids+=($!)
influxd run -config "$VAR/influxdb/influxdb.conf" >"$VAR/influxdb/influxd.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do
    if curl -sf "http://127.0.0.1:$INFLUX_PORT/ping" >/dev/null 2>&1 \
        || .venv/bin/python -c "import httpx,sys; sys.exit(httpx.get('http://127.0.0.1:$INFLUX_PORT/ping').status_code != 204)" 2>/dev/null
    then break; fi
    sleep 0.1
done
echo "mosquitto on 127.0.0.1:$MQTT_PORT, InfluxDB on 127.0.0.1:$INFLUX_PORT; starting coldchain (Ctrl-C stops)" >&2

export COLDCHAIN_MQTT__URL="mqtt://127.0.0.1:$MQTT_PORT"
export COLDCHAIN_INFLUX__URL="http://127.0.0.1:$INFLUX_PORT"
.venv/bin/coldchain run --config examples/coldchain.toml &
pids+=($!)
wait "${pids[-1]}"
