"""``GET /metrics``: the status (:class:`~vmrunner.api.status.Status`: the components' answers
and the event log's counters) as Prometheus text (prometheus-client).

Metric families (all prefixed ``vmrunner_``): ``state`` (one series per state, 1 for the
current one), ``ram_bytes{kind=maximum|requested|actual}`` (balloon target and actual),
``vcpus{kind=maximum|requested|present}``, ``shutdown_rung`` (one series per rung, 1 for each
rung reached), ``shutdown_remaining_seconds``, ``shutdown_duration_seconds``,
``qmp_commands_total{command}``, ``qmp_errors_total{command}``,
``qmp_command_seconds_total{command}``, ``config_reloads_total``,
``config_rejections_total``, ``guest_agent_connected``, ``cdrom_pending{drive}``,
``cdrom_tray_open{drive}``, ``errors`` (kept recent errors), ``console_connected`` and
``console_client_info{host}`` (the SPICE console client), ``console_sessions``,
``vmop_agent_connected`` and ``logged_in_user_info{user}`` (auto-login); the guest's facts
(:func:`guest_families`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from vmrunner.events import Rung, RunState

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from .status import Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def families(status: Status) -> Iterator[Metric]:
    """The metric families of ``status``."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    state = GaugeMetricFamily("vmrunner_state", "The runner's state (1: current)",
                              labels=["state"])
    for value in RunState:
        state.add_metric([value.value], 1.0 if status.state is value else 0.0)
    yield state

    ram = GaugeMetricFamily("vmrunner_ram_bytes", "Guest RAM: maximum, requested (balloon "
                            "target) and actual (balloon)", labels=["kind"])
    ram_status = status.ram
    for kind, size in (("maximum", ram_status.maximum), ("requested", ram_status.requested),
                       ("actual", ram_status.actual)):
        if size is not None:
            ram.add_metric([kind], float(size))
    yield ram

    cpus = GaugeMetricFamily("vmrunner_vcpus", "vCPUs: maximum, requested and present",
                             labels=["kind"])
    for kind, count in (("maximum", status.cpus.maximum),
                        ("requested", status.cpus.requested),
                        ("present", status.cpus.present)):
        if count is not None:
            cpus.add_metric([kind], float(count))
    yield cpus

    rungs = GaugeMetricFamily("vmrunner_shutdown_rung", "Shutdown ladder rungs reached "
                              "(1: reached)", labels=["rung"])
    for rung in Rung:
        rungs.add_metric([rung.value], 1.0 if rung in status.shutdown.rungs else 0.0)
    yield rungs
    counters = status.log.counters
    if status.remaining is not None:
        yield GaugeMetricFamily("vmrunner_shutdown_remaining_seconds",
                                "Seconds left before the forced stop", value=status.remaining)
    if counters.shutdown_seconds is not None:
        yield GaugeMetricFamily("vmrunner_shutdown_duration_seconds",
                                "From the start of the shutdown to stopped",
                                value=counters.shutdown_seconds)

    commands = CounterMetricFamily("vmrunner_qmp_commands", "QMP commands executed",
                                   labels=["command"])
    errors = CounterMetricFamily("vmrunner_qmp_errors", "QMP commands that failed",
                                 labels=["command"])
    seconds = CounterMetricFamily("vmrunner_qmp_command_seconds",
                                  "Time spent waiting for QMP answers", labels=["command"])
    for name in sorted(counters.qmp_commands):
        commands.add_metric([name], float(counters.qmp_commands[name]))
        errors.add_metric([name], float(counters.qmp_errors.get(name, 0)))
        seconds.add_metric([name], counters.qmp_seconds.get(name, 0.0))
    yield commands
    yield errors
    yield seconds
    yield CounterMetricFamily("vmrunner_config_reloads", "Configuration changes applied",
                              value=float(counters.config_reloads))
    yield CounterMetricFamily("vmrunner_config_rejections", "Configuration changes rejected",
                              value=float(counters.config_rejections))
    yield GaugeMetricFamily("vmrunner_guest_agent_connected", "qemu-ga answers (1) or not",
                            value=1.0 if status.guest_agent.connected else 0.0)
    console = status.console
    yield GaugeMetricFamily("vmrunner_console_connected", "A SPICE console client is connected",
                            value=0.0 if console.client is None else 1.0)
    client = GaugeMetricFamily("vmrunner_console_client_info", "The SPICE console client's host",
                               labels=["host"])
    if console.client is not None:
        client.add_metric([console.client], 1.0)
    yield client
    yield GaugeMetricFamily("vmrunner_console_sessions", "Connected SPICE sessions",
                            value=float(len(console.clients)))
    yield GaugeMetricFamily("vmrunner_vmop_agent_connected",
                            "The guest's auto-login agent runs (1) or not",
                            value=1.0 if status.vmop.connected else 0.0)
    user = GaugeMetricFamily("vmrunner_logged_in_user_info",
                             "The user the guest's agent confirmed logged in", labels=["user"])
    if status.vmop.logged_in_user is not None:
        user.add_metric([status.vmop.logged_in_user], 1.0)
    yield user
    pending = GaugeMetricFamily("vmrunner_cdrom_pending", "A CD change waits for the guest",
                                labels=["drive"])
    tray = GaugeMetricFamily("vmrunner_cdrom_tray_open", "The CD tray is open",
                             labels=["drive"])
    for cd in status.cdrom.drives:
        pending.add_metric([cd.drive], 0.0 if cd.pending is None else 1.0)
        tray.add_metric([cd.drive], 1.0 if cd.tray_open else 0.0)
    yield pending
    yield tray
    yield GaugeMetricFamily("vmrunner_errors", "Recent errors kept for /status",
                            value=float(len(status.log.errors)))
    yield from guest_families(status)


def guest_families(status: Status) -> Iterator[Metric]:
    """The guest agent's responsiveness and the guest's facts: ``guest_agent_responsive``
    (1 responsive, 0 unresponsive or disconnected), ``guest_filesystem_size_bytes`` and
    ``guest_filesystem_used_bytes{mountpoint,type}``,
    ``guest_network_address_info{interface,address,family}`` (1 per address; no series
    until the agent has said)."""
    from prometheus_client.core import GaugeMetricFamily

    from vmrunner.events.guest_facts import AgentState

    guest = status.guest
    yield GaugeMetricFamily("vmrunner_guest_agent_responsive",
                            "qemu-ga answers its timed guest-ping (1) or not",
                            value=1.0 if guest.agent is AgentState.RESPONSIVE else 0.0)
    facts = guest.facts
    size = GaugeMetricFamily("vmrunner_guest_filesystem_size_bytes",
                             "Size of a filesystem mounted in the guest (qemu-ga)",
                             labels=["mountpoint", "type"])
    used = GaugeMetricFamily("vmrunner_guest_filesystem_used_bytes",
                             "Bytes used on a filesystem mounted in the guest (qemu-ga)",
                             labels=["mountpoint", "type"])
    for fs in (facts.filesystems or ()) if facts is not None else ():
        if fs.total_bytes is not None:
            size.add_metric([fs.mountpoint, fs.type], float(fs.total_bytes))
        if fs.used_bytes is not None:
            used.add_metric([fs.mountpoint, fs.type], float(fs.used_bytes))
    yield size
    yield used
    address = GaugeMetricFamily("vmrunner_guest_network_address_info",
                                "An address of a guest network interface (qemu-ga)",
                                labels=["interface", "address", "family"])
    for interface in (facts.interfaces or ()) if facts is not None else ():
        for ip in interface.addresses:
            address.add_metric([interface.name, ip.address, ip.family], 1.0)
    yield address


class _Collector:
    def __init__(self, status: Status) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        return families(self.status)


def render(status: Status) -> bytes:
    """The Prometheus text exposition of ``status`` (prometheus-client is imported at the
    first request)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(status))
    return generate_latest(registry)
