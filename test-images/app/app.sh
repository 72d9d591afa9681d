#!/bin/sh
# Serves /www with busybox httpd after writing the files the tests read back:
#   /            "selfdevop-test app <APP_VERSION>"
#   /version     APP_VERSION alone
#   /health      "ok" (absent → 404 in unhealthy mode, or until HEALTH_DELAY_SECONDS passed)
#   /env/<NAME>  the value of every environment variable, to check env injection
case "$APP_MODE" in
  crash)
    echo "app $APP_VERSION: crashing on purpose (APP_MODE=crash)" >&2
    exit 1
    ;;
esac

mkdir -p /www/env
echo "selfdevop-test app $APP_VERSION" > /www/index.html
echo "$APP_VERSION" > /www/version
for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p'); do
  eval "printf '%s' \"\$$name\"" > "/www/env/$name"
done

port="${PORT:-8080}"
case "$APP_MODE" in
  unhealthy) ;;
  *)
    if [ "${HEALTH_DELAY_SECONDS:-0}" -gt 0 ]; then
      (sleep "$HEALTH_DELAY_SECONDS" && echo ok > /www/health.tmp && mv /www/health.tmp /www/health) &
    else
      echo ok > /www/health
    fi
    ;;
esac

echo "app $APP_VERSION listening on :$port (mode ${APP_MODE:-normal})"
busybox httpd -f -p "$port" -h /www &
httpd=$!
# Why: a shell (or httpd) as PID 1 ignores SIGTERM unless it traps it, and `docker stop`
# would then always wait out the grace period.
trap 'echo "app $APP_VERSION: SIGTERM, stopping"; kill "$httpd" 2>/dev/null; wait "$httpd"; exit 0' TERM INT
wait "$httpd"
