"""The pod's grace period against ``/Runner/vm/powerdownTimeout``.

The chart puts the pod's ``terminationGracePeriodSeconds`` into the container's environment
as ``VMRUNNER_TERMINATION_GRACE_PERIOD``. The kubelet SIGKILLs the container that many
seconds after its TERM, so a ``powerdownTimeout`` plus the forced stop after it
(``FORCED_STOP`` s: SIGTERM to QEMU, SIGKILL later) that does not fit would have the VM
killed mid-shutdown. :func:`grace_warnings` says so by key path; ``vmrunner check`` and the
start of ``vmrunner run`` report it (RunnerBuilder). Invariant: no variable, no warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GRACE_ENV = "VMRUNNER_TERMINATION_GRACE_PERIOD"
FORCED_STOP = 5
"""Seconds the forced stop after ``powerdownTimeout`` may take (PowerdownHandler.kill_grace)."""
DEFAULT_POWERDOWN_TIMEOUT = 900
KEY = "/Runner/vm/powerdownTimeout"


def grace_warnings(runner: object, environ: Mapping[str, str]) -> list[str]:
    """Warnings for the ``/Runner`` node's values ``runner`` under the pod's grace period
    in ``environ``; an unreadable timeout is left to the validation (no warning here)."""
    raw = environ.get(GRACE_ENV)
    if raw is None:
        return []
    try:
        grace = int(raw)
    except ValueError:
        return [f"{GRACE_ENV}: {raw!r} is not a number of seconds; the grace period is not "
                f"checked against {KEY}"]
    vm: Any = runner.get("vm") if isinstance(runner, Mapping) else None
    timeout = vm.get("powerdownTimeout", DEFAULT_POWERDOWN_TIMEOUT) \
        if isinstance(vm, Mapping) else DEFAULT_POWERDOWN_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        return []
    if timeout + FORCED_STOP <= grace:
        return []
    return [f"{KEY}: {timeout} s plus the {FORCED_STOP} s forced stop exceeds the pod's "
            f"terminationGracePeriodSeconds ({grace} s, {GRACE_ENV}): the kubelet would kill "
            f"the VM during its shutdown; raise the chart's terminationGracePeriod.seconds "
            f"or lower the timeout"]
