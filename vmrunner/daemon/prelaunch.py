"""Starting QEMU before the component tree exists: the fast path of ``vmrunner run``.

A runner's start is mostly Python work (imports, the component tree, the bus), and QEMU needs
~35 ms from exec until it answers on QMP. ``vmrunner run`` overlaps the two: once the
``/Runner`` configuration is valid it prepares the VM exactly as the Runner would (directories,
uuid, firmware variables, template copy, cloud-init image; :func:`prepare_vm`), starts QEMU
paused (the template's ``-S``), and only then imports and builds the tree. The Runner is given
the prepared plan, and the ProcessManager adopts the child when the start sequence asks for
QEMU with the same argv (a different argv, e.g. after the file changed in between, gets the
early child terminated and a new one started).

Not used when the VM has a TPM (swtpm must run before QEMU) or when anything fails on the
way: then nothing was started, and the normal start sequence repeats the step and reports the
problem as usual. If the tree then stops before the start sequence claims the child (a bad
section of another component, a signal), the paused QEMU is terminated like any other child;
the guest never ran.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vmrunner.config.model import RunnerConfig
from vmrunner.proc.child import ChildProcess, spawn
from vmrunner.proc.errors import ProcessStartError
from vmrunner.proc.sockets import remove_stale_socket
from vmrunner.vmtypes.errors import VmTypeError
from vmrunner.vmtypes.launch import prepare_vm
from vmrunner.vmtypes.prepare import StartPlan
from vmrunner.vmtypes.render import RenderedVm

_log = logging.getLogger(__name__)

QEMU = "qemu"


@dataclass(frozen=True)
class Prelaunched:
    """The prepared VM and the QEMU child started for it (paused)."""

    config: RunnerConfig
    plan: StartPlan
    rendered: RenderedVm
    qemu: ChildProcess


async def prelaunch(config: RunnerConfig) -> Prelaunched | None:
    """Prepare the VM and start QEMU; None (nothing started) if it has a TPM or a step fails."""
    if config.vm.use_tpm:
        return None
    try:
        plan, rendered = prepare_vm(config)
        if rendered.swtpm is not None:
            return None
        _log.debug("VM prepared; starting QEMU before the component tree")
        remove_stale_socket(plan.inputs.paths.monitor_socket)
        command = rendered.qemu
        child = await spawn(QEMU, command.argv, env=dict(command.environment) or None)
    except (VmTypeError, OSError, ProcessStartError, ValueError, TypeError) as exc:
        _log.debug("no early start of QEMU (the start sequence will report it): %s", exc)
        return None
    return Prelaunched(config, plan, rendered, child)
