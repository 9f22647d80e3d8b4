"""SPICE without a password is served on loopback only unless the configuration says so
(issue 15, item 6): the real runner starts a real QEMU (no guest needed: SeaBIOS idles
without a boot disk) and the kernel's socket table (``/proc/net/tcp``) shows where SPICE
listens."""

from __future__ import annotations

import asyncio
import signal
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmrunner.testing.apiserver import free_port
from vmrunner.testing.runnerproc import RunnerProcess

LISTEN = "0A"


def _listening(port: int) -> set[str]:
    """The IPv4 addresses something listens on at TCP ``port``."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, port_hex = fields[1].split(":")
        if fields[3] == LISTEN and int(port_hex, 16) == port:
            found.add(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
    return found


def _config(base: Path, spice: dict[str, Any]) -> Path:
    config = base / "config.yaml"
    config.write_text(yaml.safe_dump({"/Runner": {
        "dataDir": str(base / "data"), "runtimeDir": str(base / "run"),
        "vm": {"name": "spice", "firmware": "bios", "accelerator": "tcg",
               "maximumRam": "64 MiB", "network": [], "powerdownTimeout": 1,
               "display": {"spice": spice}}}}))
    return config


@pytest.mark.parametrize("extra, expected", [
    ({}, {"127.0.0.1"}),
    ({"address": "0.0.0.0", "allowNoPassword": True}, {"0.0.0.0"}),
], ids=["no-password-loopback", "explicit-opt-in"])
async def test_spice_without_a_password_listens_where_the_config_says(
        base: Path, extra: dict[str, Any], expected: set[str]) -> None:
    port = free_port()
    runner = RunnerProcess(_config(base, {"port": port, **extra}))
    try:
        await runner.start()
        for _ in range(100):
            if _listening(port):
                break
            await asyncio.sleep(0.1)
        assert _listening(port) == expected, runner.log_tail()
        if not extra:
            assert ("/Runner/vm/display/spice: no password" in runner.log_text()
                    and "SPICE listens on 127.0.0.1 only" in runner.log_text())
        runner.signal(signal.SIGTERM)
        assert await runner.wait(30) is not None
    finally:
        await runner.close()
