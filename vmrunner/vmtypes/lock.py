"""One runner per VM: ``VmLock`` holds ``runner.lock`` in the dataDir and in the runtimeDir.

Either directory may be shared with or reused by another configuration, so both are locked
(``flock(LOCK_EX | LOCK_NB)``; a directory given twice is locked once). The lock files are
opened with ``O_NOFOLLOW`` (a symlink planted there is refused), mode 0600 and close-on-exec
(QEMU and swtpm do not inherit them). Once both locks are held, each file is rewritten with
the runner's pid, for the message of a runner that finds the VM locked.

The kernel releases an ``flock`` when the process ends, however it ends, so a lock left by a
crashed (or ``kill -9``-ed) runner never blocks the next start; the files themselves stay
(removing them would race with a runner that has just opened one).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from vmrunner.config.model import RunnerConfig
from vmrunner.vmtypes.state import VmPaths, check_paths, ensure_dirs, resolve_paths

LOCK_NAME = "runner.lock"
"""The lock file's name in the dataDir and in the runtimeDir."""
PID_WAIT = 0.5
"""Seconds a runner that found the VM locked waits for the holder's pid to be written."""


class AlreadyRunning(Exception):
    """Another runner holds the lock of this VM's dataDir or runtimeDir."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"another runner ({holder}) is running this VM: {path} is locked")
        self.path = path
        self.pid = pid


class VmLock:
    """The exclusive lock of one VM's directories, held from :meth:`acquire` until
    :meth:`release` (or the end of the process)."""

    def __init__(self, paths: VmPaths) -> None:
        self.paths = paths
        self._fds: list[int] = []

    @property
    def held(self) -> bool:
        """Whether the locks are held."""
        return bool(self._fds)

    @property
    def files(self) -> tuple[Path, ...]:
        """The lock files (one if dataDir and runtimeDir are the same directory)."""
        files = (self.paths.data_dir / LOCK_NAME, self.paths.runtime_dir / LOCK_NAME)
        return files[:1] if files[0] == files[1] else files

    def acquire(self) -> None:
        """Take both locks without waiting and write this process's pid into the files.

        :raise AlreadyRunning: another process holds one of the locks (nothing is held then).
        :raise OSError: a lock file cannot be opened (a symlink, say) or locked.
        """
        if self._fds:
            return
        seen: set[tuple[int, int]] = set()
        try:
            for path in self.files:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600)
                info = os.fstat(fd)
                if (info.st_dev, info.st_ino) in seen:  # the same file by another name
                    os.close(fd)
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pid = _holder(fd)
                    os.close(fd)
                    raise AlreadyRunning(path, pid) from None
                except OSError:
                    os.close(fd)
                    raise
                seen.add((info.st_dev, info.st_ino))
                self._fds.append(fd)
            record = f"{os.getpid()}\n".encode()
            for fd in self._fds:
                os.ftruncate(fd, 0)
                os.pwrite(fd, record, 0)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give the locks up (closing the files releases them); the files stay."""
        fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _holder(fd: int) -> int | None:
    """The pid in a lock file held by another runner; it writes it right after locking, so
    an empty file is read again for up to :data:`PID_WAIT` seconds."""
    deadline = time.monotonic() + PID_WAIT
    while True:
        with contextlib.suppress(OSError, ValueError):
            text = os.pread(fd, 32, 0).decode("ascii").strip()
            if text:
                return int(text)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def lock_vm(config: RunnerConfig) -> VmLock:
    """Resolve and check the VM's directories, create them if missing (mode 0700) and lock
    them; nothing else of the VM's state is touched before the lock is held.

    :raise AlreadyRunning: another runner runs this VM.
    :raise vmrunner.vmtypes.errors.VmTypeError: unusable directories (configuration).
    :raise OSError: a lock file cannot be opened or locked.
    """
    from vmrunner.vmtypes.prepare import PathProblems  # the renderer's imports: only here

    paths = resolve_paths(config)
    problems = check_paths(config, paths)
    if problems:
        raise PathProblems(problems)
    ensure_dirs(paths)
    lock = VmLock(paths)
    lock.acquire()
    return lock


__all__ = ["LOCK_NAME", "AlreadyRunning", "VmLock", "lock_vm"]
