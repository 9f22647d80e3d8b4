"""The cloud-init NoCloud data source as an ISO 9660 image labelled ``cidata``.

Made in Python with pycdlib (no shell, no mtools); contains ``meta-data``, ``user-data`` and,
if configured, ``network-config`` (Rock Ridge and Joliet names). ``instance-id`` defaults to a
hash of the cloud-init data, so the guest re-runs its first-boot steps when (and only when)
that data changes.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import yaml

from vmrunner.config.model import CloudInitConfig
from vmrunner.vmtypes.private import write_private

LABEL = "cidata"


def _dump(data: Any) -> str:
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def cloud_init_files(config: CloudInitConfig, hostname: str) -> dict[str, bytes]:
    """The files of the data source: name → content."""
    user_data = "#cloud-config\n" + ("" if not config.user_data else _dump(config.user_data))
    network = None if config.network_config is None else _dump(config.network_config)
    meta = dict(config.meta_data)
    if "instance-id" not in meta:
        digest = hashlib.sha256(f"{user_data}\0{network}\0{_dump(meta)}".encode()).hexdigest()
        meta["instance-id"] = f"v{digest[:16]}"
    meta.setdefault("local-hostname", hostname)
    files = {"meta-data": _dump(meta).encode(), "user-data": user_data.encode()}
    if network is not None:
        files["network-config"] = network.encode()
    return files


def write_cloud_init_image(config: CloudInitConfig, hostname: str, target: Path) -> Path:
    """Write the NoCloud image to ``target`` (atomically, mode 0600, never through a planted
    link: :func:`~vmrunner.vmtypes.private.write_private`) and return it."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    for index, (name, content) in enumerate(cloud_init_files(config, hostname).items()):
        iso.add_fp(io.BytesIO(content), len(content), f"/CIDATA{index}.;1",
                   rr_name=name, joliet_path=f"/{name}")
    try:
        write_private(target, "/Runner/runtimeDir", iso.write_fp)
    finally:
        iso.close()
    return target
