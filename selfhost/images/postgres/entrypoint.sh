#!/bin/sh
# PostgreSQL 15 for selfdevop: on the first start (an empty data volume) it runs initdb,
# creates the selfdevop role (password auth, CREATEROLE because the migrations create the
# application role) and its database; on every later start it only runs postgres. The
# password is set once: changing POSTGRES_PASSWORD later does not change the role's.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
db=${POSTGRES_DB:-selfdevop}
user=${POSTGRES_USER:-selfdevop}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "selfdevop-postgres: POSTGRES_PASSWORD is required to initialise an empty data directory" >&2
    exit 1
  fi
  if [ -n "$(ls -A "$PGDATA" 2>/dev/null)" ]; then
    echo "selfdevop-postgres: $PGDATA is not empty but holds no PG_VERSION; refusing to initialise over it" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # Local socket connections (health checks, backups run inside this container) are trusted;
  # every TCP connection needs a password.
  initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  {
    echo "listen_addresses = '*'"
    echo "jit = off" # the image carries no LLVM
    echo "max_connections = ${POSTGRES_MAX_CONNECTIONS:-100}"
    echo "shared_buffers = ${POSTGRES_SHARED_BUFFERS:-64MB}"
  } >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" -w start >/dev/null
  psql -v ON_ERROR_STOP=1 -h /tmp -U postgres -d postgres -q \
    -v user="$user" -v db="$db" -v password="$POSTGRES_PASSWORD" <<'SQL'
create role :"user" login createrole password :'password';
create database :"db" owner :"user";
SQL
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "selfdevop-postgres: initialised $PGDATA with database $db owned by $user" >&2
fi
exec postgres -D "$PGDATA" "$@"
