"""SPICE console tracking (issue 14) with a real SPICE client: the standard runner tree runs
the test guest (TCG or KVM) with SPICE and a display password; ``remote-viewer`` on a private
Xvfb connects through a ``.vv`` file (:mod:`vmrunner.testing.viewer`). The ConsoleTracker must
report the client's host, keep the most recent of several clients, clear it when the
viewer dies, and ignore a client whose password was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from vmrunner.events import (
    ConsoleConnected,
    ConsoleDisconnected,
    ConsoleStatus,
    ProcessExited,
    ProcessRole,
    QmpSpiceConnected,
    QmpSpiceDisconnected,
    QmpSpiceInitialized,
    StatusQuery,
)
from vmrunner.testing.accel import AccelVerdict
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.inproc import InProcessRunner
from vmrunner.testing.prereq import in_ci, require_tools
from vmrunner.testing.runnerproc import guest_config, scratch_dir
from vmrunner.testing.viewer import (
    VIEWER_TOOLS,
    RemoteViewer,
    Xvfb,
    black_share,
    image_colours,
    screenshot,
)

pytestmark = pytest.mark.guest

BOOT = 90.0
EVENT = 30.0
LOCAL = ("127.0.0.1", "::1")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require_tools(*VIEWER_TOOLS)  # fails (not skips) with CI set
    probe = subprocess.run(["qemu-system-x86_64", "-spice", "help"], capture_output=True,
                           check=False, timeout=30)
    if b"spice options" not in probe.stdout + probe.stderr:
        reason = "this QEMU has no SPICE support"
        if in_ci():
            pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def vmdir() -> Iterator[Path]:
    with scratch_dir("vcn") as path:
        yield path


@pytest_asyncio.fixture
async def display() -> AsyncIterator[str]:
    async with Xvfb() as name:
        yield name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Console:
    """The VM with SPICE on 127.0.0.1:``port`` and its password, in the standard tree."""

    def __init__(self, vmdir: Path, image: GuestImage, accel: AccelVerdict) -> None:
        self.vmdir = vmdir
        self.port = _free_port()
        self.password = f"pw-{uuid.uuid4().hex[:12]}"
        (vmdir / "display-password").write_text(self.password)
        self.config = guest_config(vmdir, image, accel=str(accel.accel), display={
            "spice": {"port": self.port, "address": "127.0.0.1",
                      "passwordFile": "display-password"}})

    def viewer(self, display: str, name: str, password: str | None = None) -> RemoteViewer:
        return RemoteViewer(display, "127.0.0.1", self.port,
                            self.password if password is None else password, self.vmdir, name)


async def _status(vm: InProcessRunner) -> ConsoleStatus:
    assert vm.runner is not None
    answers = [a for a in await vm.runner.call_all(StatusQuery())
               if isinstance(a, ConsoleStatus)]
    assert len(answers) == 1, answers  # the standard tree has one ConsoleTracker
    return answers[0]


async def _connected(vm: InProcessRunner, viewer: RemoteViewer, seen: int) -> ConsoleConnected:
    """The ``seen+1``-th ConsoleConnected (the viewer must stay alive until then)."""
    def new(event: ConsoleConnected) -> bool:
        return vm.recorder.of_type(ConsoleConnected).index(event) >= seen
    try:
        return await vm.recorder.wait_for(ConsoleConnected, new, EVENT)
    except TimeoutError:
        raise AssertionError(f"no ConsoleConnected; viewer running={viewer.running}, log:\n"
                             f"{viewer.log.read_text(errors='replace')}") from None


async def _disconnected(vm: InProcessRunner, connection_id: int) -> ConsoleDisconnected:
    return await vm.recorder.wait_for(
        ConsoleDisconnected, lambda e: e.connection_id == connection_id, EVENT)


async def _stop(vm: InProcessRunner) -> int:
    """Stop the VM; the runner's exit code.

    A known crash outside vmrunner: after a remote-viewer session, QEMU 7.2 with Debian 12's
    libspice-server 0.15.1 sometimes dies by SIGSEGV in the SPICE display worker thread while
    the VM stops (seen in CI and in two core dumps here, both in that thread; about one run
    of this file in eight; waiting until ``query-spice`` lists no channel did not avoid it).
    The runner reports it as it must (exit 4, "QEMU was killed by SIGSEGV"). These tests are
    about the console client, so exactly that case counts as a clean stop, with a warning."""
    code = await vm.stop()
    exits = [e for e in vm.recorder.of_type(ProcessExited) if e.name == ProcessRole.QEMU]
    if code == 4 and exits and exits[-1].status.signal == signal.SIGSEGV:
        warnings.warn("QEMU died by SIGSEGV at the stop (libspice-server's worker thread)",
                      stacklevel=2)
        return 0
    return code


def _keep(shot: Path) -> Path:
    """Copy the screenshot to .cache/artifacts/ (git-ignored) in the repository."""
    artifacts = REPO / ".cache" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    kept = artifacts / "console-viewer.png"
    shutil.copyfile(shot, kept)
    return kept


async def test_one_viewer_connects_shows_the_guest_and_goes(
        vmdir: Path, display: str, guest_image: GuestImage, accel: AccelVerdict,
        tmp_path: Path) -> None:
    """ConsoleConnected with the viewer's host, the status answer, a screenshot of what the
    viewer shows, then kill -9: ConsoleDisconnected and a cleared status."""
    console = Console(vmdir, guest_image, accel)
    async with InProcessRunner(console.config) as vm:
        assert await _status(vm) == ConsoleStatus()
        await vm.console.wait_ready(BOOT)
        await vm.console.check("echo 'vmrunner console test: hello, SPICE' > /dev/tty1")
        async with console.viewer(display, "one") as viewer:
            started = time.monotonic()
            connected = await _connected(vm, viewer, 0)
            print(f"\nconnected after {time.monotonic() - started:.1f}s: {connected}")
            assert connected.host in LOCAL
            status = await _status(vm)
            assert status.client == connected.host
            assert [(c.host, c.connection_id) for c in status.clients] == [
                (connected.host, connected.connection_id)]
            # the main channel is the one that counts: it is the status' port
            main = next(e for e in vm.recorder.of_type(QmpSpiceInitialized)
                        if e.connection_id == connected.connection_id and e.channel_type == 1)
            assert status.clients[0].port == main.port

            # what the viewer shows: its own UI at first ("Connected to graphic server",
            # no black at all), then the guest's VGA text screen (mostly black, with text)
            shot = tmp_path / "console-viewer.png"
            colours, black = 0, 0.0
            deadline = time.monotonic() + EVENT
            while time.monotonic() < deadline:
                await screenshot(display, shot)
                colours, black = await image_colours(shot), await black_share(shot)
                if colours > 2 and black > 0.25:
                    break
                await asyncio.sleep(1.0)
            kept = _keep(shot)
            print(f"screenshot: {shot} (copy: {kept}), {colours} colours, "
                  f"{black:.0%} black (the guest's screen)")
            assert colours > 2, f"the viewer's screen is (nearly) one colour: {shot}"
            assert black > 0.25, f"the viewer does not show the guest's screen: {shot}"

            await viewer.kill()
            gone = await _disconnected(vm, connected.connection_id)
        assert (gone.host, gone.reason, gone.console_client) == (
            connected.host, "disconnected", None)
        assert await _status(vm) == ConsoleStatus()
        assert len(vm.recorder.of_type(ConsoleConnected)) == 1
        assert await _stop(vm) == 0


async def test_a_second_viewer_takes_over_the_single_client_server(
        vmdir: Path, display: str, guest_image: GuestImage, accel: AccelVerdict) -> None:
    """QEMU's SPICE server takes one client by default: a second viewer's main link
    disconnects the first. The tracker follows: the first session ends, the second one is
    the console client until it is killed."""
    console = Console(vmdir, guest_image, accel)
    async with InProcessRunner(console.config) as vm:
        a, b = console.viewer(display, "a"), console.viewer(display, "b")
        async with a, contextlib.AsyncExitStack() as stack:
            ca = await _connected(vm, a, 0)
            await stack.enter_async_context(b)
            cb = await _connected(vm, b, 1)
            kicked = await _disconnected(vm, ca.connection_id)
            await a.kill()  # before it tries to take the console back
            assert kicked.reason == "disconnected"
            status = await _status(vm)
            assert status.client == cb.host
            assert [c.connection_id for c in status.clients] == [cb.connection_id]
            await b.kill()
            last = await _disconnected(vm, cb.connection_id)
        assert last.console_client is None
        assert await _status(vm) == ConsoleStatus()
        assert await _stop(vm) == 0


async def test_two_viewers_at_once_the_latest_is_the_console_client_until_it_goes(
        vmdir: Path, display: str, guest_image: GuestImage, accel: AccelVerdict,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With multi-client SPICE (``SPICE_DEBUG_ALLOW_MC=1`` in QEMU's environment) two viewers
    stay connected: the second one is the console client; closing it gives the first one
    back, closing that one clears it. Then again, closing the first one first."""
    monkeypatch.setenv("SPICE_DEBUG_ALLOW_MC", "1")  # QEMU inherits the runner's environment
    console = Console(vmdir, guest_image, accel)
    async with InProcessRunner(console.config) as vm:
        for first_goes_first in (False, True):
            seen = len(vm.recorder.of_type(ConsoleConnected))
            a, b = console.viewer(display, "a"), console.viewer(display, "b")
            async with a, contextlib.AsyncExitStack() as stack:
                ca = await _connected(vm, a, seen)
                await stack.enter_async_context(b)  # while a is connected
                cb = await _connected(vm, b, seen + 1)
                assert ca.connection_id != cb.connection_id
                await asyncio.sleep(1.0)  # a stays connected
                status = await _status(vm)
                assert status.client == cb.host
                assert [c.connection_id for c in status.clients] == [
                    ca.connection_id, cb.connection_id]
                older, newer = (a, b) if first_goes_first else (b, a)
                kept, dropped = (cb, ca) if first_goes_first else (ca, cb)
                await older.kill()
                gone = await _disconnected(vm, dropped.connection_id)
                assert gone.console_client == kept.host
                status = await _status(vm)
                assert [c.connection_id for c in status.clients] == [kept.connection_id]
                assert status.client == kept.host
                await newer.kill()
                last = await _disconnected(vm, kept.connection_id)
                assert last.console_client is None
                assert await _status(vm) == ConsoleStatus()
        assert await _stop(vm) == 0


async def test_wrong_password_is_no_console_client(
        vmdir: Path, display: str, guest_image: GuestImage, accel: AccelVerdict) -> None:
    """The SPICE link is refused before SPICE_INITIALIZED: no ConsoleConnected."""
    console = Console(vmdir, guest_image, accel)
    async with InProcessRunner(console.config) as vm:
        async with console.viewer(display, "wrong", password="not-the-password") as viewer:
            refused = await vm.recorder.wait_for(QmpSpiceConnected, timeout=EVENT)
            await vm.recorder.wait_for(
                QmpSpiceDisconnected, lambda e: e.port == refused.port, EVENT)
            await asyncio.sleep(2.0)  # room for anything that would follow
            assert viewer.log.exists()
        assert vm.recorder.of_type(QmpSpiceInitialized) == []
        assert vm.recorder.of_type(ConsoleConnected) == []
        assert await _status(vm) == ConsoleStatus()
        # the right password still works afterwards
        async with console.viewer(display, "right") as viewer:
            connected = await _connected(vm, viewer, 0)
            assert connected.host in LOCAL
        await _disconnected(vm, connected.connection_id)
        assert await _stop(vm) == 0
