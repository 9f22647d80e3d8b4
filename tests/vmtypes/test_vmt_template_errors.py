"""Template errors name the template file and line, and the config key when one is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from vmt_render import render

from vmrunner.vmtypes.errors import TemplateError, TemplateKeyError


def test_values_and_helpers(tmp_path: Path) -> None:
    body = (
        "qemu:\n  executable: [q]\n  arguments:\n"
        "    - ${vm.name}\n"
        "    - ${opt('x', {'a': vm.currentRam, 'b': True, 'c': vm.cpuModel})}\n"
        "% if not isset(vm.kernel):\n"
        "    - nokernel\n"
        "% endif\n"
        "    - [${vm.maximumRam // MiB}, [nested]]\n"
    )
    assert render(tmp_path, body, currentRam="512M") == [
        "q", "t", "x,a=536870912,b=on", "nokernel", "1024", "nested"]


def test_missing_key_names_file_line_and_key(tmp_path: Path) -> None:
    body = "qemu:\n  executable: [q]\n  arguments:\n    - ${arg(vm.kernel.image)}\n"
    with pytest.raises(TemplateKeyError) as info:
        render(tmp_path, body)
    assert info.value.key == "/Runner/vm/kernel"
    assert info.value.line == 4
    assert str(info.value).startswith(f"{tmp_path}/T.yaml.mako:4: /Runner/vm/kernel:")


def test_unknown_key(tmp_path: Path) -> None:
    body = "qemu:\n  executable: [q]\n  arguments:\n\n    - ${vm.maximumRAM}\n"
    with pytest.raises(TemplateKeyError, match=r"T.yaml.mako:5: /Runner/vm/maximumRAM: no such"):
        render(tmp_path, body)


def test_unset_value_inserted(tmp_path: Path) -> None:
    body = "qemu:\n  executable: [q]\n  arguments:\n    - ${vm.currentRam}\n"
    with pytest.raises(TemplateKeyError, match=r":4: /Runner/vm/currentRam: the key is not set"):
        render(tmp_path, body)


def test_undefined_name(tmp_path: Path) -> None:
    body = "qemu:\n  executable: [q]\n  arguments:\n    - ${nosuchvariable}\n"
    with pytest.raises(TemplateError, match=r"T.yaml.mako:4: unknown name: .*nosuchvariable"):
        render(tmp_path, body)


def test_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"T.yaml.mako:2: syntax error"):
        render(tmp_path, "qemu:\n% if True:\n")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("qemu: [a]\n", "output qemu"),
        ("qemu:\n  executable: []\n", "output qemu.executable"),
        ("qemu:\n  executable: [q]\n  arguments: [{a: b}]\n", "is not an argument"),
        ("qemu:\n  executable: [q]\n  arguments: [yes]\n", "is not an argument"),
        ("qemu:\n  executable: [q]\n  arguments: [\n", "output is not valid YAML"),
        ("qemu:\n  executable: [q]\nextra: 1\n", "output extra"),
    ],
)
def test_bad_output(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(tmp_path, body)
