#!/usr/bin/env bash
# The pod test stage (docs/guide/kubernetes.md, "Testing with podman"): install podman, buildah,
# mmdebstrap, runc and catatonit (apt), then run the pytest tests marked "pod" (tests/pod):
# image build without a Docker engine, helm lint/template, offline schema validation,
# `podman kube play` of the rendered chart with the test guest, live config swap, graceful
# stop, and of a pod shaped like VM-Operator's manager pod (a loop device from losetup as its
# disk; needs root and /dev/loop-control). helm comes from an npm package, kubernetes-validate goes into its own venv; both,
# the base image tar and podman's layer cache are kept between local runs (.cache/pod).
# Extra arguments go to pytest. With CI set, missing tools fail the tests instead of skipping.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '[test-pod] %s\n' "$*" >&2; }
PY=$(bash scripts/setup.sh)

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
PKGS=(podman buildah mmdebstrap runc catatonit uidmap netavark aardvark-dns
      containernetworking-plugins npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come from elsewhere (e.g. nodesource's nodejs): only ask apt if it is missing
if command -v npm >/dev/null; then
  missing=("${missing[@]/npm}")
  read -r -a missing <<< "${missing[*]}"
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq >&2
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
fi

export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/pod/containers.conf}
start=$(date +%s)
rc=0
"$PY" -m pytest -m pod tests/pod "$@" || rc=$?
# drop the layers that repeated builds leave untagged (the tagged images stay as a cache)
podman image prune -f >/dev/null 2>&1 || true
if [ -f .cache/pod/image-metrics.json ]; then
  log "image: $(cat .cache/pod/image-metrics.json)"
fi
log "pod stage took $(( $(date +%s) - start )) s"
case $rc in
  0) log "pod tests passed" ;;
  5) log "pytest collected no pod tests: that is a defect, not a pass"; exit 1 ;;
  *) exit "$rc" ;;
esac
