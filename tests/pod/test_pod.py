"""``podman kube play`` of the rendered chart: boot, live config change, graceful stop.

The tiny test guest (kernel + initrd, TCG) is mounted into the pod by a hostPath volume
(``extraVolumes``). Adaptations of the rendered manifest for podman 4.3, see
docs/guide/kubernetes.md ("Testing with podman"):

* ``--network none``: the pod gets no network at all;
* the ``config`` volume becomes a hostPath directory written like the kubelet's AtomicWriter
  (podman mounts ConfigMaps as plain files that never change), so the test can make the
  kubelet's ``..data`` symlink swap;
* ``podman pod stop -t <terminationGracePeriodSeconds>``: podman 4.3 keeps its 10 s stop
  timeout instead of the pod's grace period;
* the probes are run with ``podman exec`` (podman's health checks need systemd timers).
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrunner.components.exit_codes import ExitCode
from vmrunner.testing.guest import GuestImage

from .conftest import ImageBuild, Tools
from .support import (
    KubeletConfigDir,
    LogFollower,
    config_map,
    documents,
    one,
    played,
    podman,
    render,
)

pytestmark = pytest.mark.pod

BOOT_TIMEOUT = 180.0
POWERDOWN_TIMEOUT = 40
LIVE_POWERDOWN_TIMEOUT = 20
BOOTED = r"state booting → booted"


def _values(image: ImageBuild, guest: GuestImage) -> dict[str, Any]:
    repository, tag = image.tag.rsplit(":", 1)
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        # the chart's default mode (devicePlugin: non-root, no capabilities, read-only root);
        # podman ignores the device plugin's resource, and the guest runs under TCG
        "vm": {"accelerator": "tcg", "firmware": "bios", "maximumRam": "256 MiB",
               "maximumCpus": 1, "powerdownTimeout": POWERDOWN_TIMEOUT, "audio": False,
               "network": [],
               "kernel": {"image": "/opt/guest/vmlinuz", "initrd": "/opt/guest/initrd.img",
                          "cmdline": "console=ttyS0 panic=-1 quiet"}},
        "extraVolumes": [{"name": "guest", "hostPath": {"path": str(guest.kernel.parent),
                                                         "type": "Directory"}}],
        "extraVolumeMounts": [{"name": "guest", "mountPath": "/opt/guest", "readOnly": True}],
    }


@dataclass
class PlayedPod:
    pod: str
    container: str
    grace: int
    probe: list[str]
    config: KubeletConfigDir
    logs: LogFollower

    def config_value(self) -> dict[str, Any]:
        text = (self.config.path / "config.yaml").read_text(encoding="utf-8")
        return dict(yaml.safe_load(text)["/Runner"]["vm"])


def _exit_code(container: str) -> int:
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip())


def _stop(pod: PlayedPod) -> float:
    """``podman pod stop`` with the pod's grace period; the seconds it took."""
    start = time.monotonic()
    podman("pod", "stop", "-t", str(pod.grace), pod.pod, timeout=pod.grace + 60)
    took = time.monotonic() - start
    pod.logs.drain()
    return took


def test_unmodified_chart_boots_the_guest(tools: Tools, image: ImageBuild,
                                          guest_image: GuestImage) -> None:
    """The rendered chart as it is (ConfigMap volume included) runs the VM; JSON logs."""
    release = f"vrplain{secrets.token_hex(3)}"
    values = {**_values(image, guest_image), "logFormat": "json"}
    manifest = render(tools.helm, values, release=release)
    pod = f"{release}-vmrunner"
    container = f"{pod}-vmrunner"
    with played(manifest, pod):
        logs = LogFollower(container)
        try:
            logs.wait_for(BOOTED, BOOT_TIMEOUT)
            mounted = podman("exec", container, "cat", "/etc/opt/vmrunner/config.yaml").stdout
            assert yaml.safe_load(mounted)["/Runner"]["vm"]["name"] == pod
            podman("pod", "stop", "-t", "60", pod, timeout=120)
            logs.drain()
            assert _exit_code(container) == ExitCode.OK, logs.text
            entries = [json.loads(line) for line in logs.lines]
            assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
            assert any(e["message"].startswith("SIGTERM received") for e in entries)
        finally:
            logs.close()


@pytest.fixture(scope="module")
def pod(tools: Tools, image: ImageBuild, guest_image: GuestImage) -> Iterator[PlayedPod]:
    """The rendered chart, adapted for podman (module docstring), playing."""
    release = f"vrtest{secrets.token_hex(3)}"
    docs = documents(render(tools.helm, _values(image, guest_image), release=release))
    cmap, manifest = config_map(docs), one(docs, "Pod")
    name = manifest["metadata"]["name"]
    spec = manifest["spec"]
    container = spec["containers"][0]
    with tempfile.TemporaryDirectory(prefix="vrpod") as tmp:
        config = KubeletConfigDir(Path(tmp) / "config")
        config.write(dict(cmap["data"]))
        for volume in spec["volumes"]:
            if volume["name"] == "config":
                del volume["configMap"]
                volume["hostPath"] = {"path": str(config.path), "type": "Directory"}
        with played(yaml.safe_dump_all([cmap, manifest]), name):
            logs = LogFollower(f"{name}-{container['name']}")
            try:
                yield PlayedPod(pod=name, container=f"{name}-{container['name']}",
                                grace=int(spec["terminationGracePeriodSeconds"]),
                                probe=list(container["readinessProbe"]["exec"]["command"]),
                                config=config, logs=logs)
            finally:
                logs.close()


def test_pod_boots_the_guest_and_becomes_ready(pod: PlayedPod) -> None:
    """In the default mode: as uid 1000 with no capabilities on a read-only root."""
    assert pod.grace == POWERDOWN_TIMEOUT + 15
    pod.logs.wait_for(BOOTED, BOOT_TIMEOUT)
    status = podman("exec", pod.container, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split()[:2] == ["1000", "1000"], fields["Uid"]
    assert int(fields["CapEff"], 16) == 0, fields["CapEff"]
    denied = podman("exec", "--user", "0", pod.container, "touch", "/opt/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert podman("exec", pod.container, *pod.probe, check=False).returncode == 0
    listing = podman("exec", pod.container, "ls", "-a", "/etc/opt/vmrunner").stdout.split()
    assert "..data" in listing and "config.yaml" in listing


def test_probe_fails_without_a_runner(image: ImageBuild, pod: PlayedPod) -> None:
    """Control: the readiness command fails where no runner answers (curl's exit 7: nothing
    listens on the socket), so the probe that passed above did ask the runner."""
    result = podman("run", "--rm", "--network", "none", "--entrypoint", pod.probe[0],
                    image.tag, *pod.probe[1:], check=False)
    assert result.returncode == 7, result.stdout + result.stderr


def test_symlink_swap_is_applied_live(pod: PlayedPod) -> None:
    pod.logs.wait_for(BOOTED, BOOT_TIMEOUT)
    text = (pod.config.path / "config.yaml").read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    config["/Runner"]["vm"]["powerdownTimeout"] = LIVE_POWERDOWN_TIMEOUT
    mark = pod.logs.mark()
    pod.config.swap({"config.yaml": yaml.safe_dump(config)})
    pod.logs.wait_for(r"config\.yaml: configuration changed", 30, since=mark)
    inside = podman("exec", pod.container, "cat", "/etc/opt/vmrunner/config.yaml").stdout
    assert yaml.safe_load(inside)["/Runner"]["vm"]["powerdownTimeout"] == LIVE_POWERDOWN_TIMEOUT
    assert "rejected" not in pod.logs.text
    assert not re.search(r"→ (terminating|stopped)", pod.logs.text)


def test_stop_powers_the_guest_off_within_the_grace_period(pod: PlayedPod) -> None:
    """TERM reaches the runner; the guest powers off; exit 0 well within the grace period.

    The first shutdown rung reports the time to the deadline: it must equal the
    powerdownTimeout in the mounted config now (20 s after the live change, 40 s if run alone).
    """
    pod.logs.wait_for(BOOTED, BOOT_TIMEOUT)
    timeout = pod.config_value()["powerdownTimeout"]
    mark = pod.logs.mark()
    took = _stop(pod)
    assert took < pod.grace
    assert _exit_code(pod.container) == ExitCode.OK, pod.logs.text
    pod.logs.wait_for(r"SIGTERM received: shutting down the VM gracefully", 1, since=mark)
    rung = pod.logs.wait_for(
        r"shutdown rung (guest-agent|powerdown): .*\((\d+\.\d) s to the deadline\)", 1,
        since=mark)
    assert abs(float(rung.group(2)) - timeout) < 2, rung.group(0)
    pod.logs.wait_for(r"process qemu \(pid \d+\) exited with status 0", 1, since=mark)
    pod.logs.wait_for(r"state terminating → stopped", 1, since=mark)
    assert "did not power off" not in pod.logs.text
