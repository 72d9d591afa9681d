#!/usr/bin/env bash
# Restores a backup made by backup.sh, or proves that it restores.
#
# Usage: restore.sh --verify BACKUP            restore drill: checks every file's sha256, restores
#                                              the dump into a scratch PostgreSQL container and
#                                              compares every table's row count with the manifest
#        restore.sh [--dir DIR] [--force] BACKUP
#                                              restores into the install at DIR (run install.sh
#                                              there first): the database, .env secrets, the key
#                                              file and the edge's routes; then starts the stack
#   --force                 replace a database that already holds users
#   --postgres-image IMAGE  for --verify (default: POSTGRES_IMAGE from the backup's env)
#   --timeout S             seconds to wait for the stack to be healthy (default 120)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

SDO_DIR=${SELFDEVOP_DIR:-}
[ -z "$SDO_DIR" ] && [ -f "$here/../.env" ] && SDO_DIR="$here/.."
SDO_DIR=${SDO_DIR:-/opt/selfdevop}
verify=0 force=0 backup="" pg_image="" timeout=120
while [ $# -gt 0 ]; do
  case "$1" in
    --verify) verify=1 ;;
    --dir) SDO_DIR=${2:?}; shift ;;
    --force) force=1 ;;
    --postgres-image) pg_image=${2:?}; shift ;;
    --timeout) timeout=${2:?}; shift ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) sdo_die "unknown option $1 (see --help)" ;;
    *) backup=$1 ;;
  esac
  shift
done
[ -n "$backup" ] || sdo_die "which backup? pass its directory (see --help)"
[ -f "$backup/manifest" ] || sdo_die "$backup has no manifest: not a selfdevop backup"
backup="$(cd "$backup" && pwd)"

# ---------------------------------------------------------------- checks
check_files() {
  local bad=0 name sum actual n=0
  while read -r kind name sum; do
    [ "$kind" = sha256 ] || continue
    n=$((n + 1))
    if [ ! -f "$backup/$name" ]; then echo "  missing: $name" >&2; bad=1; continue; fi
    actual=$(sha256sum "$backup/$name" | cut -d' ' -f1)
    [ "$actual" = "$sum" ] || { echo "  checksum mismatch: $name" >&2; bad=1; }
  done <"$backup/manifest"
  for name in db.dump env encryption.key; do
    grep -q "^sha256 $name " "$backup/manifest" || { echo "  the manifest lists no $name" >&2; bad=1; }
  done
  [ $bad = 0 ] || sdo_die "backup $backup is damaged (above); do not restore it"
  sdo_note "checksums of $n files match the manifest"
}

backup_env() { sed -n "s/^$1=//p" "$backup/env" | tail -n 1; }

# pg_restore into database selfdevop of a running PostgreSQL container, as its superuser.
# The roles (migrations/0001 and 0008) are cluster-wide objects a database dump does not
# carry; they are made here as the migrations make them, without logins: the migrate job
# that starts the stack gives selfdevop_api and selfdevop_queue theirs from .env.
restore_dump() { # container
  docker exec -i "$1" psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U postgres -d selfdevop >/dev/null <<'SQL' ||
do $$
declare
  r text;
begin
  foreach r in array array['selfdevop_app', 'selfdevop_api', 'selfdevop_queue',
    'selfdevop_definer', 'selfdevop_migrator']
  loop
    if not exists (select 1 from pg_roles where rolname = r) then
      execute format('create role %I nologin nobypassrls', r);
    end if;
  end loop;
end $$;
grant selfdevop_app to selfdevop;
grant selfdevop_app to selfdevop_api;
grant selfdevop_definer to selfdevop;
grant selfdevop_migrator to selfdevop;
SQL
    sdo_die "preparing the database roles failed"
  docker exec -i "$1" pg_restore -h /var/run/postgresql -U postgres -d selfdevop --exit-on-error \
    <"$backup/db.dump" 2>"$tmp/restore.log" || sdo_die "pg_restore failed: $(tail -n 20 "$tmp/restore.log")"
}

# Every `rows` and `migrations` line of the manifest must come back exactly.
compare_counts() { # container
  local expected actual
  expected=$(grep -E '^(rows|migrations) ' "$backup/manifest" | sort)
  actual=$(sdo_counts_sql | docker exec -i "$1" psql -X -q -A -t -v ON_ERROR_STOP=1 -h /var/run/postgresql -U postgres -d selfdevop | sort) ||
    sdo_die "counting the restored rows failed"
  if [ "$expected" != "$actual" ]; then
    echo "selfdevop: the restored data differs from the manifest (< manifest, > restored):" >&2
    diff <(echo "$expected") <(echo "$actual") >&2 || true
    return 1
  fi
  local tables rows
  tables=$(grep -c '^rows ' <<<"$expected")
  rows=$(awk '$1 == "rows" { s += $3 } END { print s + 0 }' <<<"$expected")
  sdo_note "row counts match the manifest: $tables tables, $rows rows"
}

wait_pg() { # container

  for _ in $(seq 1 60); do
    docker exec "$1" pg_isready -q -h /var/run/postgresql -U selfdevop -d selfdevop 2>/dev/null && return 0
    [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ] || break
    sleep 1
  done
  docker logs --tail 20 "$1" >&2 2>&1 || true
  sdo_die "PostgreSQL in $1 did not become ready"
}

tmp=$(mktemp -d)
scratch=""
cleanup() {
  [ -z "$scratch" ] || docker rm -f -v "$scratch" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
check_files

# ---------------------------------------------------------------- --verify: the drill
if [ $verify = 1 ]; then
  pg_image=${pg_image:-$(backup_env POSTGRES_IMAGE)}
  pg_image=${pg_image:-ghcr.io/selfdevop/postgres:15}
  scratch="selfdevop-restore-drill-$(sdo_random_hex 4)"
  # No network: the drill touches nothing but its own throwaway container and volume.
  docker run -d --name "$scratch" --network none -e POSTGRES_PASSWORD="$(sdo_random_hex 16)" "$pg_image" >/dev/null ||
    sdo_die "could not start a scratch PostgreSQL from $pg_image"
  wait_pg "$scratch"
  restore_dump "$scratch"
  compare_counts "$scratch" || sdo_die "restore drill FAILED for $backup"
  sdo_note "restore drill passed for $backup"
  exit 0
fi

# ---------------------------------------------------------------- restore into an install
[ -f "$SDO_DIR/.env" ] || sdo_die "$SDO_DIR is not installed; run install.sh --dir $SDO_DIR --no-start first, then restore"
SDO_DIR="$(cd "$SDO_DIR" && pwd)"
sdo_find_compose

pg=$(sdo_container postgres)
if [ -n "$pg" ] && [ "$(docker inspect -f '{{.State.Running}}' "$pg")" = true ] && [ $force = 0 ]; then
  users=$(docker exec "$pg" psql -X -q -A -t -h /var/run/postgresql -U selfdevop -d selfdevop \
    -c "select case when to_regclass('public.users') is null then 0 else (select count(*) from users) end" 2>/dev/null || echo 0)
  [ "${users:-0}" = 0 ] || sdo_die "the database of $SDO_DIR already holds $users users; restoring replaces it. Pass --force to do that (take a backup.sh first)."
fi

sdo_note "stopping the stack and replacing its database"
sdo_compose stop >/dev/null 2>&1 || true
sdo_compose rm -f -s >/dev/null 2>&1 || true
docker volume rm -f "$(sdo_project)_pgdata" >/dev/null

# Secrets come from the backup (the data needs them); host settings stay the target's.
for key in DB_PASSWORD JWT_SECRET; do
  value=$(backup_env "$key")
  [ -n "$value" ] || sdo_die "the backup's env has no $key"
  sdo_env_set "$key" "$value"
done
# The login roles' passwords are set by the migrate job at every start: the backup's, the
# target's, or new ones (a backup from before they existed) all work.
for key in DB_API_PASSWORD DB_QUEUE_PASSWORD ALERT_RECEIVER_TOKEN; do
  value=$(backup_env "$key")
  [ -n "$value" ] || value=$(sdo_env_get "$key")
  [ -n "$value" ] || value=$(sdo_random_hex 24)
  sdo_env_set "$key" "$value"
done
install -m 600 -o 10001 -g 10001 "$backup/encryption.key" "$SDO_DIR/secrets/encryption.key"

if [ -f "$backup/caddy-autosave.json" ]; then
  caddy_image=$(sdo_env_get CADDY_IMAGE)
  docker volume create "$(sdo_project)_caddy_config" >/dev/null
  docker run --rm -i --network none --user 10002:10002 --entrypoint bash -v "$(sdo_project)_caddy_config:/config" \
    "${caddy_image:-ghcr.io/selfdevop/caddy:2.11}" -c 'mkdir -p /config/caddy && cat >/config/caddy/autosave.json' \
    <"$backup/caddy-autosave.json" || sdo_die "restoring the edge's saved routes failed"
fi

pull_args=()
[ "$(sdo_env_get PULL_POLICY)" = never ] && pull_args=(--pull never)
sdo_compose up -d "${pull_args[@]}" postgres >/dev/null 2>"$tmp/up.log" || sdo_die "starting postgres failed: $(cat "$tmp/up.log")"
pg=$(sdo_container postgres)
wait_pg "$pg"
restore_dump "$pg"
compare_counts "$pg" || sdo_die "the restored database does not match the backup's manifest"

sdo_compose up -d "${pull_args[@]}" >/dev/null 2>"$tmp/up.log" || sdo_die "starting the stack failed: $(cat "$tmp/up.log")"
sdo_wait_healthy "$timeout" || sdo_die "the restored stack did not become healthy within $timeout s (logs above)"
sdo_note "restored $backup into $SDO_DIR"
