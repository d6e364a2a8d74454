#!/usr/bin/env bash
# Fetches BoringSSL's source from Debian's own source package and unpacks it into a
# cache directory, once. Prints the unpacked directory on stdout.
#
# Why Debian's source package: it carries the pre-generated source lists
# (android-sources.cmake), err_data.c and assembly, so building needs neither Go nor
# Perl; and Debian's package archive is the only place this project downloads from.
set -euo pipefail

readonly PACKAGE=android-platform-external-boringssl
readonly VERSION=13.0.0+r24
cache="${TANDEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem}"
dest="$cache/boringssl-$VERSION"

if [[ -f "$dest/android-sources.cmake" ]]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Derive deb-src entries from the machine's own apt sources when none exist yet.
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "fetch_boringssl: no deb-src entries and not root; run scripts/setup.sh as root" >&2
    exit 1
  fi
  entries="$(for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    sed 's/^Types:.*/Types: deb-src/' "$f"
    echo
  done)"
  echo "$entries" > /etc/apt/sources.list.d/tandem-deb-src.sources
  if [[ -f /etc/apt/sources.list ]]; then
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > /etc/apt/sources.list.d/tandem-deb-src.list
  fi
  apt-get update -q >&2
fi

(cd "$work" && apt-get source --download-only "$PACKAGE=$VERSION-2" >&2 ||
  apt-get source --download-only "$PACKAGE" >&2)
tarball="$(ls "$work"/${PACKAGE}_*.orig.tar.* | head -1)"
mkdir -p "$work/src"
tar -xf "$tarball" -C "$work/src" --strip-components=1
test -f "$work/src/android-sources.cmake"
mv "$work/src" "$dest"
echo "$dest"
