#!/usr/bin/env bash
# Backs up a selfdevop install: the control-plane database (pg_dump, custom format), the
# encryption key file, .env and the edge's saved config, with a manifest holding the
# sha256 of every file and the row count of every table (counted in the same snapshot the
# dump reads, so a restore must reproduce them exactly). Then prunes old backups.
#
# Usage: backup.sh [--dir DIR] [--to BACKUPS] [--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N]
#   --dir DIR     the install directory (default: the one this script is in, else /opt/selfdevop)
#   --to DIR      where backups go (default BACKUP_DIR from .env, else DIR/backups)
#   --keep-*      retention: the N newest (3), and the newest of each of the last N days/weeks/months (7/4/6)
# Prints the new backup's path on stdout. Check it with: restore.sh --verify PATH
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

SDO_DIR=${SELFDEVOP_DIR:-}
[ -z "$SDO_DIR" ] && [ -f "$here/../.env" ] && SDO_DIR="$here/.."
SDO_DIR=${SDO_DIR:-/opt/selfdevop}
to="" keep_last=3 keep_daily=7 keep_weekly=4 keep_monthly=6
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) SDO_DIR=${2:?}; shift ;;
    --to) to=${2:?}; shift ;;
    --keep-last) keep_last=${2:?}; shift ;;
    --keep-daily) keep_daily=${2:?}; shift ;;
    --keep-weekly) keep_weekly=${2:?}; shift ;;
    --keep-monthly) keep_monthly=${2:?}; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) sdo_die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[ -f "$SDO_DIR/.env" ] || sdo_die "$SDO_DIR is not a selfdevop install (no .env)"
SDO_DIR="$(cd "$SDO_DIR" && pwd)"
sdo_find_compose
to=${to:-$(sdo_env_get BACKUP_DIR)}
to=${to:-$SDO_DIR/backups}
mkdir -p "$to" && chmod 700 "$to"
to="$(cd "$to" && pwd)"

pg=$(sdo_container postgres)
if [ -z "$pg" ] || [ "$(docker inspect -f '{{.State.Running}}' "$pg")" != true ]; then
  sdo_die "the postgres service is not running; start the stack (docker compose up -d) and try again"
fi

name="selfdevop-$(date -u +%Y%m%dT%H%M%SZ)"
dest="$to/$name"
work="$dest.partial"
rm -rf "$work" && mkdir -m 700 "$work"
trap 'rm -rf "$work"' EXIT

# One repeatable-read transaction exports its snapshot; pg_dump reads that snapshot and the
# row counts are taken in it, so the manifest describes exactly the data in the dump.
# As the container's superuser (local socket only): row-level security is forced on tenant
# tables, so their owner `selfdevop` would count no rows and pg_dump would refuse them.
coproc PSQL { docker exec -i "$pg" psql -X -q -A -t -v ON_ERROR_STOP=1 -h /var/run/postgresql -U postgres -d selfdevop 2>&1; }
psql_in=${PSQL[1]} psql_out=${PSQL[0]}
echo "begin isolation level repeatable read read only; select pg_export_snapshot();" >&"$psql_in"
IFS= read -r -t 30 snapshot <&"$psql_out" || sdo_die "could not open a snapshot in the database"
[[ "$snapshot" =~ ^[0-9A-F-]+$ ]] || sdo_die "could not open a snapshot in the database: $snapshot"

docker exec "$pg" pg_dump -h /var/run/postgresql -U postgres -d selfdevop --format=custom --snapshot="$snapshot" \
  >"$work/db.dump" 2>"$work/pg_dump.log" || sdo_die "pg_dump failed: $(cat "$work/pg_dump.log")"
rm -f "$work/pg_dump.log"

{ sdo_counts_sql; echo "select 'end-of-counts';"; echo "commit;"; } >&"$psql_in"
counts=()
while IFS= read -r -t 60 line <&"$psql_out"; do
  [ "$line" = end-of-counts ] && break
  counts+=("$line")
done
[ "${line:-}" = end-of-counts ] || sdo_die "counting rows failed: ${counts[*]: -3}"
exec {psql_in}>&-
wait "$PSQL_PID" 2>/dev/null || true

cp "$SDO_DIR/.env" "$work/env"
cp "$SDO_DIR/secrets/encryption.key" "$work/encryption.key"
# The edge's live config holds every app route; restoring it avoids a redeploy to route again.
caddy=$(sdo_container caddy)
if [ -n "$caddy" ] && docker exec "$caddy" cat /config/caddy/autosave.json >"$work/caddy-autosave.json" 2>/dev/null; then :; else
  rm -f "$work/caddy-autosave.json"
fi
chmod 600 "$work"/*

# Proves the archive is readable (its table of contents), without restoring it.
docker exec -i "$pg" pg_restore --list <"$work/db.dump" >/dev/null 2>"$work/check.log" ||
  sdo_die "the dump cannot be read back: $(cat "$work/check.log")"
rm -f "$work/check.log"

{
  echo "# selfdevop backup manifest: restore.sh checks every line"
  echo "created_at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "project $(sdo_project)"
  echo "image $(docker inspect -f '{{.Config.Image}}' "$(sdo_container api)" 2>/dev/null || echo unknown)"
  (cd "$work" && for f in *; do [ "$f" = manifest ] || echo "sha256 $f $(sha256sum "$f" | cut -d' ' -f1)"; done)
  printf '%s\n' "${counts[@]}"
} >"$work/manifest"
chmod 600 "$work/manifest"
mv "$work" "$dest"
trap - EXIT

# ---------------------------------------------------------------- retention
# Newest first; keep a backup when it is the newest of a day, week or month still within
# its quota. Only directories this script made (selfdevop-<timestamp>) are considered.
declare -A seen_day seen_week seen_month
days=0 weeks=0 months=0 removed=0 newest=0
for b in $(find "$to" -mindepth 1 -maxdepth 1 -type d -name 'selfdevop-*Z' | sort -r); do
  ts=${b##*/selfdevop-}
  iso="${ts:0:4}-${ts:4:2}-${ts:6:2}"
  day=$iso week=$(date -u -d "$iso" +%G-W%V) month=${iso:0:7}
  keep=0 newest=$((newest + 1))
  [ $newest -le "$keep_last" ] && keep=1
  if [ -z "${seen_day[$day]:-}" ] && [ $days -lt "$keep_daily" ]; then seen_day[$day]=1; days=$((days + 1)); keep=1; fi
  if [ -z "${seen_week[$week]:-}" ] && [ $weeks -lt "$keep_weekly" ]; then seen_week[$week]=1; weeks=$((weeks + 1)); keep=1; fi
  if [ -z "${seen_month[$month]:-}" ] && [ $months -lt "$keep_monthly" ]; then seen_month[$month]=1; months=$((months + 1)); keep=1; fi
  [ "$b" = "$dest" ] && keep=1
  if [ $keep = 0 ]; then rm -rf "$b"; removed=$((removed + 1)); fi
done

sdo_note "backup written to $dest ($(du -sh "$dest" | cut -f1), $((${#counts[@]} - 1)) tables counted; $removed old backups pruned)"
echo "$dest"
