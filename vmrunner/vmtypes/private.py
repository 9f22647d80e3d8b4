"""Owner-only directories and files: what nobody else can plant a file or a link in.

- :func:`verify_private_dir`: the directory belongs to the runner's effective user (or to
  root, whom every user trusts anyway) and is not writable by its group or others; each
  directory above it belongs to root or that user and, if others may write to it, has the
  sticky bit (like ``/tmp``). Anything else lets another user plant links or files (or swap
  the directory) and is refused as a :class:`~vmrunner.vmtypes.errors.HostStateError` (the
  fix is on the host: exit 7). Volumes are the exception: a Kubernetes ``emptyDir`` or
  local-path volume is root's and 0777. The runner's own such directory is made 0700 with a
  warning; root's, which a non-root runner cannot change, is used with a warning (saying
  whether the sticky bit keeps others from replacing the runner's files). Then the
  directory is refused if an entry in it belongs to another user than root and the runner's
  (it may have been planted), until that entry is removed.
- :func:`write_private`: a file is written to a new temporary name beside it, created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600 (never through a planted link, never
  readable by others), then renamed over the name (which replaces a link, not its target).
- :func:`tighten`: an existing file of ours readable by others becomes 0600.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from vmrunner.vmtypes.errors import HostStateError, StateError, state_error

_log = logging.getLogger(__name__)


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def verify_private_dir(path: Path, key: str) -> None:
    """Refuse ``path`` unless it and the directories above it are safe, checking the
    directories above before anything is changed; may make ``path`` 0700 (see module docs)."""
    uid = os.geteuid()
    real = Path(os.path.realpath(path))
    try:
        info = os.stat(real)
    except OSError as exc:
        raise state_error(key, f"cannot use {path}: {exc.strerror or exc}", exc) from None
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (uid, 0):
        raise HostStateError(
            key, f"{path} is owned by {_owner(info.st_uid)} (mode {mode:04o}), not by "
            f"{_owner(uid)} who runs the VM: that user could plant files or links in it; "
            f"remove it or give it to {_owner(uid)} with mode 0700")
    for parent in real.parents:
        try:
            above = os.stat(parent)
        except OSError as exc:
            raise state_error(key, f"cannot use {path}: {parent}: {exc.strerror or exc}",
                              exc) from None
        if above.st_uid not in (0, uid):
            raise HostStateError(
                key, f"{parent} (above {path}) is owned by {_owner(above.st_uid)}, who could "
                f"replace {path}; use a directory whose parents belong to root or "
                f"{_owner(uid)}")
        if above.st_mode & 0o002 and not above.st_mode & stat.S_ISVTX:
            raise HostStateError(
                key, f"{parent} (above {path}) has mode {stat.S_IMODE(above.st_mode):04o}: "
                f"anybody could replace {path}; remove write access for others or set the "
                f"sticky bit (chmod o-w or +t {parent})")
    if mode & 0o022 and info.st_uid == uid:
        _make_private(path, real, key, mode)
    elif mode & 0o022:
        _accept_roots_volume(path, key, mode)
    _refuse_foreign_entries(path, real, key)


def _accept_roots_volume(path: Path, key: str, mode: int) -> None:
    """Use root's directory ``path`` that others may write to (a volume, which a non-root
    runner cannot make private), with a warning."""
    risk = ("others may add files to it" if mode & stat.S_ISVTX else
            "others may add files to it and replace the runner's (no sticky bit)")
    _log.warning("%s: %s belongs to root and has mode %04o: %s; give it to %s with mode 0700 "
                 "to make it private", key, path, mode, risk, _owner(os.geteuid()))


def _foreign_entry(directory: Path, uid: int) -> tuple[Path, int] | None:
    """The first entry of ``directory`` (not recursive, links not followed) owned by neither
    ``uid`` nor root."""
    with os.scandir(directory) as entries:
        for entry in entries:
            owner = entry.stat(follow_symlinks=False).st_uid
            if owner not in (uid, 0):
                return Path(entry.path), owner
    return None


def _make_private(path: Path, real: Path, key: str, mode: int) -> None:
    """Make the runner's own directory ``path``, which others could write to, 0700, with a
    warning."""
    who = " and ".join(w for w, bit in (("its group", 0o020), ("others", 0o002)) if mode & bit)
    try:
        os.chmod(real, 0o700)
    except OSError as exc:
        raise state_error(key, f"cannot make {path} private: {exc.strerror or exc}",
                          exc) from None
    _log.warning("%s: %s had mode %04o (writable by %s): made it 0700", key, path, mode, who)


def _refuse_foreign_entries(path: Path, real: Path, key: str) -> None:
    """Refuse ``path`` if an entry in it belongs to another user (not root): it may have been
    planted while the directory was open to others."""
    uid = os.geteuid()
    try:
        foreign = _foreign_entry(real, uid)
    except OSError as exc:
        raise state_error(key, f"cannot list {path}: {exc.strerror or exc}", exc) from None
    if foreign is not None:
        entry, owner = foreign
        raise HostStateError(
            key, f"{path} holds {entry}, owned by {_owner(owner)}: planted by another user? "
            f"remove it (or give it to {_owner(uid)}), then start again")


def _in_the_way(temporary: Path, key: str) -> None:
    """Remove a stale temporary file of ours; refuse anything else found at its name."""
    try:
        info = os.lstat(temporary)
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid():
        temporary.unlink()
        return
    kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
    if stat.S_ISREG(info.st_mode):
        kind = f"a file of {_owner(info.st_uid)}"
    raise HostStateError(
        key, f"{temporary} is {kind}, planted where the runner writes a new file: not "
        f"written through it; remove it")


def write_private(path: Path, key: str, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` with what ``write`` writes, mode 0600 from the start, never through
    a link (see module docs); errors are :class:`StateError` for ``key`` naming ``path``."""
    temporary = path.with_name(f".{path.name}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        _in_the_way(temporary, key)
        fd = os.open(temporary, flags, 0o600)
    except FileExistsError:  # planted between the check and the open
        _in_the_way(temporary, key)
        raise StateError(key, f"cannot write {path}: {temporary} appeared meanwhile") from None
    except OSError as exc:
        raise state_error(key, f"cannot write {path}: {exc.strerror or exc}", exc) from None
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise state_error(key, f"cannot write {path}: {exc.strerror or exc}", exc) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_private_bytes(path: Path, key: str, data: bytes) -> None:
    """:func:`write_private` of ``data``."""
    write_private(path, key, lambda out: out.write(data))


def tighten(path: Path) -> None:
    """Make an existing regular file of ours that others may read 0600 (files written by
    older versions were 0644); anything else is left alone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        info = os.fstat(fd)
        if (stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()
                and info.st_mode & 0o077):
            os.fchmod(fd, 0o600)
    except OSError:
        pass
    finally:
        os.close(fd)
