"""Launch the test guest under QEMU (and swtpm) with QMP and the serial console.

The helper listens on every socket itself and lets QEMU (and swtpm) connect as
clients, so nothing is polled and no console output can be lost::

    async with GuestVM(GuestSpec(image, accel), tmp_path) as vm:
        await vm.start()                  # returns the TG-READY details
        await vm.qmp.execute("system_powerdown")
        assert await vm.wait_exit(30) == 0
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, TypeVar

import msgspec
from qemu.qmp import EventListener, Message, QMPClient

from .accel import AccelVerdict
from .console import GuestConsole
from .guest import GuestImage

QEMU = "qemu-system-x86_64"
EventPredicate = Callable[[Message], bool]
T = TypeVar("T")


class GuestStartError(RuntimeError):
    """QEMU exited or stalled before the guest was up."""


class GuestSpec(msgspec.Struct, frozen=True):
    """What to boot.  ``disks`` become virtio-blk ``vda``, ``vdb``... (raw images)."""

    image: GuestImage
    accel: AccelVerdict
    memory_mib: int = 512
    cpus: int = 1
    max_cpus: int = 4
    knobs: tuple[str, ...] = ()          # tg.* kernel arguments, e.g. "tg.powerbtn=ignore"
    cdrom: Path | None = None            # None: no CD drive at all
    cd_bus: Literal["scsi", "ide"] = "scsi"   # ide = q35 AHCI, needs the generic flavour
    disks: tuple[Path, ...] = ()
    tpm: bool = False                    # swtpm + tpm-tis
    qga: bool = False                    # virtio-serial port org.qemu.guest_agent.0
    balloon: bool = True
    reboot: bool = False                 # False: -no-reboot (a guest reset ends QEMU)
    extra_args: tuple[str, ...] = ()


class GuestVM:
    """One QEMU process running the test guest (plus swtpm when asked); owns them all."""

    def __init__(self, spec: GuestSpec, workdir: Path) -> None:
        self.spec = spec
        self.dir = workdir
        self.qmp = QMPClient("guest")
        self.console: GuestConsole | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.swtpm: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.ready_at = 0.0
        self.sockdir = Path(tempfile.mkdtemp(prefix="tg-"))  # short: sun_path has 108 bytes
        self._servers: list[asyncio.AbstractServer] = []
        self._tpm_sock: socket.socket | None = None

    # -- paths ------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """A file in the work directory (qemu.log, console.log, swtpm.log, tpm/)."""
        return self.dir / name

    def socket_path(self, name: str) -> Path:
        return self.sockdir / name

    @property
    def qga_socket(self) -> Path:
        return self.socket_path("qga.sock")

    # -- lifecycle --------------------------------------------------------------
    def argv(self) -> list[str]:
        s, d = self.spec, self.sockdir
        argv = [QEMU, "-machine", "q35", *s.accel.qemu_args(),
                "-smp", f"{s.cpus},maxcpus={s.max_cpus}", "-m", str(s.memory_mib),
                "-nodefaults", "-no-user-config", "-display", "none",
                "-kernel", str(s.image.kernel), "-initrd", str(s.image.initrd),
                "-append", s.image.cmdline(*s.knobs),
                "-chardev", f"socket,id=qmp0,path={d}/qmp.sock",
                "-mon", "chardev=qmp0,mode=control",
                "-chardev", f"socket,id=ser0,path={d}/serial.sock",
                "-serial", "chardev:ser0"]
        if not s.reboot:
            argv.append("-no-reboot")
        if s.balloon:
            argv += ["-device", "virtio-balloon-pci,id=balloon0"]
        for i, disk in enumerate(s.disks):
            argv += ["-blockdev", f"driver=file,filename={disk},node-name=disk{i}f",
                     "-blockdev", f"driver=raw,file=disk{i}f,node-name=disk{i}",
                     "-device", f"virtio-blk-pci,drive=disk{i},id=vd{i}"]
        if s.cdrom is not None:
            argv += ["-blockdev",
                     f"driver=file,filename={s.cdrom},node-name=cdfile0,read-only=on",
                     "-blockdev", "driver=raw,file=cdfile0,node-name=cdmedia0,read-only=on"]
            if s.cd_bus == "scsi":
                argv += ["-device", "virtio-scsi-pci,id=scsi0",
                         "-device", "scsi-cd,bus=scsi0.0,drive=cdmedia0,id=cd0"]
            else:
                argv += ["-device", "ide-cd,bus=ide.0,drive=cdmedia0,id=cd0"]
        if s.tpm:
            argv += ["-chardev", f"socket,id=chrtpm,path={d}/swtpm.sock",
                     "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
                     "-device", "tpm-tis,tpmdev=tpm0"]
        if s.qga:
            argv += ["-device", "virtio-serial-pci,id=vser0",
                     "-chardev", f"socket,id=qga0,path={d}/qga.sock,server=on,wait=off",
                     "-device", "virtserialport,bus=vser0.0,chardev=qga0,"
                                "name=org.qemu.guest_agent.0"]
        return argv + list(s.extra_args)

    async def _start_swtpm(self) -> None:
        state = self.path("tpm")
        state.mkdir(exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.socket_path("swtpm.sock")))
        sock.listen(1)
        self._tpm_sock = sock  # swtpm accepts QEMU's control connection on it
        self.swtpm = await asyncio.create_subprocess_exec(
            "swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
            "--ctrl", f"type=unixio,fd={sock.fileno()}",
            "--log", f"file={self.path('swtpm.log')},level=1", "--terminate",
            stdin=asyncio.subprocess.DEVNULL, pass_fds=(sock.fileno(),))

    async def start(self, *, wait_ready: bool = True, timeout: float = 90.0) -> str:  # noqa: ASYNC109
        """Spawn QEMU, connect QMP and the console; wait for TG-READY unless told not to.

        Returns the readiness details ("" when not waiting).
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.spec.tpm:
            await self._start_swtpm()
        console_conn: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        console_conn = asyncio.get_running_loop().create_future()

        def on_console(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            if not console_conn.done():
                console_conn.set_result((r, w))

        self._servers.append(
            await asyncio.start_unix_server(on_console, str(self.socket_path("serial.sock"))))
        await self.qmp.start_server(str(self.socket_path("qmp.sock")))
        self.started_at = time.monotonic()
        with self._open_qemu_log() as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv(), stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err)
        await self._until_or_exit(self.qmp.accept(), 30, "QMP connection")
        reader, writer = await self._until_or_exit(console_conn, 30, "serial connection")
        self.console = GuestConsole(reader, writer, self.path("console.log"))
        if not wait_ready:
            return ""
        details = await self._until_or_exit(self.console.wait_ready(timeout), timeout + 1,
                                            "TG-READY")
        self.ready_at = time.monotonic()
        return details

    def _open_qemu_log(self) -> IO[bytes]:
        return open(self.path("qemu.log"), "wb")

    async def _until_or_exit(self, aw: Awaitable[T], timeout: float, what: str) -> T:  # noqa: ASYNC109
        """Await ``aw``, but fail early if QEMU exits first or time runs out."""
        assert self.process is not None
        task = asyncio.ensure_future(aw)
        exited = asyncio.ensure_future(self.process.wait())
        done, _ = await asyncio.wait({task, exited}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            exited.cancel()
            await asyncio.gather(exited, return_exceptions=True)
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if exited in done:
            raise GuestStartError(f"QEMU exited ({self.process.returncode}) before {what}\n"
                                  f"{describe_exit(self)}")
        exited.cancel()
        await asyncio.gather(exited, return_exceptions=True)
        raise GuestStartError(f"no {what} within {timeout:g} s\n{describe_exit(self)}")

    @property
    def boot_seconds(self) -> float:
        """QEMU spawn to TG-READY."""
        return self.ready_at - self.started_at

    async def wait_exit(self, timeout: float) -> int | None:  # noqa: ASYNC109
        """QEMU's exit code, or None if it is still running after ``timeout`` seconds."""
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            return None

    @contextlib.contextmanager
    def events(self, *names: str, where: EventPredicate | None = None
               ) -> Iterator[EventListener]:
        """Context manager yielding an :class:`EventListener` for these QMP events."""
        with self.qmp.listener(names, where) as listener:
            yield listener

    async def close(self) -> None:
        """Stop everything this VM started (by PID) and release the sockets."""
        if self.console:
            await self.console.close()
        with contextlib.suppress(Exception):
            await self.qmp.disconnect()
        for proc in (self.process, self.swtpm):
            if proc and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers.clear()
        if self._tpm_sock:
            self._tpm_sock.close()
            self._tpm_sock = None
        shutil.rmtree(self.sockdir, ignore_errors=True)

    async def __aenter__(self) -> GuestVM:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


async def wait_event(listener: EventListener, where: EventPredicate | None = None,
                     timeout: float = 30.0) -> Message | None:  # noqa: ASYNC109
    """Next event from ``listener`` satisfying ``where``; None after ``timeout`` seconds."""

    async def next_match() -> Message:
        while True:
            event = await listener.get()
            if where is None or where(event):
                return event

    try:
        return await asyncio.wait_for(next_match(), timeout)
    except TimeoutError:
        return None


def qemu_available() -> str | None:
    """Path of ``qemu-system-x86_64``, or None."""
    return shutil.which(QEMU)


def raw_disk(path: Path, size_mib: int = 4) -> Path:
    """Create a zero-filled (sparse) raw disk image."""
    with open(path, "wb") as f:
        f.truncate(size_mib * 2**20)
    return path


def describe_exit(vm: GuestVM) -> str:
    """QEMU's log and the console tail, for assertion messages."""
    log = vm.path("qemu.log")
    qemu_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    tail = vm.console.tail() if vm.console else ""
    return f"qemu log:\n{qemu_log}\nconsole:\n{tail}"




def kvm_boot_probe(image: GuestImage, timeout: float = 30.0) -> bool:
    """Does the guest boot to TG-READY with ``-accel kvm -cpu host`` within ``timeout``?"""

    async def probe(workdir: Path) -> bool:
        spec = GuestSpec(image, AccelVerdict("kvm", "probe"), memory_mib=256, max_cpus=1,
                         balloon=False)
        async with GuestVM(spec, workdir) as vm:
            try:
                await vm.start(timeout=timeout)
            except (GuestStartError, TimeoutError, EOFError):
                return False
            return True

    with tempfile.TemporaryDirectory(prefix="vmrunner-kvm-probe-") as tmp:
        return asyncio.run(probe(Path(tmp)))
