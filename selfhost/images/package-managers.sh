# Sourced by selfhost/build-images.sh and scripts/build-test-images.sh: the package managers
# the zero-config Node.js builds offer beside npm, vendored into the node-build images at
# image build time from the npm registry's tarballs. A node has no registry (and corepack,
# which would fetch them on first use, cannot download offline), so they must be in the image.
# The versions are pinned here, in one place; changing one rebuilds both images.
#   yarn             yarn classic (1.x), for `# yarn lockfile v1` lockfiles
#   @yarnpkg/cli-dist  yarn berry (4.x), one self-contained file, for `__metadata:` lockfiles
#   pnpm             pnpm 9, for pnpm-lock.yaml (lockfile v9; v6 is read too)
package_managers=(yarn@1.22.22 @yarnpkg/cli-dist@4.18.1 pnpm@9.15.9)

# The tarballs are kept between runs (like debootstrap's cache), so only a first run or a
# version bump reaches the registry.
package_managers_cache="${SELFDEVOP_PM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/selfdevop/package-managers}"

# Unpacks each package manager into DEST/<yarn|yarn-berry|pnpm>, fetching its tarball with
# `npm pack` when the cache lacks it. Prints nothing on success.
vendor_package_managers() { # dest
  local dest=$1 spec file dir
  mkdir -p "$package_managers_cache" "$dest"
  for spec in "${package_managers[@]}"; do
    # npm pack names @scope/name@v as scope-name-v.tgz
    file="$package_managers_cache/$(echo "${spec%@*}" | sed 's|^@||; s|/|-|')-${spec##*@}.tgz"
    if [ ! -s "$file" ]; then
      (cd "$package_managers_cache" && npm pack --silent "$spec" >/dev/null) ||
        { echo "package-managers: npm pack $spec failed (is the npm registry reachable?)" >&2; return 1; }
    fi
    case "${spec%@*}" in
      yarn) dir=yarn ;;
      @yarnpkg/cli-dist) dir=yarn-berry ;;
      pnpm) dir=pnpm ;;
      *) echo "package-managers: no install directory for $spec" >&2; return 1 ;;
    esac
    mkdir -p "$dest/$dir"
    tar -xzf "$file" -C "$dest/$dir" --strip-components=1 --no-same-owner
  done
}

# The inputs' identity for the images' hash: the pinned versions (the tarballs are immutable).
package_managers_id() { echo "${package_managers[*]}"; }
