#!/bin/sh
# As the Prometheus image: the receiver token from the environment into a file, then run.
set -eu
: "${ALERT_RECEIVER_TOKEN:?ALERT_RECEIVER_TOKEN is not set (run install.sh)}"
umask 077
printf '%s' "$ALERT_RECEIVER_TOKEN" >/alertmanager/.alert-receiver-token
unset ALERT_RECEIVER_TOKEN
exec /usr/bin/prometheus-alertmanager \
  --config.file=/etc/alertmanager/alertmanager.yml \
  --storage.path=/alertmanager \
  --web.listen-address=:9093 \
  --cluster.listen-address= \
  "$@"
