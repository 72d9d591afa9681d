# Shared by install.sh, upgrade.sh, backup.sh and restore.sh (sourced, not run).
# shellcheck shell=bash

sdo_die() { echo "selfdevop: $*" >&2; exit 1; }
sdo_note() { echo "selfdevop: $*" >&2; }

# `docker compose` (v2 plugin) or the standalone `docker-compose`, whichever exists.
sdo_find_compose() {
  if docker compose version >/dev/null 2>&1; then
    SDO_COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    SDO_COMPOSE=(docker-compose)
  else
    sdo_die "neither 'docker compose' nor 'docker-compose' is installed; install the Docker Compose plugin (https://docs.docker.com/compose/install/)"
  fi
}

# Runs compose in the install directory (SDO_DIR), so its .env and relative paths apply.
sdo_compose() { (cd "$SDO_DIR" && "${SDO_COMPOSE[@]}" "$@"); }

# Reads KEY from SDO_DIR/.env (the last assignment wins, as in compose); empty when absent.
sdo_env_get() {
  local file="$SDO_DIR/.env"
  [ -f "$file" ] || return 0
  sed -n "s/^$1=//p" "$file" | tail -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}

# Sets KEY=VALUE in SDO_DIR/.env, keeping every other line; the file stays 0600.
sdo_env_set() {
  local file="$SDO_DIR/.env" tmp
  tmp=$(mktemp "$SDO_DIR/.env.XXXXXX")
  chmod 600 "$tmp"
  if [ -f "$file" ]; then grep -v "^$1=" "$file" >"$tmp" || true; fi
  printf '%s=%s\n' "$1" "$2" >>"$tmp"
  mv "$tmp" "$file"
}

sdo_project() { local p; p=$(sdo_env_get COMPOSE_PROJECT_NAME); echo "${p:-selfdevop}"; }

sdo_volume_exists() { docker volume inspect "$(sdo_project)_$1" >/dev/null 2>&1; }

sdo_random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# The id of a service's container ('' when it has none).
sdo_container() { sdo_compose ps -a -q "$1" 2>/dev/null | head -n 1; }

# Waits until the long-running services are healthy and migrate exited 0. On a timeout
# or a failed service it prints that service's state and log tail and returns 1.
sdo_wait_healthy() { # timeout-seconds
  local deadline=$(($(date +%s) + $1)) service id state health pending
  while :; do
    pending=""
    for service in postgres migrate api worker caddy; do
      id=$(sdo_container "$service")
      if [ -z "$id" ]; then pending="$pending $service(no container)"; continue; fi
      state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$id" 2>/dev/null || echo "gone 0")
      if [ "$service" = migrate ]; then
        case "$state" in
          "exited 0") ;;
          exited*) sdo_fail_service migrate "the migrate job failed (${state#exited })"; return 1 ;;
          *) pending="$pending migrate($state)" ;;
        esac
        continue
      fi
      health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id" 2>/dev/null || echo gone)
      [ "$health" = healthy ] || pending="$pending $service(${state%% *}/$health)"
    done
    [ -z "$pending" ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      for service in $pending; do
        sdo_fail_service "${service%%(*}" "not healthy after $1 s: ${service#*(}"
      done
      return 1
    fi
    sleep 1
  done
}

sdo_fail_service() { # service reason
  echo "selfdevop: service $1: ${2%)}" >&2
  echo "----- last 40 log lines of $1 -----" >&2
  sdo_compose logs --no-color --tail 40 "$1" >&2 2>&1 || true
  echo "-----" >&2
}

# The manifest's data lines: `rows <schema>.<table> <count>` for every table, then
# `migrations <v1,v2,...>`. backup.sh writes them; restore.sh recomputes and compares.
sdo_counts_sql() {
  cat <<'SQL'
select format('rows %s.%s %s', table_schema, table_name,
  (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', table_schema, table_name), false, true, '')))[1]::text)
from information_schema.tables
where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')
order by table_schema, table_name;
select 'migrations ' || coalesce(string_agg(version::text, ',' order by version), '') from schema_migrations;
SQL
}
