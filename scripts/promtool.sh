#!/usr/bin/env bash
# promtool for the tests (tests/api/test_api_vmstats.py), cached; print its directory.
#
# promtool ships only in Debian's prometheus package, and installing that package also
# installs and, on a systemd host, starts a Prometheus server (port 9090) for good. So the
# package is fetched with `apt-get download` and only /usr/bin/promtool is taken out of it
# (dpkg-deb -x): nothing is installed, no service appears.
#
# Cache: ~/.cache/vmrunner/promtool/<package version>/promtool. A warm run costs one
# apt-cache call. The only line on stdout is the directory; progress goes to stderr.
set -euo pipefail
log() { printf '[promtool] %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi

candidate() { apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
version=$(candidate)
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  log "apt-get update (no prometheus package in the package lists)"
  "${SUDO[@]}" apt-get update -qq >&2
  version=$(candidate)
fi
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  log "Debian's prometheus package is not available from this machine's sources"
  exit 1
fi

CACHE=${VMRUNNER_PROMTOOL_CACHE:-$HOME/.cache/vmrunner/promtool}
dir=$CACHE/${version//[^A-Za-z0-9.+~-]/_}
if [ -x "$dir/promtool" ]; then
  echo "$dir"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "fetching promtool from Debian's prometheus $version (apt-get download; not installed)"
(cd "$work" && apt-get download -q "prometheus=$version" >&2 2>"$work/download.log") || {
  cat "$work/download.log" >&2
  exit 1
}
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p "$dir"
install -m 0755 "$work/root/usr/bin/promtool" "$dir/promtool.tmp"
mv "$dir/promtool.tmp" "$dir/promtool"
"$dir/promtool" --version >&2
echo "$dir"
