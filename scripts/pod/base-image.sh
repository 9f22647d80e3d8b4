#!/usr/bin/env bash
# Make the Containerfile's base image locally (no registry can be pulled here): a slim Debian
# bookworm root file system built with mmdebstrap, imported into podman and tagged
# docker.io/library/debian:bookworm-slim, so the Containerfile stays standard and is built
# with --pull=never. The tar is cached in $POD_CACHE (default .cache/pod) for a week.
# Usage: scripts/pod/base-image.sh [--force]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/pod/containers.conf}
CACHE=${POD_CACHE:-$PWD/.cache/pod}
TAR=$CACHE/bookworm-slim.tar
TAG=docker.io/library/debian:bookworm-slim
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
log() { printf '[base-image] %s\n' "$*" >&2; }
mkdir -p "$CACHE"

if [ "${1:-}" = --force ] || [ ! -s "$TAR" ] || [ -n "$(find "$TAR" -mtime +7)" ]; then
  log "mmdebstrap bookworm (minbase, merged /usr, no docs or locales) -> $TAR"
  start=$(date +%s)
  mmdebstrap --quiet --format=tar --variant=minbase --include=usr-is-merged \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --aptopt='APT::Install-Recommends "false"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log' \
    --customize-hook='printf "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true\"; };\nAPT::Update::Post-Invoke { \"rm -f /var/cache/apt/*.bin || true\"; };\nDir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n" > "$1"/etc/apt/apt.conf.d/docker-clean' \
    bookworm "$TAR.tmp" "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb $SECURITY bookworm-security main" >"$CACHE/mmdebstrap.log" 2>&1 \
    || { tail -20 "$CACHE/mmdebstrap.log" >&2; exit 1; }
  mv "$TAR.tmp" "$TAR"
  podman image rm -f "$TAG" >/dev/null 2>&1 || true
  log "built in $(( $(date +%s) - start )) s, $(du -m "$TAR" | cut -f1) MB"
fi

# (re-)import when the image is missing or older than the tar
created=$(podman image inspect --format '{{.Created.Unix}}' "$TAG" 2>/dev/null || echo 0)
if [ "$created" -lt "$(stat -c %Y "$TAR")" ]; then
  log "podman import $TAR as $TAG"
  podman import --quiet --change 'CMD ["/bin/bash"]' "$TAR" "$TAG" >/dev/null
fi
echo "$TAG"
