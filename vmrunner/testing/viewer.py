"""A real SPICE client for tests: ``remote-viewer`` (Debian's virt-viewer) on a private Xvfb.

::

    async with Xvfb() as display:
        async with RemoteViewer(display, "127.0.0.1", port, password, workdir) as viewer:
            ...                                   # QEMU sees a real SPICE session
            await screenshot(display, path)       # the X screen, i.e. what the viewer shows
            await viewer.kill()                   # the client goes away

Every process is started in its own session and SIGKILLed (and reaped) on exit, whatever
happened; every wait is bounded. The tools come from scripts/setup.sh (:data:`VIEWER_TOOLS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path
from types import TracebackType

VIEWER_TOOLS = ("remote-viewer", "Xvfb", "xauth", "import", "identify", "stream")
"""What :class:`Xvfb`, :class:`RemoteViewer` and :func:`screenshot` run (Debian packages
virt-viewer, xvfb, xauth, imagemagick)."""


async def _kill(proc: asyncio.subprocess.Process | None, timeout: float = 5.0, *,  # noqa: ASYNC109
                grace: float = 0.0) -> None:
    """End ``proc``'s process group (it was started in its own session) and reap it: with a
    ``grace``, SIGTERM first (Xvfb then removes its lock and socket), SIGKILL after it."""
    if proc is None or proc.returncode is not None:
        return
    if grace > 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), timeout)


class Xvfb:
    """A virtual X server on a free display (``-displayfd``); ``async with`` gives ``:N``."""

    def __init__(self, size: str = "1024x768x24", timeout: float = 10.0) -> None:
        self.size = size
        self.timeout = timeout
        self.display = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._pipe = -1

    async def __aenter__(self) -> str:
        # Xvfb writes the number and the newline separately and exits if it cannot: read up
        # to the newline, and keep the pipe open as long as Xvfb runs.
        self._pipe, write_fd = os.pipe()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                "Xvfb", "-displayfd", str(write_fd), "-screen", "0", self.size,
                "-nolisten", "tcp", "-noreset", stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_fd,),
                start_new_session=True)
            os.close(write_fd)
            write_fd = -1
            number = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(None, _read_line, self._pipe),
                self.timeout)
            if not number.strip():
                raise RuntimeError("Xvfb exited without a display number")
            self.display = f":{int(number)}"
            return self.display
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        finally:
            if write_fd >= 0:
                os.close(write_fd)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await _kill(self._proc, grace=3.0)
        finally:
            if self._pipe >= 0:
                os.close(self._pipe)
                self._pipe = -1


def _read_line(fd: int) -> bytes:
    """Read ``fd`` up to a newline or its end."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 16)
        if not chunk:
            break
        data += chunk
    return data


class RemoteViewer:
    """``remote-viewer --full-screen FILE.vv`` on ``display`` with a ``.vv`` connection file
    (host, port, password) written to ``workdir``; ``log`` keeps its output."""

    def __init__(self, display: str, host: str, port: int, password: str | None,
                 workdir: Path, name: str = "viewer") -> None:
        self.display = display
        self.vv = workdir / f"{name}.vv"
        self.log = workdir / f"{name}.log"
        lines = ["[virt-viewer]", "type=spice", f"host={host}", f"port={port}",
                 "delete-this-file=0", "fullscreen=1"]
        if password is not None:
            lines.append(f"password={password}")
        self.vv.write_text("\n".join(lines) + "\n")
        self.vv.chmod(0o600)
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> RemoteViewer:
        if self.running:
            raise RuntimeError(f"{self.vv.stem} is already running")
        env = {**os.environ, "DISPLAY": self.display}
        env.pop("WAYLAND_DISPLAY", None)
        with open(self.log, "ab") as log:  # noqa: ASYNC230 - tiny, local
            self._proc = await asyncio.create_subprocess_exec(
                "remote-viewer", "--full-screen", str(self.vv), stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, env=env, start_new_session=True)
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL the viewer: its SPICE connections drop without a goodbye."""
        await _kill(self._proc)

    async def __aenter__(self) -> RemoteViewer:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.kill()


async def _run_bytes(*argv: str, timeout: float) -> bytes:  # noqa: ASYNC109
    """Run ``argv`` (bounded by ``timeout``, killed on the way out); its stdout."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        await _kill(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')}")
    return out


async def _run(*argv: str, timeout: float) -> str:  # noqa: ASYNC109
    return (await _run_bytes(*argv, timeout=timeout)).decode(errors="replace")


async def screenshot(display: str, path: Path, timeout: float = 15.0) -> Path:  # noqa: ASYNC109
    """Save the whole X screen of ``display`` as PNG (imagemagick's ``import``)."""
    await _run("import", "-display", display, "-window", "root", f"png:{path}", timeout=timeout)
    return path


async def image_colours(path: Path, timeout: float = 15.0) -> int:  # noqa: ASYNC109
    """How many distinct colours the image has (imagemagick's ``identify``)."""
    return int((await _run("identify", "-format", "%k", str(path), timeout=timeout)).strip())


async def black_share(path: Path, timeout: float = 15.0) -> float:  # noqa: ASYNC109
    """The share of pure black pixels in the image (imagemagick's ``stream`` to raw RGB).

    remote-viewer's own window (GTK's dark theme) has none; a guest's VGA text screen is
    mostly black, so this tells the guest's picture from the viewer still waiting for it.
    """
    raw = await _run_bytes("stream", "-map", "rgb", "-storage-type", "char", str(path), "-",
                           timeout=timeout)
    pixels = len(raw) // 3
    if not pixels:
        return 0.0
    black = sum(1 for r, g, b in zip(raw[0::3], raw[1::3], raw[2::3], strict=False)
                if r == g == b == 0)
    return black / pixels
