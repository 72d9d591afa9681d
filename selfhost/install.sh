#!/usr/bin/env bash
# Installs (or re-applies) selfdevop with Docker Compose. Safe to run again on an installed
# host: secrets are generated only when absent and never rotated, and settings given as
# flags replace the old ones.
#
# Usage: install.sh [options]
#   --dir DIR            install directory (default /opt/selfdevop; env SELFDEVOP_DIR)
#   --images FILE        `docker load` this image bundle first (air-gapped install); implies --offline
#   --offline            never pull images (pull_policy never)
#   --domain NAME        serve the dashboard/API at https://NAME (Caddy obtains the certificate)
#   --edge-domain NAME   apps are served at <service>-<env>-<id>.NAME (default localhost)
#   --bind ADDR          address the edge ports are published on (default 0.0.0.0)
#   --http-port N        (default 80)      --https-port N   (default 443)
#   --project NAME       compose project name (default selfdevop)
#   --timeout S          seconds to wait for every service to be healthy (default 120)
#   --no-start           write the install directory only
# Custom domains (each kept in .env as the variable named; defaults suit a public host):
#   --acme-ca URL        ACME directory certificates come from (ACME_CA; default Let's Encrypt)
#   --acme-ca-root FILE  also trust this PEM for the ACME server's HTTPS (copied to trust/)
#   --dns-servers LIST   resolvers records are checked with, ip[:port],... (DNS_SERVERS; default the system's)
#   --edge-ipv4 LIST     the edge's public IPv4 addresses, for apex A records (EDGE_IPV4)
# Image references come from SELFDEVOP_IMAGE, POSTGRES_IMAGE, CADDY_IMAGE when set.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

SDO_DIR=${SELFDEVOP_DIR:-/opt/selfdevop}
images="" offline=0 domain="" edge_domain="" bind="" http_port="" https_port="" project="" timeout=120 start=1
acme_ca="" acme_ca_root="" dns_servers="" edge_ipv4=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) SDO_DIR=${2:?}; shift ;;
    --images) images=${2:?}; offline=1; shift ;;
    --offline) offline=1 ;;
    --domain) domain=${2:?}; shift ;;
    --edge-domain) edge_domain=${2:?}; shift ;;
    --bind) bind=${2:?}; shift ;;
    --http-port) http_port=${2:?}; shift ;;
    --https-port) https_port=${2:?}; shift ;;
    --project) project=${2:?}; shift ;;
    --timeout) timeout=${2:?}; shift ;;
    --no-start) start=0 ;;
    --acme-ca) acme_ca=${2:?}; shift ;;
    --acme-ca-root) acme_ca_root=${2:?}; shift ;;
    --dns-servers) dns_servers=${2:?}; shift ;;
    --edge-ipv4) edge_ipv4=${2:?}; shift ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) sdo_die "unknown option $1 (see --help)" ;;
  esac
  shift
done
started=$(date +%s)

# ---------------------------------------------------------------- prerequisites
command -v docker >/dev/null || sdo_die "docker is not installed: https://docs.docker.com/engine/install/"
docker info >/dev/null 2>&1 || sdo_die "the Docker Engine does not answer (is dockerd running, and may this user use it?)"
sdo_find_compose
[ -S /var/run/docker.sock ] || sdo_die "/var/run/docker.sock is missing: the worker deploys apps through the local Docker socket"
mkdir -p "$SDO_DIR"
SDO_DIR="$(cd "$SDO_DIR" && pwd)"
chmod 700 "$SDO_DIR"

free_mb() { df -Pm "$1" | awk 'NR==2 {print $4}'; }
docker_root=$(docker info -f '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker)
for d in "$SDO_DIR" "$docker_root"; do
  [ -d "$d" ] || continue
  mb=$(free_mb "$d")
  [ "$mb" -ge 2048 ] || sdo_die "only ${mb} MB free under $d; selfdevop needs at least 2048 MB (images, database, backups)"
done

# ---------------------------------------------------------------- settings (.env)
existing_env=0
[ -f "$SDO_DIR/.env" ] && existing_env=1
touch "$SDO_DIR/.env" && chmod 600 "$SDO_DIR/.env"
[ -n "$project" ] && sdo_env_set COMPOSE_PROJECT_NAME "$project"
[ -n "$(sdo_env_get COMPOSE_PROJECT_NAME)" ] || sdo_env_set COMPOSE_PROJECT_NAME selfdevop

# Secrets: created once. A missing secret next to an existing database is a restore
# problem, not something to paper over: a new password or key would brick the data.
if [ -z "$(sdo_env_get DB_PASSWORD)" ] || [ -z "$(sdo_env_get JWT_SECRET)" ]; then
  if sdo_volume_exists pgdata; then
    sdo_die "$SDO_DIR/.env lacks DB_PASSWORD or JWT_SECRET, but the database volume $(sdo_project)_pgdata exists. Restore .env from a backup (restore.sh) instead of generating new secrets over existing data."
  fi
fi
[ -n "$(sdo_env_get DB_PASSWORD)" ] || sdo_env_set DB_PASSWORD "$(sdo_random_hex 24)"
[ -n "$(sdo_env_get JWT_SECRET)" ] || sdo_env_set JWT_SECRET "$(sdo_random_hex 32)"
# The API's and pg-boss's logins: the migrate job sets these passwords at every start, so
# an install from before they existed (or a restore) simply gets new ones.
[ -n "$(sdo_env_get DB_API_PASSWORD)" ] || sdo_env_set DB_API_PASSWORD "$(sdo_random_hex 24)"
[ -n "$(sdo_env_get DB_QUEUE_PASSWORD)" ] || sdo_env_set DB_QUEUE_PASSWORD "$(sdo_random_hex 24)"
# What Prometheus and Alertmanager present to the API (alert targets, the alert receiver).
[ -n "$(sdo_env_get ALERT_RECEIVER_TOKEN)" ] || sdo_env_set ALERT_RECEIVER_TOKEN "$(sdo_random_hex 24)"
mkdir -p "$SDO_DIR/secrets" && chmod 700 "$SDO_DIR/secrets"
key="$SDO_DIR/secrets/encryption.key"
if [ ! -s "$key" ]; then
  if sdo_volume_exists pgdata; then
    sdo_die "$key is missing, but the database volume $(sdo_project)_pgdata exists: its secrets can only be opened with the original key. Restore the key file from a backup (restore.sh)."
  fi
  (umask 077 && head -c 32 /dev/urandom | base64 >"$key.tmp" && mv -n "$key.tmp" "$key")
  rm -f "$key.tmp"
fi
# The app runs as uid 10001 in its container and reads the key through a bind mount.
chown 10001:10001 "$key" && chmod 600 "$key"

sdo_env_set DOCKER_GID "$(stat -c %g /var/run/docker.sock)"
[ -n "$domain" ] && sdo_env_set SELFDEVOP_DOMAIN "$domain"
[ -n "$edge_domain" ] && sdo_env_set EDGE_DOMAIN "$edge_domain"
[ -n "$bind" ] && sdo_env_set BIND_ADDRESS "$bind"
[ -n "$http_port" ] && sdo_env_set HTTP_PORT "$http_port"
[ -n "$https_port" ] && sdo_env_set HTTPS_PORT "$https_port"
for var in SELFDEVOP_IMAGE POSTGRES_IMAGE CADDY_IMAGE PROMETHEUS_IMAGE ALERTMANAGER_IMAGE SELFDEVOP_VERSION; do
  if [ -n "${!var:-}" ]; then sdo_env_set "$var" "${!var}"; fi
done
[ $offline = 1 ] && sdo_env_set PULL_POLICY never
[ -n "$acme_ca" ] && sdo_env_set ACME_CA "$acme_ca"
[ -n "$dns_servers" ] && sdo_env_set DNS_SERVERS "$dns_servers"
[ -n "$edge_ipv4" ] && sdo_env_set EDGE_IPV4 "$edge_ipv4"
# Caddy trusts every PEM here, besides the system's roots, when it talks to the ACME server.
mkdir -p "$SDO_DIR/trust" && chmod 755 "$SDO_DIR/trust"
if [ -n "$acme_ca_root" ]; then
  grep -q 'BEGIN CERTIFICATE' "$acme_ca_root" 2>/dev/null || sdo_die "--acme-ca-root $acme_ca_root is not a PEM certificate file"
  install -m 0644 "$acme_ca_root" "$SDO_DIR/trust/acme-ca-root.pem"
fi

# The stack definition: replaced on every run (that is how upgrade.sh ships a new one).
# bin/ keeps the scripts with their own copy of it, so the install directory is self-contained.
cp "$here/docker-compose.yml" "$SDO_DIR/docker-compose.yml"
# Prometheus and Alertmanager carry their config in their images (an older install's
# monitoring/ directory is no longer read).
rm -rf "$SDO_DIR/monitoring"
if ! [ "$here" -ef "$SDO_DIR/bin" ]; then
  rm -rf "${SDO_DIR:?}/bin" && mkdir -p "$SDO_DIR/bin"
  cp -r "$here"/{lib.sh,install.sh,upgrade.sh,backup.sh,restore.sh,docker-compose.yml} "$SDO_DIR/bin/"
fi

if [ -n "$images" ]; then
  [ -f "$images" ] || sdo_die "image bundle $images does not exist"
  sdo_note "loading images from $images"
  docker load -i "$images" >/dev/null || sdo_die "docker load -i $images failed"
fi

if [ $offline = 1 ]; then
  for img in "$(sdo_env_get SELFDEVOP_IMAGE)" "$(sdo_env_get POSTGRES_IMAGE)" "$(sdo_env_get CADDY_IMAGE)" "$(sdo_env_get PROMETHEUS_IMAGE)" "$(sdo_env_get ALERTMANAGER_IMAGE)"; do
    [ -z "$img" ] || docker image inspect "$img" >/dev/null 2>&1 ||
      sdo_die "image $img is not on this host and pulling is off; load it with --images FILE"
  done
fi

[ $existing_env = 1 ] && sdo_note "kept the existing secrets in $SDO_DIR/.env and $key"
[ $start = 1 ] || { sdo_note "wrote $SDO_DIR; start it with: cd $SDO_DIR && ${SDO_COMPOSE[*]} up -d"; exit 0; }

# ---------------------------------------------------------------- ports, then start
port_in_use() { # addr port: something other than this stack listens there
  local addr=$1 port=$2
  [ "$addr" = 0.0.0.0 ] && addr=127.0.0.1
  (exec 3<>"/dev/tcp/$addr/$port") 2>/dev/null
}
if [ -z "$(sdo_container caddy)" ] || [ "$(docker inspect -f '{{.State.Running}}' "$(sdo_container caddy)")" != true ]; then
  b=$(sdo_env_get BIND_ADDRESS)
  for p in "$(sdo_env_get HTTP_PORT)" "$(sdo_env_get HTTPS_PORT)"; do
    [ -n "$p" ] || continue
    port_in_use "${b:-0.0.0.0}" "$p" && sdo_die "port $p on ${b:-0.0.0.0} is already in use; free it or pass --http-port/--https-port"
  done
  [ -n "$(sdo_env_get HTTP_PORT)" ] || ! port_in_use "${b:-0.0.0.0}" 80 || sdo_die "port 80 is already in use; free it or pass --http-port"
  [ -n "$(sdo_env_get HTTPS_PORT)" ] || ! port_in_use "${b:-0.0.0.0}" 443 || sdo_die "port 443 is already in use; free it or pass --https-port"
fi

sdo_note "starting the stack ($(sdo_project)) in $SDO_DIR"
pull_args=()
[ "$(sdo_env_get PULL_POLICY)" = never ] && pull_args=(--pull never)
sdo_compose up -d --remove-orphans "${pull_args[@]}" >/dev/null 2>"$SDO_DIR/.compose-up.log" || {
  cat "$SDO_DIR/.compose-up.log" >&2
  sdo_wait_healthy 1 || true
  sdo_die "docker compose up failed (see above)"
}
sdo_wait_healthy "$timeout" || sdo_die "the stack did not become healthy within $timeout s (logs above); fix the cause and run install.sh again"

# ---------------------------------------------------------------- done
http_port=$(sdo_env_get HTTP_PORT) bind=$(sdo_env_get BIND_ADDRESS) domain=$(sdo_env_get SELFDEVOP_DOMAIN)
host=${bind:-localhost}
[ "$host" = 0.0.0.0 ] && host=localhost
url="http://$host${http_port:+:$http_port}"
[ "${http_port:-80}" = 80 ] && url="http://$host"
https_port=$(sdo_env_get HTTPS_PORT)
[ -n "$domain" ] && url="https://$domain"
[ -n "$domain" ] && [ "${https_port:-443}" != 443 ] && url="https://$domain:$https_port"
gateway=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)
cat <<EOF

  selfdevop is up at $url  ($(($(date +%s) - started)) s)
  install directory: $SDO_DIR (.env and secrets/ are private: back them up with bin/backup.sh)

  Create the first user (the owner of a new org, and this installation's operator):
    curl -s $url/api/auth/local/signup -H 'content-type: application/json' \\
      -d '{"email":"you@example.com","password":"at least 8 characters"}'

  Then register this host as a node with that user's session token (only the operator may;
  apps publish on the Docker bridge ${gateway:-172.17.0.1}):
    curl -s $url/api/nodes -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
      -d '{"name":"local","dockerHost":"unix:///var/run/docker.sock","address":"${gateway:-172.17.0.1}"}'

EOF
