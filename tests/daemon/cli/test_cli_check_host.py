"""``vmrunner check --host``: one PASS/WARN/FAIL line per check of this host, exit 0 or 7
(issue 18, item 3). Real binaries and devices of this host; the expectations are computed here
independently of vmrunner's code (``--version`` run by the test, ``/sys/module`` read)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from vmrunner.daemon.check_host import bridge_conf_allows

REPO = Path(__file__).resolve().parents[3]
CONFIG = """"/Runner":
  dataDir: {base}/data
  vm:
    name: host
    firmware: {firmware}
    accelerator: {accel}
    useTpm: true
    network: [{{type: tap, bridge: vmrbr0}}, {{type: user}}]
"""


def vmrunner(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "vmrunner", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def line(out: str, subject: str) -> str:
    found = [x for x in out.splitlines() if x[6:].startswith(subject)]
    assert len(found) == 1, out
    return found[0]


def first_version_line(program: str) -> str:
    done = subprocess.run([program, "--version"], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()[0].split(", Copyright")[0]


def kvm_usable() -> bool:
    return (os.access("/dev/kvm", os.R_OK | os.W_OK)
            and any(Path("/sys/module", m).is_dir() for m in ("kvm_intel", "kvm_amd")))


def test_generic_checks_without_a_configuration() -> None:
    done = vmrunner("check", "--host")
    assert done.returncode == 0, done
    out = done.stdout
    assert "pass -c/--config" in out
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu is not None, "the test bed installs QEMU"
    assert line(out, "qemu:").startswith("PASS  ") and first_version_line(qemu) in out
    swtpm = shutil.which("swtpm")
    assert swtpm is not None, "the test bed installs swtpm"
    assert line(out, "swtpm:").startswith("PASS  ") and first_version_line(swtpm) in out
    assert line(out, "kvm:").startswith("PASS  " if kvm_usable() else "WARN  "), out
    ovmf = Path("/usr/share/OVMF/OVMF_CODE.fd").is_file()
    assert line(out, "ovmf (uefi):").startswith("PASS  " if ovmf else "WARN  "), out
    assert "bridge" not in out  # no configuration, no NICs


def test_what_the_configuration_needs_is_a_fail(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(CONFIG.format(base=tmp_path, firmware="uefi", accel="kvm"))
    done = vmrunner("check", "--host", "-c", str(file))
    out = done.stdout
    assert done.returncode == 7, done
    assert line(out, "bridge vmrbr0 (/Runner/vm/network/0):") == (
        "FAIL  bridge vmrbr0 (/Runner/vm/network/0): vmrbr0 does not exist "
        "(create it, or use 'type: user')")
    assert "network/1" not in out  # user networking needs no bridge
    if not kvm_usable():
        assert line(out, "kvm:").startswith("FAIL  ") and "accelerator is kvm" in out
    assert line(out, "ovmf (uefi):").startswith("PASS  "), out
    assert "ovmf (secure)" not in out  # only the configured kind


def test_an_existing_bridge_is_found_in_a_network_namespace(tmp_path: Path) -> None:
    """A bridge made in the test's own network namespace (nothing outside it is touched);
    the host has no /etc/qemu/bridge.conf, so the helper's ACL is what fails then."""
    file = tmp_path / "config.yaml"
    file.write_text(CONFIG.format(base=tmp_path, firmware="bios", accel="tcg"))
    setup = ("mount --make-rprivate / && ip link add vmrbr0 type bridge && "
             "mount -t sysfs none /sys && exec \"$@\"")
    done = vmrunner("check", "--host", "-c", str(file),
                    prefix=("unshare", "--net", "--mount", "sh", "-c", setup, "sh"))
    bridge = line(done.stdout, "bridge vmrbr0")
    assert "does not exist" not in bridge, done
    if Path("/etc/qemu/bridge.conf").exists():
        assert "vmrbr0" in bridge
    else:
        assert bridge.startswith("FAIL  ") and "/etc/qemu/bridge.conf cannot be read" in bridge
        assert "add 'allow vmrbr0'" in bridge and done.returncode == 7


def test_bridge_conf_rules(tmp_path: Path) -> None:
    conf = tmp_path / "bridge.conf"
    extra = tmp_path / "extra.conf"
    conf.write_text(f"# comment\nallow br1\ninclude {extra}\n")
    extra.write_text("allow br2  # trailing comment\n")
    assert bridge_conf_allows("br1", conf, set())
    assert bridge_conf_allows("br2", conf, set())
    assert not bridge_conf_allows("br0", conf, set())
    extra.write_text("allow all\n")
    assert bridge_conf_allows("br0", conf, set())
    assert bridge_conf_allows("br0", tmp_path / "missing.conf", set()) is None


def test_an_invalid_configuration_exits_2(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text('"/Runner": {vm: {maximumCpus: x}}\n')
    done = vmrunner("check", "--host", "-c", str(file))
    assert done.returncode == 2, done
    assert "/Runner/vm/maximumCpus" in done.stdout
