# The first commands of the README. Each installs what it needs on a fresh Debian (run as root).

.PHONY: demo test run-local

# The whole system in one process on a simulated pharmacy, in about a minute: embedded MQTT broker,
# SQLite, rules, console notifications, a live view; then the audit export. Needs only python3.
demo:
	scripts/demo.sh

# The test suite (unit, property and integration tests against real mosquitto and InfluxDB).
test:
	scripts/test.sh

# The service against a private mosquitto and InfluxDB (installed on first use), data under var/.
run-local:
	scripts/run-local.sh
