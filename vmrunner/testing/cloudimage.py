"""A local stand-in for Debian's genericcloud qcow2 image, for the quickstart's test.

It behaves like the cloud image for the quickstart's steps: a qcow2 disk that boots by itself
(BIOS, SYSLINUX in a FAT file system covering the whole disk, no partition table), finds the
NoCloud seed labelled ``cidata``, creates the user named in its user-data with the SSH keys
from it and starts an SSH server (Debian's dropbear) on a DHCP-configured ``eth0``. The OS is
the tiny test guest (its kernel, its initramfs with a second one appended that adds dropbear,
its libraries and ``/etc/tg/boot.d/50-cloud-init``), so the serial console speaks the test
guest's protocol.

Built without mounting anything (``mkfs.fat``, ``syslinux --install``, ``mcopy``,
``qemu-img convert``) and cached as ``<guest cache>/cloudimage/<key>/<IMAGE_NAME>``; ``key``
hashes the guest's key, this module, the stand-in's files and the ``.deb`` names;
``current.json`` remembers it with a fingerprint of apt's lists, so a cache hit runs no apt
while those lists are unchanged. Outdated stand-ins are pruned after a build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vmrunner.testing.guest.builder import (
    GuestBuildError,
    GuestImage,
    Log,
    apt_lists_fingerprint,
    default_cache_dir,
    fetch_debs,
    overlay_files,
)

IMAGE_NAME = "debian-12-genericcloud-amd64.qcow2"
#: dropbear and the packages holding the libraries it links.
PACKAGES: tuple[str, ...] = (
    "dropbear-bin", "libc6", "libcrypt1", "libtomcrypt1", "libtommath1", "zlib1g",
)
DISK_MIB = 64
SYSLINUX_CFG = """\
SERIAL 0 115200
DEFAULT standin
PROMPT 0
TIMEOUT 0
LABEL standin
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND console=ttyS0 panic=-1 quiet
"""


def _standin_files() -> Iterator[tuple[str, bytes]]:
    """(relative path, content) of the stand-in's overlay files, sorted."""
    return overlay_files("standin")


def _cpio_entry(out: io.BytesIO, ino: int, name: str, mode: int, data: bytes = b"") -> None:
    """One ``newc`` cpio entry (uid/gid 0, mtime 0), padded to 4 bytes."""
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0")
    out.write(b"\0" * (-out.tell() % 4))
    out.write(data)
    out.write(b"\0" * (-out.tell() % 4))


def _cpio(root: Path) -> bytes:
    """An uncompressed ``newc`` archive of ``root`` (appended to the guest's initramfs: the
    kernel unpacks concatenated archives in order, later files replacing earlier ones)."""
    out = io.BytesIO()
    paths = sorted(root.rglob("*"))
    for ino, path in enumerate(paths, start=1):
        name = str(path.relative_to(root))
        if path.is_symlink():
            _cpio_entry(out, ino, name, 0o120777, str(path.readlink()).encode())
        elif path.is_dir():
            _cpio_entry(out, ino, name, 0o040755)
        else:
            _cpio_entry(out, ino, name, 0o100000 | (path.stat().st_mode & 0o7777),
                        path.read_bytes())
    _cpio_entry(out, len(paths) + 1, "TRAILER!!!", 0)
    out.write(b"\0" * (-out.tell() % 512))
    return out.getvalue()


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(argv, check=True, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise GuestBuildError(f"{what}: {argv[0]} not found (scripts/setup.sh installs it)") from e
    except subprocess.CalledProcessError as e:
        detail = e.stderr.strip()[-2000:]
        raise GuestBuildError(f"{what} failed ({' '.join(argv)}): {detail}") from e
    return done.stdout


def _overlay(debs: dict[str, Path], work: Path) -> Path:
    """The appended initramfs's tree: dropbear, its libraries, the cloud-init hook."""
    x = work / "x"
    for deb in debs.values():
        _run(["dpkg-deb", "-x", str(deb), str(x)], "dpkg-deb -x")
    root = work / "overlay"
    libdir = root / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (root / "usr/sbin").mkdir(parents=True)
    (root / "lib64").mkdir()
    libdirs = f"{x}/lib/x86_64-linux-gnu:{x}/usr/lib/x86_64-linux-gnu"
    ldso = x / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    listing = _run([str(ldso), "--library-path", libdirs, "--list",
                    str(x / "usr/sbin/dropbear")], "ld.so --list dropbear")
    for line in listing.splitlines():
        if "=>" not in line:
            continue
        lib = line.split("=>", 1)[1].split()[0]
        if lib == "not":
            raise GuestBuildError(f"dropbear: missing library: {line.strip()}")
        shutil.copy(Path(lib).resolve(), libdir / Path(lib).name)
    shutil.copy(ldso.resolve(), libdir / ldso.name)
    (root / "lib64" / ldso.name).symlink_to(f"../lib/x86_64-linux-gnu/{ldso.name}")
    shutil.copy(x / "usr/sbin/dropbear", root / "usr/sbin/dropbear")
    for rel, data in _standin_files():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if data.startswith(b"#!") else 0o644)
    return root


def _disk(guest: GuestImage, initrd: bytes, work: Path, target: Path) -> None:
    """A whole-disk FAT with SYSLINUX, the kernel and the initramfs, converted to qcow2."""
    raw = work / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(DISK_MIB << 20)
    _run(["mkfs.fat", "-n", "STANDIN", str(raw)], "mkfs.fat")
    _run(["syslinux", "--install", str(raw)], "syslinux --install")
    (work / "initrd.img").write_bytes(initrd)
    (work / "syslinux.cfg").write_text(SYSLINUX_CFG)
    _run(["mcopy", "-i", str(raw), str(guest.kernel), str(work / "initrd.img"),
          str(work / "syslinux.cfg"), "::"], "mcopy")
    _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(target)],
         "qemu-img convert")


def build_cloud_image(guest: GuestImage, cache_dir: Path | None = None,
                      log: Log | None = None) -> Path:
    """The cached stand-in image for ``guest`` (built if needed); treat it as read-only,
    like the downloaded cloud image: VMs run on an overlay of it."""
    say: Log = log or (lambda _msg: None)
    cache = (cache_dir or default_cache_dir()).expanduser()
    base = cache / "cloudimage"
    h = hashlib.sha256(f"{guest.key}\0".encode())
    h.update(Path(__file__).read_bytes())
    for rel, data in _standin_files():
        h.update(f"\0{rel}\0{len(data)}\0".encode())
        h.update(data)
    memo = {"inputs": h.hexdigest()[:16], "lists": apt_lists_fingerprint()}
    with contextlib.suppress(OSError, ValueError, KeyError):
        last = json.loads((base / "current.json").read_text())
        known = base / str(last["key"]) / IMAGE_NAME
        if {k: last[k] for k in memo} == memo and known.is_file():
            return known  # apt's lists unchanged: no apt call
    debs = fetch_debs(PACKAGES, cache, say)
    for deb in debs.values():
        h.update(f"\0{deb.name}".encode())
    key = h.hexdigest()[:16]
    image = base / key / IMAGE_NAME
    if image.is_file():
        (base / "current.json").write_text(json.dumps({**memo, "key": key}) + "\n")
        return image
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image.is_file():
            return image
        say(f"building the cloud-image stand-in {key}")
        with tempfile.TemporaryDirectory(prefix=".standin-", dir=base) as tmp:
            work = Path(tmp)
            initrd = guest.initrd.read_bytes()
            initrd += b"\0" * (-len(initrd) % 512) + _cpio(_overlay(debs, work))
            staging = work / "out"
            staging.mkdir()
            _disk(guest, initrd, work, staging / IMAGE_NAME)
            for old in base.iterdir():
                if old.is_dir() and not old.name.startswith("."):
                    shutil.rmtree(old, ignore_errors=True)
            staging.rename(base / key)
        (base / "current.json").write_text(json.dumps({**memo, "key": key}) + "\n")
    return image
