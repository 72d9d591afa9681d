#!/bin/sh
# Redis 7 for a selfdevop data service. The configuration is written from the environment
# at every start, so a changed memory limit or persistence applies on the next start; the
# password stays out of the command line (docker top, /proc/*/cmdline).
#   REDIS_PASSWORD           required
#   REDIS_MAXMEMORY          e.g. 256mb (set explicitly: Socket.IO fan-out makes memory spike)
#   REDIS_MAXMEMORY_POLICY   e.g. allkeys-lru, noeviction
#   REDIS_PERSISTENCE        none | rdb | aof
set -eu
if [ -z "${REDIS_PASSWORD:-}" ]; then
  echo "selfdevop-redis: REDIS_PASSWORD is required" >&2
  exit 1
fi
conf=/tmp/redis.conf
umask 077
{
  echo "bind * -::*"
  echo "protected-mode no"
  echo "port 6379"
  echo "dir /data"
  echo "requirepass $REDIS_PASSWORD"
  echo "maxmemory ${REDIS_MAXMEMORY:-256mb}"
  echo "maxmemory-policy ${REDIS_MAXMEMORY_POLICY:-noeviction}"
  case "${REDIS_PERSISTENCE:-rdb}" in
    none) echo 'save ""'; echo "appendonly no" ;;
    rdb) echo "save 3600 1 300 100 60 10000"; echo "appendonly no" ;;
    aof) echo 'save ""'; echo "appendonly yes"; echo "appendfsync everysec" ;;
    *) echo "selfdevop-redis: REDIS_PERSISTENCE must be none, rdb or aof" >&2; exit 1 ;;
  esac
} >"$conf"
exec redis-server "$conf" "$@"
