"""Kubernetes mode is wired through RunnerBuilder only when it applies, and costs a stand-alone
runner nothing: no status writer, no client module; in Kubernetes mode the client modules are
imported only when the writer starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vmrunner.daemon.builder import ConfigInvalid, RunnerBuilder

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from vmrunner.daemon.builder import RunnerBuilder
runner = RunnerBuilder(sys.argv[1], **json.loads(sys.argv[2])).build()
names = [c.name for c in runner.children]
heavy = sorted(m for m in sys.modules
               if m in ("vmrunner.kube.component", "vmrunner.kube.writer", "vmrunner.kube.api",
                        "vmrunner.kube.http", "vmrunner.kube.credentials"))
print(json.dumps({"children": names, "heavy": heavy}))
"""


def _config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "vm.yaml"
    config.write_text(f"/Runner:\n  dataDir: {tmp_path}/data\n  runtimeDir: {tmp_path}/run\n"
                      f"  vm: {{name: t, maximumRam: 256 MiB}}\n{extra}")
    return config


def _probe(config: Path, **options: object) -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(config), json.dumps(options)],
                         capture_output=True, text=True, check=True, cwd=REPO,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def test_stand_alone_imports_nothing_of_kubernetes(tmp_path: Path) -> None:
    probe = _probe(_config(tmp_path))
    assert "Kubernetes" not in probe["children"]
    assert probe["heavy"] == []


def test_a_kubeconfig_attaches_the_writer_but_imports_no_client(tmp_path: Path) -> None:
    (tmp_path / "kc").write_text("apiVersion: v1\nkind: Config\n")
    probe = _probe(_config(tmp_path, "  /Kubernetes: {kubeconfig: kc, namespace: n}\n"))
    assert "Kubernetes" in probe["children"]
    assert probe["heavy"] == ["vmrunner.kube.component", "vmrunner.kube.writer"]
    probe = _probe(_config(tmp_path), kube={"kubeconfig": str(tmp_path / "kc")})
    assert "Kubernetes" in probe["children"]
    probe = _probe(_config(tmp_path, "  /Kubernetes: {kubeconfig: kc, enabled: false}\n"))
    assert "Kubernetes" not in probe["children"]


def test_in_a_pod_the_service_account_turns_it_on(tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    for name, text in (("token", "t"), ("namespace", "vms"), ("ca.crt", "")):
        (sa / name).write_text(text)
    config = _config(tmp_path, f"  /Kubernetes: {{serviceAccountDir: {sa}}}\n")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    runner = RunnerBuilder(config, environ=env, watch=False).build()
    writer = next(c for c in runner.children if c.name == "Kubernetes")
    assert writer.component_path == "/Runner/Kubernetes"
    assert writer.settings.describe() == (  # type: ignore[attr-defined]
        "VirtualMachine vms/t through the pod's service account")
    runner = RunnerBuilder(config, environ={}, watch=False).build()
    assert "Kubernetes" not in [c.name for c in runner.children]


def test_a_bad_node_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as raised:
        RunnerBuilder(_config(tmp_path, "  /Kubernetes: {kubeconfig: nope}\n")).build()
    assert raised.value.problems == [
        f"/Runner/Kubernetes/kubeconfig: {tmp_path}/nope: no such file"]


def test_command_line_flags() -> None:
    from vmrunner.daemon.cli import _with_command, build_parser, kube_overrides

    parser = build_parser()
    args = parser.parse_args(_with_command([
        "-c", "vm.yaml", "--kubeconfig", "kc", "--kube-context", "dev",
        "--kube-namespace", "vms", "--kube-vm-name", "win10"]))
    assert kube_overrides(args) == {"kubeconfig": Path("kc").absolute(), "context": "dev",
                                    "namespace": "vms", "vmName": "win10"}
    assert kube_overrides(parser.parse_args(["run", "--no-kube"])) == {"enabled": False}
    assert kube_overrides(parser.parse_args(["run"])) == {}
