#!/usr/bin/env bash
# Demo: set up (scripts/setup.sh), then boot a tiny VM and shut it down gracefully.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=$(bash scripts/setup.sh)
echo "vmrunner's runner is not ready yet: this demo boots the tiny test guest directly"
echo "with QEMU, shows its console readiness line and powers it off with the ACPI button."
exec "$PY" -m vmrunner.testing.guest boot
