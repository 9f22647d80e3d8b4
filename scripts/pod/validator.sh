#!/usr/bin/env bash
# Print the path of the kubernetes-validate CLI (offline validation against the bundled
# Kubernetes OpenAPI schemas), installing it first into its own venv ($POD_CACHE/kv-venv), so
# the project's environment stays free of its 110 MB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CACHE=${POD_CACHE:-$PWD/.cache/pod}
VENV=$CACHE/kv-venv
VERSION=1.37.0
if [ ! -x "$VENV/bin/kubernetes-validate" ] \
   || ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$VERSION')" 2>/dev/null; then
  printf '[validator] pip install kubernetes-validate==%s into %s\n' "$VERSION" "$VENV" >&2
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$VERSION" >&2
fi
echo "$VENV/bin/kubernetes-validate"
