#!/bin/sh
# MariaDB for a selfdevop data service. On the first start (an empty data volume) it
# initialises the data directory and creates the database and its user; every later start
# only runs mariadbd. The password is set once: a changed MARIADB_PASSWORD later does not
# change the user's (rotation is an explicit action of selfdevop).
#   MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD   required on the first start
set -eu
datadir=/var/lib/mysql
if [ ! -d "$datadir/mysql" ]; then
  for v in MARIADB_DATABASE MARIADB_USER MARIADB_PASSWORD; do
    eval "val=\${$v:-}"
    if [ -z "$val" ]; then
      echo "selfdevop-mariadb: $v is required to initialise an empty data directory" >&2
      exit 1
    fi
  done
  # root starts password-less on the init socket only (no network yet), then is bound to the
  # unix_socket plugin below: no one but an OS root inside the container can use it.
  mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
  mariadbd --datadir="$datadir" --skip-networking --socket=/tmp/init.sock &
  pid=$!
  i=0
  until mariadb-admin --socket=/tmp/init.sock -uroot ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 60 ]; then echo "selfdevop-mariadb: the server did not start to initialise" >&2; exit 1; fi
    sleep 1
  done
  # Identifiers come from selfdevop (validated names); the password is hex. Still quoted.
  mariadb --socket=/tmp/init.sock -uroot <<SQL
CREATE DATABASE \`$MARIADB_DATABASE\`;
CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$MARIADB_PASSWORD';
GRANT ALL PRIVILEGES ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket;
DROP USER IF EXISTS 'mysql'@'localhost';
FLUSH PRIVILEGES;
SQL
  kill "$pid"
  wait "$pid" || true
  echo "selfdevop-mariadb: initialised $datadir with database $MARIADB_DATABASE" >&2
fi
exec mariadbd --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 "$@"
