#!/usr/bin/env bash
# Install what vmrunner and its tests need on Debian 12; safe to run again.
#   - Debian packages (apt) -- skipped when all are installed, unless VMRUNNER_APT_UPDATE=1
#   - the project with its test extras (pip install -e '.[test]'), into .venv when the
#     system Python is "externally managed" (Debian's own python3)
# Progress goes to stderr; the only line on stdout is the Python interpreter to use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi

# QEMU + swtpm + firmware for the VMs; the guest builder needs only apt-get and
# dpkg-deb (always present on Debian): its cpio and depmod come from busybox-static.
PKGS=(qemu-system-x86 qemu-utils swtpm swtpm-tools ovmf)
# A real SPICE client for the console tests: remote-viewer on Xvfb, screenshots by imagemagick.
PKGS+=(virt-viewer xvfb xauth imagemagick)
# The tap networking test: a bridge in its own network namespace (ip, unshare, nsenter).
PKGS+=(iproute2 util-linux)
# systemd-analyze verifies and scores examples/vmrunner@.service (tests/daemon/test_daemon_unit.py).
PKGS+=(systemd)
# The quickstart test (tests/quickstart/): a bootable stand-in for the Debian cloud image
# (syslinux into a FAT file system, without mounting) and the ssh client the quickstart uses.
PKGS+=(syslinux syslinux-common mtools dosfstools openssh-client)
# (promtool, for tests/api/test_api_vmstats.py, is taken out of Debian's prometheus package
# by scripts/promtool.sh without installing it: the package would start a Prometheus server.)
externally_managed() {
  "$1" -c 'import pathlib, sys, sysconfig
sys.exit(0 if pathlib.Path(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED").exists() else 1)'
}
if ! command -v python3 >/dev/null || externally_managed python3; then
  PKGS+=(python3 python3-venv python3-pip)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ "${VMRUNNER_APT_UPDATE:-0}" = 1 ]; then
  log "apt-get update"
  "${SUDO[@]}" apt-get update -qq >&2
  log "apt-get install ${PKGS[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${PKGS[@]}" >&2
else
  log "Debian packages already installed"
fi

# Which Python: an active virtualenv, else python3 unless Debian manages it, else .venv.
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY=$VIRTUAL_ENV/bin/python
elif externally_managed python3; then
  [ -x .venv/bin/python ] || { log "creating .venv"; python3 -m venv .venv >&2; }
  PY=$PWD/.venv/bin/python
else
  PY=$(command -v python3)
fi

stamp=.cache/setup-$(printf '%s' "$PY" | sha256sum | cut -c1-12)
want=$(sha256sum pyproject.toml | cut -c1-64)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
   && "$PY" -c 'import vmrunner, pytest, pytest_asyncio, mypy, ruff' 2>/dev/null; then
  log "project already installed for $PY"
else
  log "pip install -e '.[test]' ($PY)"
  "$PY" -m pip install -q --disable-pip-version-check -e '.[test]' >&2
  mkdir -p .cache && echo "$want" > "$stamp"
fi
# Byte-compile vmrunner as an installed wheel would be: an editable install otherwise compiles
# every module at each start of a runner when PYTHONDONTWRITEBYTECODE is set (~45 ms each).
"$PY" -m compileall -q vmrunner >&2
echo "$PY"
