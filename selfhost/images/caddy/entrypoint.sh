#!/bin/sh
# Caddy keeps the routes selfdevop adds at run time only in its live config, which it
# autosaves to /config/caddy/autosave.json (a named volume). --resume starts from that
# autosave, so a restarted or recreated edge keeps serving every deployed app; the base
# config (generated: npm run edge:base-config) is used only on the very first start. The
# worker (functions/selfhost/worker.ts) keeps the control route current and puts back any
# app route the autosave lost, rebuilt from the database, at start and periodically.
set -eu
config=${CADDY_BASE_CONFIG:-/etc/caddy/caddy.json}
if [ -s /config/caddy/autosave.json ]; then
  echo "selfdevop-caddy: resuming the saved config (/config/caddy/autosave.json)" >&2
  exec caddy run --resume
fi
echo "selfdevop-caddy: first start, loading $config" >&2
exec caddy run --config "$config"
