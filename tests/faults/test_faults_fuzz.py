"""Property: any configuration values go through validation and rendering without a
traceback (issue 8, bad input). The outcome is either a problem list whose every entry names
a key path under ``/Runner``, a :class:`~vmrunner.vmtypes.errors.VmTypeError` (reported by
the CLI as exit 2), or a QEMU argv of plain strings. Comma injection into QEMU options is the
separate property in tests/vmtypes/test_vmt_injection_property.py."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vmrunner.config.validate import validate_values
from vmrunner.vmtypes.errors import VmTypeError
from vmrunner.vmtypes.prepare import plan_start

VM_KEYS = ["name", "uuid", "useTpm", "tpmModel", "firmware", "bootMenu", "powerdownTimeout",
           "maximumRam", "currentRam", "cpuModel", "cpuFeatures", "sockets", "diesPerSocket",
           "coresPerDie", "threadsPerCore", "maximumCpus", "currentCpus", "accelerator",
           "rtcBase", "rtcClock", "network", "drives", "display", "kernel", "serialConsole",
           "guestAgent", "audio"]
RUNNER_KEYS = ["template", "templateDirs", "updateTemplate", "cloudInit",
               "guestShutdownStops", "resetCounter"]

sizes = st.sampled_from(["1 GiB", "512 MiB", "0", "-1 MiB", "1.5G", "1 TiB", "12 parsecs",
                         "1e3", "0x10", "256", "2 GB", "1 KiB", "", " ", "NaN"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), sizes,
    st.sampled_from(["bios", "uefi", "uefi-4m", "secure", "kvm", "tcg", "tap", "user",
                     "ide-cd", "scsi", "virtio", "raw", "/dev/null", "../etc/passwd",
                     "a,b=c", "%{x}", "${x}", "<%", "\n", "on", "yes"]),
    st.text(max_size=12).filter(lambda s: "\x00" not in s),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(["file", "device", "type", "bus", "image",
                                                   "initrd", "cmdline", "bridge", "mac",
                                                   "spice", "port", "bootindex", "resize",
                                                   "model", "net", "outputs"]),
                                  st.text(max_size=6)), inner, max_size=3)),
    max_leaves=8,
)


def _vm_values(draw_vm: dict[str, Any]) -> dict[str, Any]:
    return {"name": "fuzz", "firmware": "bios", "accelerator": "tcg", **draw_vm}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vm=st.dictionaries(st.sampled_from(VM_KEYS), values, max_size=5),
       runner=st.dictionaries(st.sampled_from(RUNNER_KEYS), values, max_size=2))
def test_any_values_give_problems_or_an_argv(vm: dict[str, Any],
                                             runner: dict[str, Any]) -> None:
    document = {"dataDir": "/nonexistent/d", "runtimeDir": "/nonexistent/r",
                **runner, "vm": _vm_values(vm)}
    result = validate_values(document)
    if result.config is None or result.errors:
        assert result.errors, "no config and no error"
        for problem in result.errors:
            assert problem.path.startswith("/Runner"), problem
            assert problem.message.strip(), problem
        event("problems")
        return
    try:
        argv = plan_start(result.config).render(resolve_executables=False).qemu.argv
    except VmTypeError as error:  # a clean, reported error (exit 2 in the CLI)
        assert str(error).strip()
        event("VmTypeError")
        return
    event("argv")
    assert argv and all(isinstance(a, str) and "\x00" not in a for a in argv), argv
