"""Make small ISO-9660 CD images (with Rock Ridge names) for CD-ROM tests."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path

import pycdlib

_ISO_NAME = re.compile(r"^[A-Z0-9_]{1,8}(\.[A-Z0-9_]{0,3})?$")


def make_iso(path: Path, files: Mapping[str, bytes], volume_id: str = "TGCD") -> Path:
    """Write an ISO image holding ``files`` (flat: ``{"marker.txt": b"A\\n"}``).

    The guest sees the names as given (Rock Ridge); the ISO-9660 level-1 names are
    their upper-cased form, which must fit 8.3.
    """
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident=volume_id, rock_ridge="1.09")
    try:
        for name, data in sorted(files.items()):
            iso_name = name.upper()
            if not _ISO_NAME.match(iso_name):
                raise ValueError(f"files/{name}: not an 8.3 name")
            iso.add_fp(io.BytesIO(data), len(data), f"/{iso_name};1", rr_name=name)
        iso.write(str(path))
    finally:
        iso.close()
    return path
