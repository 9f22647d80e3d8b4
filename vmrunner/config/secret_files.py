"""Files that hold a secret (``passwordFile``, ``tokenFile``) must be private to the runner.

A secret file readable by its group or others, or owned by a user other than root and the
runner's own, is reported (a warning, an error with ``--strict``) with the key path, the
file, its owner and mode and the fix. A missing file is not reported here: its reader does.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def secret_file_problem(path: Path) -> str | None:
    """Why the secret file ``path`` (links followed) is not private, or ``None``."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (0, os.geteuid()):
        return (f"{path} holds a secret but is owned by {_owner(info.st_uid)} (mode "
                f"{mode:04o}), who can read and change it; give it to {_owner(os.geteuid())}"
                f" with mode 0600")
    if mode & 0o044:
        who = " and ".join(w for w, bit in (("its group", 0o040), ("others", 0o004))
                           if mode & bit)
        return (f"{path} holds a secret but has mode {mode:04o}: readable by {who}; "
                f"chmod 0600 {path}")
    return None
