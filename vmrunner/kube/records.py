"""The ``events.k8s.io/v1`` Events the runner creates (contract §4).

Every Event: ``type: Normal``, ``reportingController: vmoperator.jdrupes.org/vm-runner``,
``reportingInstance`` = the VM's name, ``regarding`` = the VirtualMachine,
``metadata.generateName`` = ``"<vm>-"``, ``eventTime`` = when it happened, RFC 3339 with
microseconds (``2026-01-01T00:00:00.000000Z``, what the real events API requires), and
``apiVersion``/``kind`` in the body.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec

REPORTING_CONTROLLER = "vmoperator.jdrupes.org/vm-runner"
STATUS_UPDATE = "StatusUpdate"
"""The action of the runner's state changes (reason: ``RunnerStarted``, ``VmStarted``,
``VmBooted``, ``VmTerminating``, ``VmStopped``)."""
CONSOLE_UPDATE = "ConsoleConnectionUpdate"
"""The action of console changes (reason ``Connection from <host>`` /
``Disconnected from <host>``)."""
VM_API_VERSION = "vmoperator.jdrupes.org/v1"
VM_KIND = "VirtualMachine"
MAX_REASON = 128
"""The events API's limit on ``reason`` (and ``action``)."""
MAX_NOTE = 1024
"""The events API's limit on ``note`` (bytes; kept short of it in characters)."""


class EventRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One Event to create: ``action``, ``reason``, ``note`` and when it happened."""

    action: str
    reason: str
    note: str
    time: datetime.datetime


def micro_time(moment: datetime.datetime) -> str:
    """``moment`` as ``metav1.MicroTime``: RFC 3339 UTC with six fractional digits."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_body(record: EventRecord, *, vm_name: str, namespace: str,
               vm_uid: str | None) -> dict[str, Any]:
    """The body of ``POST /apis/events.k8s.io/v1/namespaces/<ns>/events`` for ``record``."""
    regarding: dict[str, Any] = {"apiVersion": VM_API_VERSION, "kind": VM_KIND,
                                 "name": vm_name, "namespace": namespace}
    if vm_uid:
        regarding["uid"] = vm_uid
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": f"{vm_name}-", "namespace": namespace},
        "eventTime": micro_time(record.time),
        "type": "Normal",
        "action": record.action[:MAX_REASON],
        "reason": record.reason[:MAX_REASON],
        "note": record.note[:MAX_NOTE // 4 * 3],
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": vm_name,
        "regarding": regarding,
    }
