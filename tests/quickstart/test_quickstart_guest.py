"""The quickstart (docs/guide/quickstart.md), its commands as written, on a local stand-in for
Debian's cloud image (vmrunner/testing/cloudimage.py: boots from its own disk, reads the
``cidata`` seed, starts an SSH server with the key from user-data).

The configuration is examples/quickstart-user-net.yaml with three substitutions: the SSH key
(made by the test), and the SSH and SPICE host ports (free ones, since tests run in parallel on
CI machines). ``ssh`` gets options that keep the user's ``known_hosts`` untouched. The runner's
directories come from ``$XDG_DATA_HOME``/``$XDG_RUNTIME_DIR`` set to the test's scratch dir.
One boot. The transcript is kept in .cache/artifacts/quickstart-transcript.txt (git-ignored):
the doc's outputs come from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from vmrunner.proc.sockets import wait_for_socket
from vmrunner.testing.cloudimage import IMAGE_NAME, build_cloud_image
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.guest import GuestImage
from vmrunner.testing.prereq import require_tools
from vmrunner.testing.runnerproc import scratch_dir
from vmrunner.testing.viewer import VIEWER_TOOLS, RemoteViewer, Xvfb

pytestmark = pytest.mark.guest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "quickstart-user-net.yaml"
PLACEHOLDER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReplaceMeWithYourOwnPublicKeyLine0000 you@host"
TOOLS = ("qemu-img", "ssh", "ssh-keygen", "syslinux", "mcopy", "mkfs.fat")
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
               "-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=known_hosts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Session:
    """Runs the quickstart's commands in ``cwd`` and records them as a transcript."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.transcript: list[str] = []
        self.ports: dict[int, int] = {}

    def argv(self, command: list[str]) -> list[str]:
        return [sys.executable, "-m", "vmrunner", *command[1:]] if command[0] == "vmrunner" \
            else command

    async def run(self, *command: str, shown: str | None = None,
                  timeout: float = 120) -> tuple[int, str]:  # noqa: ASYNC109
        proc = await asyncio.create_subprocess_exec(
            *self.argv(list(command)), cwd=self.cwd, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        self.transcript.append(f"$ {shown or ' '.join(command)}\n{self.as_in_doc(out.decode())}")
        return proc.returncode, out.decode()

    def as_in_doc(self, text: str) -> str:
        """``text`` with the test's free ports shown as the doc's 2222 and 5900."""
        for real, doc in self.ports.items():
            text = text.replace(str(real), str(doc))
        return text


async def test_quickstart_commands_on_the_stand_in(guest_image: GuestImage) -> None:
    require_tools(*TOOLS, *VIEWER_TOOLS)
    image = build_cloud_image(guest_image)
    assert image.name == IMAGE_NAME
    ssh_port, spice_port = free_port(), free_port()
    with scratch_dir("vrqs", watched=None) as base:
        home = base / "quickstart"
        home.mkdir()
        (base / "xdg-run").mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items()
               if k not in ("STATE_DIRECTORY", "RUNTIME_DIRECTORY")}
        env.update(XDG_DATA_HOME=str(base / "xdg-data"), XDG_RUNTIME_DIR=str(base / "xdg-run"))
        sh = Session(home, env)
        sh.ports = {ssh_port: 2222, spice_port: 5900}
        sh.transcript.append("# the test's free ports are shown as the doc's 2222 and 5900\n")
        runner: asyncio.subprocess.Process | None = None
        attached: asyncio.subprocess.Process | None = None
        try:
            code, out = await sh.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                                     "id_ed25519", "-C", "you@host")
            assert code == 0, out
            key = (home / "id_ed25519.pub").read_text().strip()
            text = EXAMPLE.read_text()
            assert text.count(PLACEHOLDER) == 1 and text.count(":2222-:22") == 1
            assert text.count("port: 5900") == 1
            (home / "quickstart.yaml").write_text(
                text.replace(PLACEHOLDER, key).replace(":2222-:22", f":{ssh_port}-:22")
                .replace("port: 5900", f"port: {spice_port}"))

            code, out = await sh.run("qemu-img", "create", "-f", "qcow2", "-b", str(image),
                                     "-F", "qcow2", "vm.qcow2", "20G")
            assert code == 0, out
            old = os.umask(0o077)
            try:
                (home / "spice-password").write_text("choose-a-password")
            finally:
                os.umask(old)

            code, out = await sh.run("vmrunner", "check", "-c", "quickstart.yaml")
            assert (code, out) == (0, "quickstart.yaml: OK\n"), out

            started = time.monotonic()
            runner = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vmrunner", "run", "-c", "quickstart.yaml", cwd=home,
                env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)

            # ssh as soon as the guest's SSH server answers (a few seconds under KVM, more
            # under TCG on a loaded machine)
            ssh = ["ssh", "-p", str(ssh_port), "-i", "id_ed25519", *SSH_OPTIONS,
                   "debian@127.0.0.1", "uname", "-a"]
            attempts = 0
            while True:
                attempts += 1
                code, out = await sh.run(*ssh, shown="ssh -p 2222 -i id_ed25519 "
                                         "debian@127.0.0.1 uname -a")
                if code == 0 or time.monotonic() - started > 240:
                    break
                sh.transcript.pop()
                assert runner.returncode is None, "the runner exited"
                await asyncio.sleep(2)
            assert code == 0, f"ssh failed after {attempts} attempts: {out}"
            assert re.search(r"^Linux quickstart \S+-cloud-amd64 .* x86_64 GNU/Linux$", out, re.M)
            sh.transcript.append(f"# ssh answered {time.monotonic() - started:.1f} s after "
                                 f"'vmrunner run' ({attempts} attempts)\n")

            code, out = await sh.run("vmrunner", "status", "-c", "quickstart.yaml")
            assert code == 0, out
            assert re.search(r"\brunning\b|\bbooted\b", out), out

            # SPICE: remote-viewer with the password (a .vv file) is shown as the console user
            async with Xvfb() as display, RemoteViewer(
                    display, "127.0.0.1", spice_port, "choose-a-password", home,
                    name="quickstart"):
                deadline = time.monotonic() + 60
                while True:
                    code, out = await sh.run("vmrunner", "status", "-c", "quickstart.yaml")
                    seen = re.search(r"^  console: +(?!nobody)\S", out, re.M)
                    if seen or time.monotonic() > deadline:
                        break
                    sh.transcript.pop()
                    await asyncio.sleep(1)
                assert seen, out

            # the serial console: a command typed there runs in the guest
            run_dir = base / "xdg-run" / "vmrunner" / "quickstart"
            await wait_for_socket(run_dir / "console.sock")
            attached = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vmrunner", "console", "-c", "quickstart.yaml", cwd=home,
                env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            assert attached.stdin is not None and attached.stdout is not None
            assert attached.stderr is not None
            console = GuestConsole(attached.stdout, attached.stdin, base / "console.log")
            await console.send_line("@1 uname -n")
            await console.wait_for(r"^TG-END 1 rc=0$", timeout=30)
            begin = console.lines.index("TG-BEGIN 1")
            assert console.lines[begin + 1] == "quickstart"
            attached.stdin.write(b"\x1d")  # Ctrl-], the detach key
            assert await asyncio.wait_for(attached.wait(), 10) == 0
            err = (await attached.stderr.read()).decode()
            await console.close()
            sh.transcript.append("$ vmrunner console -c quickstart.yaml\n" + err.split("\n")[0]
                                 + "\n" + "\n".join(console.lines) + "\n" +
                                 "\n".join(err.split("\n")[1:]))

            code, out = await sh.run("vmrunner", "shutdown", "-c", "quickstart.yaml", "--wait")
            assert code == 0, out
            assert await asyncio.wait_for(runner.wait(), 30) == 0
            assert runner.stdout is not None
            log = (await runner.stdout.read()).decode()
            sh.transcript.append("$ vmrunner run -c quickstart.yaml   # its output\n"
                                 + sh.as_in_doc(log))
        finally:
            for proc in (attached, runner):
                if proc is not None and proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL) if proc is runner else proc.kill()
                    await proc.wait()
            artifacts = REPO / ".cache" / "artifacts"
            artifacts.mkdir(parents=True, exist_ok=True)
            (artifacts / "quickstart-transcript.txt").write_text("\n".join(sh.transcript))
