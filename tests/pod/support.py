"""Helpers for the pod tests: podman with this host's settings, helm rendering, log following,
and a config directory laid out the way the kubelet writes ConfigMap volumes.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "vmrunner"
CONTAINERS_CONF = REPO / "scripts" / "pod" / "containers.conf"


def podman_env() -> dict[str, str]:
    """The environment for podman: our containers.conf unless the caller set one."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


def podman(*args: str, check: bool = True, timeout: float = 120,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS``; with ``check`` a failure raises with podman's stderr."""
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                            env=podman_env(), input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stderr}{result.stdout}")
    return result


def script_output(script: str, *args: str, timeout: float = 600) -> str:
    """The last stdout line of ``bash scripts/pod/SCRIPT`` (the scripts print one path)."""
    result = subprocess.run(["bash", str(REPO / "scripts" / "pod" / script), *args],
                            capture_output=True, text=True, timeout=timeout, env=podman_env())
    if result.returncode != 0:
        raise AssertionError(f"scripts/pod/{script} failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def helm(helm_bin: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm; with ``check`` a failure raises with its output."""
    result = subprocess.run([helm_bin, *args], capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
    return result


def values_file(values: dict[str, Any]) -> Path:
    """``values`` written to a temporary YAML file."""
    handle, name = tempfile.mkstemp(prefix="values-", suffix=".yaml")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        yaml.safe_dump(values, out)
    return Path(name)


def render(helm_bin: str, values: dict[str, Any], release: str = "vmtest",
           extra: Sequence[str] = ()) -> str:
    """``helm template`` of the chart with ``values``; the manifest text."""
    path = values_file(values)
    try:
        return helm(helm_bin, "template", release, str(CHART), "-f", str(path), *extra).stdout
    finally:
        path.unlink()


def documents(manifest: str) -> list[dict[str, Any]]:
    """The non-empty documents of a multi-document YAML text."""
    return [d for d in yaml.safe_load_all(manifest) if d]


def one(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single document of ``kind``."""
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, got {[d.get('kind') for d in docs]}"
    return found[0]


def config_map(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ConfigMap holding config.yaml (the chart may also render one for templates)."""
    found = [d for d in docs if d.get("kind") == "ConfigMap" and "config.yaml" in d["data"]]
    assert len(found) == 1, f"expected one config ConfigMap, got {len(found)}"
    return found[0]


def pod_spec(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The pod spec of the rendered Pod or StatefulSet."""
    for doc in docs:
        if doc.get("kind") == "Pod":
            return dict(doc["spec"])
        if doc.get("kind") == "StatefulSet":
            return dict(doc["spec"]["template"]["spec"])
    raise AssertionError("no Pod or StatefulSet rendered")


class KubeletConfigDir:
    """A directory written like the kubelet's AtomicWriter writes a ConfigMap volume.

    ``..<timestamp>/`` holds the files, ``..data`` links to it, and each visible name is a
    symlink ``name -> ..data/name`` that never changes. An update writes a new timestamped
    directory, points ``..data_tmp`` at it, renames ``..data_tmp`` over ``..data`` (the
    atomic swap) and removes the old directory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.generation = 0

    def _payload(self, files: dict[str, str]) -> str:
        self.generation += 1
        name = time.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{self.generation:09d}"
        target = self.path / name
        target.mkdir(mode=0o755)
        for file, content in files.items():
            (target / file).write_text(content, encoding="utf-8")
        return name

    def write(self, files: dict[str, str]) -> None:
        """The first write: payload, ``..data`` and the user-visible symlinks."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "..data").symlink_to(self._payload(files))
        for file in files:
            (self.path / file).symlink_to(f"..data/{file}")

    def swap(self, files: dict[str, str]) -> None:
        """An update with the same file names: the ``..data`` symlink swap."""
        old = os.readlink(self.path / "..data")
        tmp = self.path / "..data_tmp"
        tmp.symlink_to(self._payload(files))
        os.rename(tmp, self.path / "..data")
        for entry in (self.path / old).iterdir():
            entry.unlink()
        (self.path / old).rmdir()


class LogFollower:
    """Follows ``podman logs -f CONTAINER`` (stdout and stderr) in a reader thread.

    :meth:`wait_for` blocks on the line queue until a line matches (no polling); lines are
    kept, so a caller takes a :meth:`mark` before acting and waits for what comes after it.
    """

    def __init__(self, container: str) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._process = subprocess.Popen(
            ["podman", "logs", "-f", container], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=podman_env())
        self._thread = threading.Thread(target=self._read, name=f"logs-{container}",
                                        daemon=True)
        self._thread.start()
        self._ended = False

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def mark(self) -> int:
        """The index of the next line, for ``wait_for(..., since=mark)``."""
        self._pull()
        return len(self.lines)

    def _pull(self) -> bool:
        """Move queued lines into ``lines``; False once the log has ended."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return not self._ended
            if line is None:
                self._ended = True
                return False
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float, since: int = 0) -> re.Match[str]:
        """The first line at index ``since`` or later matching ``pattern``, waiting for it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        start = since
        while True:
            self._pull()
            for line in self.lines[start:]:
                match = regex.search(line)
                if match:
                    return match
            start = max(start, len(self.lines))
            left = deadline - time.monotonic()
            if self._ended:
                raise AssertionError(f"the log ended before a line matching {pattern!r}; "
                                     f"log:\n{self.text}")
            if left <= 0:
                raise AssertionError(f"no log line matching {pattern!r} within {timeout} s; "
                                     f"log:\n{self.text}")
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                self._ended = True
            else:
                self.lines.append(item)

    def drain(self, timeout: float = 10) -> None:
        """Collect the remaining lines until ``podman logs -f`` ends (the container exited)."""
        deadline = time.monotonic() + timeout
        while self._pull():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                return
            if line is None:
                self._ended = True
            else:
                self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        self._process.wait(timeout=10)
        self._thread.join(timeout=10)


def podman_volumes(manifest: str) -> list[str]:
    """The named volumes podman 4.3 makes for a manifest: one per emptyDir (named after the
    pod's volume, so shared by every pod using that name), one per ConfigMap (named after it)
    and one per PersistentVolumeClaim it declares (named after the claim)."""
    names: list[str] = []
    for doc in documents(manifest):
        if doc.get("kind") == "PersistentVolumeClaim":
            names.append(doc["metadata"]["name"])
        if doc.get("kind") != "Pod":
            continue
        for volume in doc["spec"].get("volumes", []):
            if "emptyDir" in volume:
                names.append(volume["name"])
            elif "configMap" in volume:
                names.append(volume["configMap"]["name"])
    return names


@contextlib.contextmanager
def played(manifest: str, pod: str, network: str | None = "none") -> Iterator[None]:
    """``podman kube play`` of ``manifest`` (``--network network``; None: as the manifest says,
    e.g. ``hostNetwork``); the pod and its volumes are removed afterwards, and stale volumes of
    the same names before (emptyDir and a new claim must start empty)."""
    volumes = podman_volumes(manifest)
    handle, name = tempfile.mkstemp(prefix="kube-", suffix=".yaml")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(manifest)
    try:
        if volumes:
            podman("volume", "rm", "-f", *volumes, check=False)
        podman("kube", "play", *(["--network", network] if network else []), name)
        yield
    finally:
        podman("kube", "down", name, check=False, timeout=60)
        podman("pod", "rm", "-f", "-t", "0", pod, check=False, timeout=60)
        if volumes:
            podman("volume", "rm", "-f", *volumes, check=False)
        os.unlink(name)


@contextlib.contextmanager
def loop_device(backing: Path) -> Iterator[Path]:
    """A real block device: ``losetup`` of the file ``backing``, detached afterwards."""
    result = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True,
                            text=True, timeout=30)
    if result.returncode != 0:
        raise AssertionError(f"losetup {backing} failed: {result.stderr}")
    device = Path(result.stdout.strip())
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", str(device)], capture_output=True, timeout=30)


@contextlib.contextmanager
def filled_volume(name: str, files: dict[str, Path]) -> Iterator[str]:
    """A podman named volume ``name`` holding copies of ``files`` (name in the volume → host
    file), like a PersistentVolumeClaim that exists before the pod; removed afterwards."""
    podman("volume", "rm", "-f", name, check=False)
    podman("volume", "create", name)
    try:
        mountpoint = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}",
                                 name).stdout.strip())
        for target, source in files.items():
            (mountpoint / target).write_bytes(source.read_bytes())
        yield name
    finally:
        podman("volume", "rm", "-f", name, check=False)
