#!/usr/bin/env bash
# The project's test command: set up (scripts/setup.sh, scripts/k8s-apiserver.sh,
# scripts/promtool.sh), then pytest, mypy --strict, ruff.
# Extra arguments go to pytest (e.g. bash scripts/test.sh tests/guest -x).
# Guest tests skip when QEMU is missing -- unless CI is set, then they fail.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=$(bash scripts/setup.sh)
failed=()
# the real Kubernetes API server of the k8s tests: built once (minutes), then cached (~0 s)
if K8S_BIN=$(bash scripts/k8s-apiserver.sh); then
  export VMRUNNER_K8S_BIN=$K8S_BIN
else
  failed+=(k8s-apiserver)
fi
# promtool (Prometheus' metrics linter) out of Debian's package, nothing installed; cached
if PROMTOOL_DIR=$(bash scripts/promtool.sh); then
  export PATH=$PROMTOOL_DIR:$PATH
else
  failed+=(promtool)
fi

rc=0
# the pod tests (marker "pod") run in their own stage: scripts/test-pod.sh
# two pytest-xdist workers: the VM tests (markers guest, k8s) one after another on one of
# them, the rest spread over both (tests/conftest.py); VMRUNNER_TEST_WORKERS=0 runs in-process
"$PY" -m pytest -n "${VMRUNNER_TEST_WORKERS:-2}" --dist loadgroup -m "not pod" "$@" || rc=$?
case $rc in
  0) ;;
  5) echo "pytest collected no tests: that is a defect, not a pass" >&2; failed+=(pytest) ;;
  *) failed+=(pytest) ;;
esac
"$PY" -m mypy --strict vmrunner || failed+=(mypy)
"$PY" -m ruff check . || failed+=(ruff)

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all checks passed"
