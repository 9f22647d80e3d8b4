"""CLI: ``python -m vmrunner.testing.guest build [--flavor cloud|generic] [--out DIR]``."""

from __future__ import annotations

import argparse
import shutil
import sys
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vmrunner.testing.guest",
                                description="Build or boot the tiny test guest.")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the guest; prints its directory")
    b.add_argument("--flavor", choices=FLAVORS, default="cloud")
    b.add_argument("--out", type=Path, help="also place the files in this directory")
    b.add_argument("--no-qga", action="store_true", help="leave qemu-guest-agent out")
    b.add_argument("--cache", type=Path, help="cache directory (default: $VMRUNNER_GUEST_CACHE "
                   "or ~/.cache/vmrunner/guest)")
    b.add_argument("--refresh", action="store_true", help="ask apt for newer packages")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    b.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)

    def log(msg: str) -> None:
        if not a.quiet:
            print(f"[guest] {msg}", file=sys.stderr)

    try:
        image = build_guest(a.flavor, with_qga=not a.no_qga, cache_dir=a.cache,
                            refresh=a.refresh, force=a.force, log=log)
    except GuestBuildError as e:
        print(f"guest build failed: {e}", file=sys.stderr)
        return 1
    print(_export(image, a.out) if a.out else image.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
