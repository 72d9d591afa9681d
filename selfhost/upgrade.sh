#!/usr/bin/env bash
# Upgrades a selfdevop install without risking its data:
#   1. takes a backup and proves it restores (restore.sh --verify);
#   2. loads (--images) or pulls the new images;
#   3. runs the NEW image's migrations as a one-off container while the old version keeps
#      serving; if they fail, nothing else changes and the restore command is printed;
#   4. switches the services to the new images and waits until every one is healthy;
#   5. if they do not become healthy, returns to the previous images (and compose file).
#
# Usage: upgrade.sh [--dir DIR] (--image IMAGE | --version V) [--images FILE]
#                   [--postgres-image IMAGE] [--caddy-image IMAGE] [--timeout S]
#   --image IMAGE   the new control-plane image (e.g. ghcr.io/selfdevop/selfdevop:0.2.0)
#   --version V     the same, as ghcr.io/selfdevop/selfdevop:V
#   --images FILE   `docker load` this bundle first (air-gapped); nothing is pulled
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

SDO_DIR=${SELFDEVOP_DIR:-}
[ -z "$SDO_DIR" ] && [ -f "$here/../.env" ] && SDO_DIR="$here/.."
SDO_DIR=${SDO_DIR:-/opt/selfdevop}
new_image="" images="" new_pg="" new_caddy="" timeout=120
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) SDO_DIR=${2:?}; shift ;;
    --image) new_image=${2:?}; shift ;;
    --version) new_image="ghcr.io/selfdevop/selfdevop:${2:?}"; shift ;;
    --images) images=${2:?}; shift ;;
    --postgres-image) new_pg=${2:?}; shift ;;
    --caddy-image) new_caddy=${2:?}; shift ;;
    --timeout) timeout=${2:?}; shift ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) sdo_die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[ -n "$new_image" ] || sdo_die "which version? pass --image IMAGE or --version V"
[ -f "$SDO_DIR/.env" ] || sdo_die "$SDO_DIR is not a selfdevop install (no .env)"
SDO_DIR="$(cd "$SDO_DIR" && pwd)"
sdo_find_compose
started=$(date +%s)

old_image=$(docker inspect -f '{{.Config.Image}}' "$(sdo_container api)" 2>/dev/null || true)
[ -n "$old_image" ] || sdo_die "the api service has no container: is selfdevop installed and running in $SDO_DIR?"
old_env_image=$(sdo_env_get SELFDEVOP_IMAGE) old_env_pg=$(sdo_env_get POSTGRES_IMAGE) old_env_caddy=$(sdo_env_get CADDY_IMAGE)
sdo_note "upgrading $old_image → $new_image"

# ---------------------------------------------------------------- 1. a verified backup
backup=$("$here/backup.sh" --dir "$SDO_DIR") || sdo_die "the backup failed; nothing was changed"
"$here/restore.sh" --verify "$backup" || sdo_die "the backup $backup did not pass its restore drill; nothing was changed"

# ---------------------------------------------------------------- 2. images
if [ -n "$images" ]; then
  docker load -i "$images" >/dev/null || sdo_die "docker load -i $images failed; nothing was changed"
fi
for img in "$new_image" $new_pg $new_caddy; do
  if ! docker image inspect "$img" >/dev/null 2>&1; then
    [ "$(sdo_env_get PULL_POLICY)" != never ] || sdo_die "image $img is not on this host and pulling is off; pass --images FILE"
    docker pull "$img" >/dev/null || sdo_die "pulling $img failed; nothing was changed"
  fi
done

restore_hint() {
  cat >&2 <<EOF
selfdevop: to return the data to its state before this upgrade:
    $here/restore.sh --dir $SDO_DIR --force $backup
EOF
}

# ---------------------------------------------------------------- 3. migrations, new image
# Installs from before the login roles have no passwords for them yet; the new compose
# file needs them, and its migrate job sets them at every start.
[ -n "$(sdo_env_get DB_API_PASSWORD)" ] || sdo_env_set DB_API_PASSWORD "$(sdo_random_hex 24)"
[ -n "$(sdo_env_get DB_QUEUE_PASSWORD)" ] || sdo_env_set DB_QUEUE_PASSWORD "$(sdo_random_hex 24)"
# The shell's SELFDEVOP_IMAGE overrides .env for this one command only.
sdo_note "running the migrations of $new_image"
log="$SDO_DIR/.upgrade-migrate.log"
rc=0
(export SELFDEVOP_IMAGE="$new_image" && sdo_compose run --rm --no-deps -T migrate) >"$log" 2>&1 || rc=$?
sed 's/^/  migrate: /' "$log" >&2
if [ $rc != 0 ]; then
  sdo_note "the migrations of $new_image FAILED; $old_image keeps running and nothing else was changed"
  restore_hint
  exit 1
fi

# ---------------------------------------------------------------- 4. switch
cp "$SDO_DIR/docker-compose.yml" "$SDO_DIR/docker-compose.yml.previous"
[ "$here/docker-compose.yml" -ef "$SDO_DIR/docker-compose.yml" ] || cp "$here/docker-compose.yml" "$SDO_DIR/docker-compose.yml"
sdo_env_set SELFDEVOP_IMAGE "$new_image"
[ -z "$new_pg" ] || sdo_env_set POSTGRES_IMAGE "$new_pg"
[ -z "$new_caddy" ] || sdo_env_set CADDY_IMAGE "$new_caddy"
pull_args=()
[ "$(sdo_env_get PULL_POLICY)" = never ] && pull_args=(--pull never)
if sdo_compose up -d --remove-orphans "${pull_args[@]}" >/dev/null 2>"$SDO_DIR/.compose-up.log" && sdo_wait_healthy "$timeout"; then
  rm -f "$SDO_DIR/docker-compose.yml.previous"
  sdo_note "upgraded to $new_image in $(($(date +%s) - started)) s (backup before the upgrade: $backup)"
  exit 0
fi

# ---------------------------------------------------------------- 5. back to the old images
sdo_note "$new_image did not become healthy; returning to $old_image"
mv "$SDO_DIR/docker-compose.yml.previous" "$SDO_DIR/docker-compose.yml"
sdo_env_set SELFDEVOP_IMAGE "${old_env_image:-$old_image}"
[ -z "$new_pg" ] || sdo_env_set POSTGRES_IMAGE "$old_env_pg"
[ -z "$new_caddy" ] || sdo_env_set CADDY_IMAGE "$old_env_caddy"
if sdo_compose up -d --remove-orphans "${pull_args[@]}" >/dev/null 2>&1 && sdo_wait_healthy "$timeout"; then
  sdo_note "back on $old_image; the upgrade to $new_image failed (its logs are above)"
else
  sdo_note "$old_image did not come back either (its schema may now be older than the database's)"
fi
restore_hint
exit 1
