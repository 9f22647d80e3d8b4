"""CLI of the test guest.

``build [--flavor cloud|generic] [--out DIR]``  build or reuse; prints the directory
``boot [--flavor F] [--knob tg.X=Y]``            boot under QEMU, show TG-READY, ACPI power-off
``qemu-cmd [--flavor F]``                        print a QEMU command line for hand debugging
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .builder import FLAVORS, GuestBuildError, GuestImage, build_guest


def _export(image: GuestImage, out: Path) -> Path:
    """Put the guest's files into ``out`` (hard links when possible)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("vmlinuz", "initrd.img", "cmdline", "manifest.json"):
        src, dst = image.directory / name, out / name
        dst.unlink(missing_ok=True)
        try:
            dst.hardlink_to(src)
        except OSError:
            shutil.copy2(src, dst)
    return out


async def _boot(image: GuestImage, knobs: list[str]) -> int:
    """Boot the guest, print its readiness line, power it off with the ACPI button."""
    from ..accel import decide_accel
    from ..qemu import GuestSpec, GuestVM, describe_exit

    accel = decide_accel()
    print(f"accelerator: {accel.label} ({accel.reason})")
    with tempfile.TemporaryDirectory(prefix="vmrunner-guest-") as tmp:
        async with GuestVM(GuestSpec(image, accel, knobs=tuple(knobs)), Path(tmp)) as vm:
            print("$ " + shlex.join(vm.argv()))
            details = await vm.start()
            print(f"console: TG-READY {details}")
            print(f"ready {vm.boot_seconds:.2f} s after QEMU was started")
            t0 = time.monotonic()
            await vm.qmp.execute("system_powerdown")
            print("sent system_powerdown (ACPI power button)")
            rc = await vm.wait_exit(60)
            if rc is None:
                print("the guest did not power off within 60 s\n" + describe_exit(vm))
                return 1
            print(f"QEMU exited with {rc} after {time.monotonic() - t0:.2f} s")
            return 0 if rc == 0 else 1


def _qemu_cmd(image: GuestImage, knobs: list[str]) -> str:
    from ..accel import decide_accel

    return shlex.join([
        "qemu-system-x86_64", "-machine", "q35", *decide_accel().qemu_args(),
        "-smp", "1,maxcpus=4", "-m", "512", "-nodefaults", "-no-user-config",
        "-display", "none", "-no-reboot",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", image.cmdline(*knobs),
        "-serial", "mon:stdio", "-qmp", "unix:/tmp/tg-qmp.sock,server=on,wait=off",
        "-device", "virtio-balloon-pci,id=balloon0"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vmrunner.testing.guest",
                                description="Build or boot the tiny test guest.")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the guest; prints its directory")
    b.add_argument("--out", type=Path, help="also place the files in this directory")
    b.add_argument("--refresh", action="store_true", help="ask apt for newer packages")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    r = sub.add_parser("boot", help="boot under QEMU, show TG-READY, then power off via ACPI")
    c = sub.add_parser("qemu-cmd", help="print a QEMU command line for debugging by hand")
    for sp in (b, r, c):
        sp.add_argument("--flavor", choices=FLAVORS, default="cloud")
        sp.add_argument("--no-qga", action="store_true", help="leave qemu-guest-agent out")
        sp.add_argument("--cache", type=Path, help="cache directory (default: "
                        "$VMRUNNER_GUEST_CACHE or ~/.cache/vmrunner/guest)")
        sp.add_argument("-q", "--quiet", action="store_true", help="no build progress")
    for sp in (r, c):
        sp.add_argument("--knob", action="append", default=[], metavar="tg.NAME=VALUE",
                        help="guest knob on the kernel command line (repeatable)")
    a = p.parse_args(argv)

    def log(msg: str) -> None:
        if not a.quiet:
            print(f"[guest] {msg}", file=sys.stderr)

    try:
        image = build_guest(a.flavor, with_qga=not a.no_qga, cache_dir=a.cache,
                            refresh=getattr(a, "refresh", False),
                            force=getattr(a, "force", False), log=log)
    except GuestBuildError as e:
        print(f"guest build failed: {e}", file=sys.stderr)
        return 1
    if a.cmd == "boot":
        return asyncio.run(_boot(image, a.knob))
    if a.cmd == "qemu-cmd":
        print(_qemu_cmd(image, a.knob))
        return 0
    print(_export(image, a.out) if a.out else image.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
