#!/bin/sh
# Writes the token Prometheus presents to selfdevop from the environment (never on a
# command line) into a 0600 file on its own volume (the container is read-only, and the
# token is in the install's .env anyway), then runs Prometheus with its data there.
set -eu
: "${ALERT_RECEIVER_TOKEN:?ALERT_RECEIVER_TOKEN is not set (run install.sh)}"
umask 077
printf '%s' "$ALERT_RECEIVER_TOKEN" >/prometheus/.alert-receiver-token
unset ALERT_RECEIVER_TOKEN
exec /usr/bin/prometheus \
  --config.file=/etc/prometheus/prometheus.yml \
  --storage.tsdb.path=/prometheus \
  --storage.tsdb.retention.time="${PROMETHEUS_RETENTION:-15d}" \
  --web.listen-address=:9090 \
  --web.console.libraries=/usr/share/prometheus/console_libraries \
  --web.console.templates=/usr/share/prometheus/consoles \
  "$@"
