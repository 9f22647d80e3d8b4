"""Build the tiny test guest (Debian kernel + busybox initramfs) from Debian packages.

Nothing is installed on the host: the packages are fetched with ``apt-get download``,
unpacked with ``dpkg-deb -x`` and the initramfs is packed by the downloaded busybox
(``cpio -H newc``).  Results are cached under :func:`default_cache_dir`:

* ``<cache>/debs/``            downloaded ``.deb`` files, reused by later builds;
* ``<cache>/resolved/<s>.json`` which package files the inputs ``<s>`` resolved to,
  remembered together with a fingerprint of apt's package lists;
* ``<cache>/<key>/``           one finished guest: ``vmlinuz``, ``initrd.img``,
  ``cmdline``, ``manifest.json``.

``<key>`` hashes the rootfs overlay, this module, the flavour, the module list and
the exact ``.deb`` file names (so the package versions).  As long as apt's package
lists are unchanged, a cache hit does not run apt at all.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

Flavor = Literal["cloud", "generic"]
FLAVORS: tuple[Flavor, ...] = ("cloud", "generic")

#: Metapackage of each kernel flavour.  The cloud kernel boots in ~2.6 s under TCG
#: but has no AHCI (no ``ide-cd`` on q35); the generic one has it and boots in ~5 s.
KERNEL_META: dict[Flavor, str] = {
    "cloud": "linux-image-cloud-amd64",
    "generic": "linux-image-amd64",
}
#: Modules loaded at boot, in this order (their dependencies are added automatically).
MODULES: tuple[str, ...] = (
    "virtio_pci", "virtio_balloon", "virtio_console", "virtio_scsi", "virtio_blk",
    "sr_mod", "isofs", "button", "evdev", "virtio_net", "pvpanic_mmio",
)
FLAVOR_MODULES: dict[Flavor, tuple[str, ...]] = {"cloud": (), "generic": ("ahci",)}
#: qemu-guest-agent and the packages holding its shared libraries.
QGA_PACKAGES: tuple[str, ...] = (
    "qemu-guest-agent", "libglib2.0-0", "libpcre2-8-0", "libudev1", "libnuma1",
    "liburing2", "libc6",
)
DEFAULT_CMDLINE = "console=ttyS0 panic=-1 quiet"
APT_LISTS = Path("/var/lib/apt/lists")
_DEPENDS = re.compile(rb"(?:^|\0)depends=([^\0]*)\0")

Log = Callable[[str], None]


class GuestBuildError(RuntimeError):
    """The guest could not be built (apt, dpkg-deb or a missing module)."""


class GuestImage(msgspec.Struct, frozen=True):
    """A finished guest in the cache (treat the files as read-only)."""

    directory: Path
    key: str
    flavor: Flavor
    with_qga: bool
    kernel_version: str
    packages: tuple[str, ...] = ()

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    def cmdline(self, *knobs: str) -> str:
        """Kernel command line plus ``tg.*`` knobs, e.g. ``cmdline("tg.powerbtn=ignore")``."""
        return " ".join((DEFAULT_CMDLINE, *knobs))


def default_cache_dir() -> Path:
    """``$VMRUNNER_GUEST_CACHE``, else ``$XDG_CACHE_HOME/vmrunner/guest`` (``~/.cache``)."""
    env = os.environ.get("VMRUNNER_GUEST_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vmrunner" / "guest"


def overlay_files(name: str) -> Iterator[tuple[str, bytes]]:
    """(relative path, content) of every file under this package's directory ``name`` (the
    rootfs overlay, the cloud-image stand-in's), sorted; ``__pycache__`` left out."""
    root = resources.files(__package__).joinpath(name)
    stack = [("", root)]
    found: list[tuple[str, bytes]] = []
    while stack:
        prefix, node = stack.pop()
        for child in node.iterdir():
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                if child.name != "__pycache__":
                    stack.append((rel + "/", child))
            elif child.name != "__pycache__":
                found.append((rel, child.read_bytes()))
    yield from sorted(found)


def _rootfs_files() -> Iterator[tuple[str, bytes]]:
    """(relative path, content) of every file of the rootfs overlay, sorted."""
    return overlay_files("rootfs")


def _modules(flavor: Flavor) -> tuple[str, ...]:
    return MODULES + FLAVOR_MODULES[flavor]


def input_key(flavor: Flavor, with_qga: bool) -> str:
    """Hash of everything that shapes the guest except the package versions."""
    h = hashlib.sha256()
    h.update(f"{flavor} qga={with_qga} modules={','.join(_modules(flavor))}\n".encode())
    h.update(Path(__file__).read_bytes())
    for rel, data in _rootfs_files():
        h.update(f"\0{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


def apt_lists_fingerprint() -> str:
    """Cheap fingerprint of apt's package lists (names, sizes, mtimes): no apt call."""
    h = hashlib.sha256()
    if APT_LISTS.is_dir():
        for p in sorted(APT_LISTS.iterdir()):
            if p.is_file() and ("Packages" in p.name or p.name.endswith("Release")):
                st = p.stat()
                h.update(f"{p.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _run(argv: list[str], cwd: Path | None = None, what: str = "") -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise GuestBuildError(f"{what or argv[0]}: {argv[0]} not found (Debian host needed)") from e
    except subprocess.CalledProcessError as e:
        raise GuestBuildError(
            f"{what or argv[0]} failed ({' '.join(argv)}): {e.stderr.strip()[-2000:]}"
        ) from e
    return done.stdout


def _resolve(flavor: Flavor, with_qga: bool, log: Log) -> dict[str, tuple[str, int]]:
    """Package -> (.deb file name, size) as apt would download them now."""
    meta = KERNEL_META[flavor]

    def kernel_pkg() -> str:
        out = _run(["apt-cache", "depends", meta], what="apt-cache depends")
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("Depends:"):
                return line.split(":", 1)[1].strip()
        return ""

    try:
        kernel = kernel_pkg()
    except GuestBuildError:
        kernel = ""
    if not kernel:
        log("apt package lists missing: running apt-get update")
        _run(["apt-get", "update", "-qq"], what="apt-get update")
        kernel = kernel_pkg()
    if not kernel:
        raise GuestBuildError(f"cannot resolve {meta} with apt-cache")
    pkgs = [kernel, "busybox-static", *(QGA_PACKAGES if with_qga else ())]
    with tempfile.TemporaryDirectory() as empty:  # apt prints nothing for files in cwd
        out = _run(["apt-get", "download", "--print-uris", *pkgs], cwd=Path(empty),
                   what="apt-get download --print-uris")
    files: dict[str, tuple[str, int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            name = parts[1]
            files[name.split("_", 1)[0]] = (name, int(parts[2]))
    missing = [p for p in pkgs if p not in files]
    if missing:
        raise GuestBuildError(f"apt has no .deb for: {', '.join(missing)}")
    return {p: files[p] for p in pkgs}


def _download(files: dict[str, tuple[str, int]], debs: Path, log: Log) -> None:
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p, (name, size) in files.items()
               if not (debs / name).is_file() or (debs / name).stat().st_size != size]
    if not missing:
        return
    log(f"downloading {' '.join(missing)}")
    argv = ["apt-get", "-q", "download", *missing]
    if os.geteuid() == 0:  # the _apt sandbox user could not write to our cache dir
        argv[1:1] = ["-o", "APT::Sandbox::User=root"]
    _run(argv, cwd=debs, what="apt-get download")


def fetch_debs(packages: tuple[str, ...], cache_dir: Path | None = None,
               log: Log | None = None) -> dict[str, Path]:
    """Package -> its ``.deb`` in ``<cache>/debs/``, downloaded unless already there.

    For helpers that add packages on top of the guest (the cloud-image stand-in);
    the host stays untouched, as for the guest itself."""
    with tempfile.TemporaryDirectory() as empty:  # apt prints nothing for files in cwd
        out = _run(["apt-get", "download", "--print-uris", *packages], cwd=Path(empty),
                   what="apt-get download --print-uris")
    files: dict[str, tuple[str, int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            files[parts[1].split("_", 1)[0]] = (parts[1], int(parts[2]))
    missing = [p for p in packages if p not in files]
    if missing:
        raise GuestBuildError(f"apt has no .deb for: {', '.join(missing)}")
    debs = (cache_dir or default_cache_dir()).expanduser() / "debs"
    _download({p: files[p] for p in packages}, debs, log or (lambda _msg: None))
    return {p: debs / files[p][0] for p in packages}


def _add_modules(src: Path, dst: Path, wanted: tuple[str, ...]) -> list[str]:
    """Copy the wanted modules and their dependencies; return the ones to modprobe."""
    by_name: dict[str, str] = {}
    for rel in (src / "modules.order").read_text().split():
        base = rel.rsplit("/", 1)[-1]
        by_name[re.sub(r"\.ko(\..*)?$", "", base).replace("-", "_")] = rel
    builtin = {
        re.sub(r"\.ko$", "", rel.rsplit("/", 1)[-1]).replace("-", "_")
        for rel in (src / "modules.builtin").read_text().split()
    }
    queue, seen, load = list(wanted), set[str](), []
    while queue:
        name = queue.pop(0).replace("-", "_")
        if name in seen:
            continue
        seen.add(name)
        if name not in by_name:
            if name in builtin:
                continue
            raise GuestBuildError(f"kernel module {name} not found")
        rel = by_name[name]
        if name in wanted:
            load.append(name)
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        data = (src / rel).read_bytes()
        target.write_bytes(data)
        m = _DEPENDS.search(data)
        if m and m.group(1):
            queue.extend(d.decode() for d in m.group(1).split(b","))
    for extra in ("modules.order", "modules.builtin"):
        shutil.copy2(src / extra, dst / extra)
    return [m for m in wanted if m in load]


def _add_qga(debs: Path, files: dict[str, tuple[str, int]], work: Path, root: Path) -> None:
    q = work / "qga"
    for pkg in QGA_PACKAGES:
        _run(["dpkg-deb", "-x", str(debs / files[pkg][0]), str(q)], what="dpkg-deb -x")
    libdirs = f"{q}/lib/x86_64-linux-gnu:{q}/usr/lib/x86_64-linux-gnu"
    ldso = q / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    out = _run([str(ldso), "--library-path", libdirs, "--list", str(q / "usr/sbin/qemu-ga")],
               what="ld.so --list qemu-ga")
    libdir = root / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True, exist_ok=True)
    for line in out.splitlines():
        if "=>" not in line:
            continue
        target = line.split("=>", 1)[1].split()[0]
        if target == "not":
            raise GuestBuildError(f"qemu-ga: missing library: {line.strip()}")
        shutil.copy(Path(target).resolve(), libdir / Path(target).name)
    shutil.copy(ldso.resolve(), libdir / ldso.name)
    (root / "lib64").mkdir(exist_ok=True)
    (root / "lib64" / ldso.name).symlink_to(f"../lib/x86_64-linux-gnu/{ldso.name}")
    (root / "usr/sbin").mkdir(parents=True, exist_ok=True)
    shutil.copy(q / "usr/sbin/qemu-ga", root / "usr/sbin/qemu-ga")


def _add_overlay(root: Path) -> None:
    for rel, data in _rootfs_files():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if data.startswith(b"#!") else 0o644)


def _assemble(flavor: Flavor, with_qga: bool, files: dict[str, tuple[str, int]],
              debs: Path, out: Path, log: Log) -> str:
    """Build vmlinuz + initrd.img into ``out``; return the kernel version."""
    kernel_pkg = next(iter(files))
    with tempfile.TemporaryDirectory(prefix="vmrunner-guest-") as tmp:
        work = Path(tmp)
        root = work / "root"
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run", "tmp",
                  "mnt/cd", "var", "etc/tg", "root"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "var/run").symlink_to("../run")

        log(f"extracting {kernel_pkg}")
        _run(["dpkg-deb", "-x", str(debs / files[kernel_pkg][0]), str(work / "k")],
             what="dpkg-deb -x")
        kver = next((work / "k/lib/modules").iterdir()).name
        shutil.copy(work / "k/boot" / f"vmlinuz-{kver}", out / "vmlinuz")
        load = _add_modules(work / "k/lib/modules" / kver, root / "lib/modules" / kver,
                            _modules(flavor))
        (root / "etc/tg/modules").write_text(" ".join(load) + "\n")

        _run(["dpkg-deb", "-x", str(debs / files["busybox-static"][0]), str(work / "bb")],
             what="dpkg-deb -x")
        bb = work / "bb/bin/busybox"
        shutil.copy(bb, root / "bin/busybox")
        for applet in _run([str(bb), "--list"]).split():
            link = root / "bin" / applet
            if applet != "busybox" and not link.exists():
                link.symlink_to("busybox")
        _run([str(bb), "depmod", "-b", str(root), kver], what="busybox depmod")

        if with_qga:
            log("adding qemu-guest-agent")
            _add_qga(debs, files, work, root)
        _add_overlay(root)

        log("packing initramfs")
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        with open(out / "initrd.img", "wb") as initrd:
            subprocess.run(
                [str(bb), "cpio", "-o", "-H", "newc", "-R", "0:0",
                 "--renumber-inodes", "--ignore-devno"],
                cwd=root, input="\n".join(names).encode() + b"\n", stdout=initrd,
                stderr=subprocess.DEVNULL, check=True)
    return kver


def _load_image(directory: Path) -> GuestImage | None:
    try:
        m = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    image = GuestImage(directory=directory, key=m["key"], flavor=m["flavor"],
                       with_qga=m["with_qga"], kernel_version=m["kernel_version"],
                       packages=tuple(m["packages"]))
    return image if image.kernel.is_file() and image.initrd.is_file() else None


def build_guest(flavor: Flavor = "cloud", *, with_qga: bool = True,
                cache_dir: Path | None = None, refresh: bool = False, force: bool = False,
                log: Log | None = None) -> GuestImage:
    """Return the cached guest for these inputs, building it if needed.

    ``refresh`` asks apt again even when its package lists look unchanged;
    ``force`` rebuilds even when a finished guest exists (``.deb`` files stay cached).
    """
    if flavor not in FLAVORS:
        raise ValueError(f"flavor: {flavor!r} is not one of {', '.join(FLAVORS)}")
    say: Log = log or (lambda _msg: None)
    cache = (cache_dir or default_cache_dir()).expanduser()
    (cache / "resolved").mkdir(parents=True, exist_ok=True)
    static = input_key(flavor, with_qga)
    memo_path = cache / "resolved" / f"{static}.json"
    lists = apt_lists_fingerprint()

    def memo_hit() -> GuestImage | None:
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            return None
        if memo.get("lists") != lists:
            return None
        return _load_image(cache / memo["key"])

    if not (refresh or force):
        hit = memo_hit()
        if hit:
            return hit
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per cache at a time
        if not (refresh or force):
            hit = memo_hit()  # another process may have built it meanwhile
            if hit:
                return hit
        files = _resolve(flavor, with_qga, say)
        h = hashlib.sha256(static.encode())
        for name, _size in files.values():
            h.update(f"\0{name}".encode())
        key = h.hexdigest()[:16]
        image = None if force else _load_image(cache / key)
        if image is None:
            _download(files, cache / "debs", say)
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache))
            staging.chmod(0o755)
            try:
                kver = _assemble(flavor, with_qga, files, cache / "debs", staging, say)
                (staging / "cmdline").write_text(DEFAULT_CMDLINE + "\n")
                manifest = {"key": key, "flavor": flavor, "with_qga": with_qga,
                            "kernel_version": kver,
                            "packages": [name for name, _size in files.values()],
                            "modules": list(_modules(flavor))}
                (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
                final = cache / key
                if final.exists():
                    shutil.rmtree(final)
                staging.rename(final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            image = _load_image(cache / key)
            if image is None:
                raise GuestBuildError(f"built guest in {cache / key} is incomplete")
            say(f"built {image.directory} (kernel {image.kernel_version})")
        memo_path.write_text(json.dumps({"lists": lists, "key": key}) + "\n")
        _prune(cache)
        return image


def _prune(cache: Path) -> None:
    """Forget outdated inputs (an older builder or rootfs) and the guests built from them."""
    current = {input_key(f, q) for f in FLAVORS for q in (True, False)}
    live = set()
    for memo in (cache / "resolved").glob("*.json"):
        if memo.stem not in current:
            memo.unlink(missing_ok=True)
            continue
        try:
            live.add(json.loads(memo.read_text())["key"])
        except (OSError, ValueError, KeyError):
            continue
    for d in cache.iterdir():
        if d.is_dir() and re.fullmatch(r"[0-9a-f]{16}", d.name) and d.name not in live:
            shutil.rmtree(d, ignore_errors=True)
