"""The runner's documented process exit codes (see docs/operations or the CLI help).

Every way the runner can end maps to exactly one of these; tests and the Helm chart rely on them.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of ``vmrunner``."""

    OK = 0
    """The guest powered off (by itself or after a graceful shutdown request)."""
    INTERNAL_ERROR = 1
    """A bug or an unexpected exception in the runner itself."""
    CONFIG_ERROR = 2
    """The configuration (or a template) is invalid; nothing was started."""
    FORCED_STOP = 3
    """The guest did not power off within ``powerdownTimeout``; QEMU was terminated or killed."""
    QEMU_DIED = 4
    """QEMU (or a process it depends on, such as swtpm) exited unexpectedly."""
    START_FAILED = 5
    """A process could not be started or did not become ready (QEMU, swtpm, QMP)."""
    ALREADY_RUNNING = 6
    """Another runner runs this VM (it holds the lock of its dataDir or runtimeDir); the
    message names its pid. Nothing was started and nothing of the running VM was touched."""
    HOST_ERROR = 7
    """The host cannot hold the VM's state right now: a full or read-only filesystem, an I/O
    error under dataDir or runtimeDir. Nothing was started; unlike ``CONFIG_ERROR``, a restart
    may work once the host is fixed."""
    GUEST_PANICKED = 8
    """The guest's kernel panicked and ``onPanic`` is ``stop``: QEMU held the guest at the
    panic and was terminated. A restart boots the guest again (systemd's unit restarts it)."""
