"""Every node of the file is checked, by `check` and before `run` spawns anything (issue 15,
item 4): the other components' nodes are validated by the component at their path, an
unknown node is a warning with a did-you-mean (an error with --strict). Real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BASE = """"/Runner":
  dataDir: {base}/data
  runtimeDir: {base}/run
  vm:
    name: nodes
    firmware: bios
    accelerator: tcg
    maximumRam: 64 MiB
    network: []
    kernel: {{image: {base}/vmlinuz}}
"""


def vmrunner(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmrunner", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def config(tmp_path: Path, extra: str) -> Path:
    file = tmp_path / "config.yaml"
    file.write_text(BASE.format(base=tmp_path) + extra)
    (tmp_path / "vmlinuz").write_bytes(b"")  # never booted: nothing starts in these tests
    return file


def test_an_invalid_component_node_fails_check_and_run_before_anything_starts(
        tmp_path: Path) -> None:
    file = config(tmp_path, '  "/Api": {listen: "127.0.0.1:9999"}\n')
    checked = vmrunner("check", "-c", str(file))
    assert checked.returncode == 2, checked
    assert "/Runner/Api: Value error, listen needs tokenFile" in checked.stdout
    ran = vmrunner("run", "-c", str(file))
    assert ran.returncode == 2, ran
    assert "/Runner/Api:" in ran.stderr + ran.stdout
    assert "started " not in ran.stderr + ran.stdout
    assert not (tmp_path / "run").exists()  # nothing prepared, locked or bound


def test_unknown_nodes_and_keys_are_warnings_or_strict_errors(tmp_path: Path) -> None:
    file = config(tmp_path, '  "/PowerdownHandlr": {killGrace: 1}\n'
                            '  "/PowerdownHandler": {killGrase: 1}\n'
                            '"/Runnr": {}\n')
    checked = vmrunner("check", "-c", str(file))
    assert checked.returncode == 0, checked
    out = checked.stdout
    assert ("warning: /Runner/PowerdownHandlr: unknown node, no component has this path "
            "(did you mean '/Runner/PowerdownHandler'?)") in out
    assert "warning: /Runnr: unknown node" in out and "did you mean '/Runner'?" in out
    assert "warning: /Runner/PowerdownHandler/killGrase: unknown key" in out
    strict = vmrunner("check", "--strict", "-c", str(file))
    assert strict.returncode == 2, strict
    assert "/Runner/PowerdownHandlr: unknown node" in strict.stdout
    assert "/Runner/PowerdownHandler/killGrase: unknown key" in strict.stdout
    ran = vmrunner("run", "--strict", "-c", str(file))
    assert ran.returncode == 2 and "started " not in ran.stderr, ran


def test_every_standard_node_gets_a_did_you_mean_at_check(tmp_path: Path) -> None:
    """/Api and /PowerdownHandler typos are warnings with the key meant; /Runner/Kubernetes
    (extra keys forbidden) is checked by ``check`` too, not only by ``run`` (issue 18)."""
    file = config(tmp_path, '  "/Api": {tokenFil: t}\n'
                            '  "/PowerdownHandler": {repeatIntervall: 1}\n')
    checked = vmrunner("check", "-c", str(file))
    assert checked.returncode == 0, checked
    assert ("warning: /Runner/Api/tokenFil: unknown key (did you mean 'tokenFile'?)"
            in checked.stdout)
    assert ("warning: /Runner/PowerdownHandler/repeatIntervall: unknown key "
            "(did you mean 'repeatInterval'?)") in checked.stdout
    kube = config(tmp_path, '  "/Kubernetes": {kubconfig: k.yaml}\n')
    checked = vmrunner("check", "-c", str(kube))
    assert checked.returncode == 2, checked
    assert ("/Runner/Kubernetes/kubconfig: unknown key (did you mean 'kubeconfig'?)"
            in checked.stdout)


def test_the_guest_agent_node_is_checked_by_key(tmp_path: Path) -> None:
    """``/Runner/GuestAgent`` (guest facts): a bad interval is an error naming its key."""
    file = config(tmp_path, '  "/GuestAgent": {pingInterval: 0, factsInterval: -1}\n')
    checked = vmrunner("check", "-c", str(file))
    assert checked.returncode == 2, checked
    assert "/Runner/GuestAgent/pingInterval: Input should be greater than 0" in checked.stdout
    assert ("/Runner/GuestAgent/factsInterval: Input should be greater than or equal to 0"
            in checked.stdout)
    typo = config(tmp_path, '  "/GuestAgent": {pingIntervall: 5}\n')
    assert ("warning: /Runner/GuestAgent/pingIntervall: unknown key (did you mean "
            "'pingInterval'?)") in vmrunner("check", "-c", str(typo)).stdout
