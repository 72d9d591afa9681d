#!/bin/sh
# The app's migration command. MIGRATE_MODE=ok prints its steps and exits 0; fail prints an
# error on stderr and exits 3; hang never returns (timeout tests).
echo "migrate $APP_VERSION: starting"
echo "applying 001_init"
case "${MIGRATE_MODE:-ok}" in
  fail)
    echo "error: 002_users failed: relation \"users\" already exists" >&2
    exit 3
    ;;
  hang)
    echo "applying 002_users (hangs)"
    exec sleep 3600
    ;;
esac
echo "applying 002_users"
echo "migrate $APP_VERSION: done"
