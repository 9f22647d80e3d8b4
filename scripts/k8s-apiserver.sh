#!/usr/bin/env bash
# Build a real Kubernetes API server for the tests (marker "k8s"), cached; print its directory.
#
# Debian packages no kube-apiserver, but sid packages the Go sources of apiextensions-apiserver
# (the real API server code for CustomResourceDefinitions and custom resources). This script
# builds it in a throwaway sid chroot made with mmdebstrap from this machine's Debian mirror
# (the host stays untouched), copies out the binary and the chroot's /usr/bin/etcd, and deletes
# the chroot (2.8 GB). Recipe and limits: docs/design/testing.md, "The Kubernetes test bed".
#
# Cache: ~/.cache/vmrunner/k8s/<key>/{apiextensions-apiserver,etcd,versions.txt}; <key> hashes
# the recipe and the versions of the sid packages the binaries came from. A warm run reads the
# pointer file "current-<recipe>" and costs nothing (no network); K8S_APISERVER_REFRESH=1 builds
# again and, if sid moved on, under a new key.
# The only line on stdout is the directory holding the two binaries; progress goes to stderr.
set -euo pipefail
log() { printf '[k8s-apiserver] %s\n' "$*" >&2; }

PKGS=golang-go,golang-k8s-apiextensions-apiserver-dev,ca-certificates,etcd-server
# bump when the recipe below changes: old builds are then not reused
RECIPE=$(printf '%s\n' "v1" "$PKGS" | sha256sum | cut -c1-12)
CACHE=${VMRUNNER_K8S_CACHE:-$HOME/.cache/vmrunner/k8s}
mkdir -p "$CACHE"
POINTER=$CACHE/current-$RECIPE

complete() { [ -x "$1/apiextensions-apiserver" ] && [ -x "$1/etcd" ] && [ -s "$1/versions.txt" ]; }

warm() {
  local dir
  dir=$(cat "$POINTER" 2>/dev/null) || return 1
  complete "$CACHE/$dir" || return 1
  echo "$CACHE/$dir"
}

if [ "${K8S_APISERVER_REFRESH:-0}" != 1 ] && warm; then exit 0; fi

# one build at a time per cache (CI and a developer, two trees)
exec 9>"$CACHE/.lock"
flock 9
if [ "${K8S_APISERVER_REFRESH:-0}" != 1 ] && warm; then exit 0; fi

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
need=()
# openssl: the tests make their CA and certificates with it (vmrunner/testing/kubecerts.py)
for t in mmdebstrap:mmdebstrap unshare:util-linux flock:util-linux openssl:openssl; do
  command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  "${SUDO[@]}" apt-get update -qq >&2
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${need[@]}" >&2
fi

# The machine's Debian mirror: the first Debian archive URI (not the security archive) in
# the one-line (*.list) or deb822 (*.sources) source files.
mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
}
MIRROR=$(mirror | grep -v -e security -e '^cdrom:' | grep '/debian/\?$' | head -n1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
log "mirror $MIRROR"

ROOT=$(mktemp -d "$CACHE/chroot.XXXXXX")
OUT=$(mktemp -d "$CACHE/build.XXXXXX")
cleanup() { "${SUDO[@]}" rm -rf --one-file-system "$ROOT" "$OUT"; }
trap cleanup EXIT
start=$SECONDS

# sid's Release file counts as expired against this machine's clock: Check-Valid-Until off
log "mmdebstrap sid -> $ROOT"
"${SUDO[@]}" mmdebstrap --quiet --variant=apt --aptopt='Acquire::Check-Valid-Until "false"' \
  --include="$PKGS" sid "$ROOT" "$MIRROR" >&2
log "chroot ready after $((SECONDS - start)) s; go build k8s.io/apiextensions-apiserver"

# GOPATH mode over Debian's packaged sources: no network, no module proxy
"${SUDO[@]}" unshare -m --propagation private sh -c "mount -t proc proc '$ROOT/proc' && \
  chroot '$ROOT' env HOME=/root GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off \
  GOCACHE=/root/gocache GOFLAGS=-trimpath go build -ldflags='-s -w' \
  -o /root/apiextensions-apiserver k8s.io/apiextensions-apiserver" >&2
log "built after $((SECONDS - start)) s"

"${SUDO[@]}" chroot "$ROOT" dpkg-query -W golang-go golang-k8s-apiextensions-apiserver-dev \
  etcd-server >"$OUT/versions.txt"
cp "$ROOT/root/apiextensions-apiserver" "$ROOT/usr/bin/etcd" "$OUT/"
"$OUT/apiextensions-apiserver" --help >/dev/null
"$OUT/etcd" --version >&2

key=$(printf '%s\n' "$RECIPE" | cat - "$OUT/versions.txt" | sha256sum | cut -c1-16)
if complete "$CACHE/$key"; then
  log "same package versions as the cached $key"
else
  rm -rf "${CACHE:?}/$key"
  chmod 755 "$OUT"
  mv "$OUT" "$CACHE/$key"
fi
echo "$key" >"$POINTER.tmp" && mv "$POINTER.tmp" "$POINTER"
log "done in $((SECONDS - start)) s: $(tr '\n' ' ' <"$CACHE/$key/versions.txt")"
echo "$CACHE/$key"
