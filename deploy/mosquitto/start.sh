#!/bin/sh
# Start mosquitto with coldchain's own accounts written from the environment (.env), keeping the
# sensors' accounts that the password file already holds. Runs as the container's command.
set -eu

passwd=/mosquitto/auth/passwd
mkdir -p /mosquitto/auth
[ -f "$passwd" ] || : > "$passwd"

set_password() {  # user, password (empty: the account is not created)
    if [ -n "$2" ]; then
        mosquitto_passwd -b "$passwd" "$1" "$2"
    fi
}

set_password coldchain-ingest "${MQTT_INGEST_PASSWORD:?set MQTT_INGEST_PASSWORD in .env}"
set_password coldchain-rules "${MQTT_RULES_PASSWORD:?set MQTT_RULES_PASSWORD in .env}"
set_password coldchain-bags "${MQTT_BAGS_PASSWORD:-}"
set_password coldchain-alerts "${MQTT_ALERTS_PASSWORD:-}"

# The health check logs in with a password that lives only in this container.
health_password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
set_password healthcheck "$health_password"
printf '%s' "$health_password" > /mosquitto/auth/healthcheck.pw

chown -R mosquitto:mosquitto /mosquitto/auth
chmod 0700 /mosquitto/auth
chmod 0600 "$passwd" /mosquitto/auth/healthcheck.pw

exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
