#!/usr/bin/env bash
# build.sh BUILD_DIR — builds tandem's container images from Debian packages, with no
# registry: a base root filesystem made by mmdebstrap from this machine's Debian apt
# sources, imported into podman, then per image a Containerfile that only COPYs.
#
#   localhost/tandem-base:<hash>  Debian bookworm, essential set + iptables + the shared
#                                 libraries tandem-agent and tandem-ca load (from ldd)
#   tandem/proxy:dev              tandem-proxy (entrypoint), tandem-agent,
#                                 tandem-iptables.sh; USER 1337:1337
#   tandem/ca:dev                 tandem-ca (entrypoint), tandemctl if built; USER 1000
#   tandem/testapp:dev            tests/app's static tandem-testapp, FROM scratch
#
# BUILD_DIR holds the release binaries (ninja -C BUILD_DIR tandem-proxy tandem-agent
# tandem-ca tandem-testapp). The base rootfs tarball is cached in
# ${TANDEM_CACHE:-~/.cache/tandem}/images, keyed by a hash of its package list, the
# mmdebstrap options and the apt sources, so a rebuild only runs the COPY steps.
# Concurrent runs on one machine take turns (a lock in that directory).
# Root only (podman's root storage). Prints each step's time and each image's size.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$(cd "${1:?usage: build.sh BUILD_DIR}" && pwd)"
CACHE="${TANDEM_CACHE:-$HOME/.cache/tandem}/images"
export CONTAINERS_CONF="$ROOT/deploy/podman/containers.conf"
SUITE=bookworm

log() { printf '== [%d s] %s\n' "$SECONDS" "$*" >&2; }
die() { echo "build.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (podman's root storage, mmdebstrap's root mode)"
mkdir -p "$CACHE"
# One build at a time on this machine (worktrees share podman's storage and the tags).
exec {lock}>"$CACHE/build.lock"
flock -w 900 "$lock" || die "another build.sh held $CACHE/build.lock for 15 minutes"
for tool in podman mmdebstrap dpkg-query; do
  command -v "$tool" >/dev/null || die "$tool is missing (./dev setup installs it)"
done
# bin NAME: the path of an executable target's output in BUILD (empty when not built).
bin() { find "$BUILD" -path "$BUILD/CMakeFiles" -prune -o -name "$1" -type f -perm -u+x -print -quit; }
for b in tandem-proxy tandem-agent tandem-ca tandem-testapp; do
  [[ -n "$(bin "$b")" ]] || die "$b is not built in $BUILD: ninja -C $BUILD $b"
done
CA_BINS=("$(bin tandem-ca)")
[[ -n "$(bin tandemctl)" ]] && CA_BINS+=("$(bin tandemctl)")

# The Debian packages owning every shared library the base image's binaries load, so the
# list follows the link lines (tandem-proxy is static apart from libc).
runtime_packages() {
  local libs lib found
  libs="$(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)"
  # dpkg knows a file by the path its package ships, which merged /usr may differ from:
  # ask for both spellings in one query (dpkg-query is slow per call).
  found="$(for lib in $libs; do echo "/usr${lib#/usr}"; echo "${lib#/usr}"; done |
           xargs dpkg-query -S 2>/dev/null)"
  for lib in $libs; do
    awk -v a="/usr${lib#/usr}" -v b="${lib#/usr}" '$NF == a || $NF == b {f = 1}
      END {exit !f}' <<<"$found" ||
      die "no Debian package owns $lib (needed by $*)"
  done
  sed 's/[:,].*//' <<<"$found" | sort -u
}
libs="$(runtime_packages "$(bin tandem-proxy)" "$(bin tandem-agent)" "${CA_BINS[@]}")"
PACKAGES=(iptables $libs)

# This machine's Debian apt sources (binary entries only), never another host.
SOURCES=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [[ -f "$f" ]] || continue
  grep -Eq "^(Types:.*\<deb\>|deb )" "$f" && grep -q "$SUITE" "$f" && SOURCES+=("$f")
done
((${#SOURCES[@]})) || die "no apt source for $SUITE in /etc/apt"

# The essential set (dpkg, bash, coreutils; no apt) plus what the binaries need; no docs,
# man pages or translations; no apt lists or caches (mmdebstrap's default clean-up).
# The merged-usr hook sets /usr up merged and installs usr-is-merged, which keeps apt
# from choosing usrmerge (and with it 47 MB of perl) for init-system-helpers.
MMDEBSTRAP_OPTS=(--variant=essential --mode=root --format=tar
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  "--include=$(IFS=,; echo "${PACKAGES[*]}")"
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/share/bash-completion/*')
HASH="$( { printf '%s\n' "${MMDEBSTRAP_OPTS[@]}" "$SUITE"; cat "${SOURCES[@]}"; } |
        sha256sum | cut -c1-12)"
BASE="localhost/tandem-base:$HASH"

if podman image exists "$BASE"; then
  log "base image $BASE exists"
else
  tarball="$CACHE/base-$SUITE-$HASH.tar"
  if [[ ! -f "$tarball" ]]; then
    log "building the base rootfs with mmdebstrap: ${PACKAGES[*]}"
    if ! mmdebstrap --quiet "${MMDEBSTRAP_OPTS[@]}" "$SUITE" "$tarball.tmp" "${SOURCES[@]}" \
         >"$CACHE/mmdebstrap.log" 2>&1; then
      tail -30 "$CACHE/mmdebstrap.log" >&2
      rm -f "$tarball.tmp"
      die "mmdebstrap failed (log: $CACHE/mmdebstrap.log)"
    fi
    mv "$tarball.tmp" "$tarball"
  fi
  log "importing $tarball as $BASE"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tarball" "$BASE" >/dev/null
fi

# Each image's build context: only the files its Containerfile copies, binaries without
# their debug line tables.
CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
stage() {  # stage <image> <dest dir> <files...>
  local dir="$CONTEXT/$1/$2" f; shift 2
  mkdir -p "$dir"
  for f in "$@"; do
    if [[ "$f" == *.sh ]]; then cp "$f" "$dir/"; else strip --strip-debug -o "$dir/$(basename "$f")" "$f"; fi
  done
}
stage proxy . "$(bin tandem-proxy)" "$(bin tandem-agent)" "$ROOT/deploy/iptables/tandem-iptables.sh"
stage ca bin "${CA_BINS[@]}"
stage testapp . "$(bin tandem-testapp)"

for image in proxy ca testapp; do
  log "building tandem/$image:dev"
  podman build --quiet --build-arg "BASE=$BASE" -t "tandem/$image:dev" \
    -f "$ROOT/deploy/images/$image/Containerfile" "$CONTEXT/$image" >/dev/null
done
# Earlier bases no image uses any more (rmi refuses one in use) and dangling images.
podman image prune -f >/dev/null
for old in $(podman images --format '{{.Repository}}:{{.Tag}}' localhost/tandem-base); do
  [[ "$old" == "$BASE" ]] || podman rmi "$old" >/dev/null 2>&1 || true
done
# Other trees may use another base: keep their tarballs for a week after last use.
touch "$CACHE/base-$SUITE-$HASH.tar" 2>/dev/null || true
find "$CACHE" -name 'base-*.tar' -mtime +7 -delete 2>/dev/null || true

for image in "$BASE" tandem/proxy:dev tandem/ca:dev tandem/testapp:dev; do
  size="$(podman image inspect --format '{{.Size}}' "$image")"
  awk -v i="$image" -v s="$size" 'BEGIN {printf "%-34s %6.1f MB\n", i, s / 1e6}'
done
log "images built"
