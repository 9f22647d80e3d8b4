"""Parts of the API that need no VM: the event schema (and what it keeps out), the
``NOTIFY_SOCKET`` datagrams on a real socket, ``/Runner/Api`` validation, the summary text."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from vmrunner.api.client import format_status
from vmrunner.api.config import ApiConfig
from vmrunner.api.eventlog import EventLog
from vmrunner.api.sdnotify import notify_address, sd_notify
from vmrunner.api.serialize import event_record
from vmrunner.api.status import Status
from vmrunner.events import ExecuteQmp, Rung, ShutdownRung, StartProcess
from vmrunner.protocols.qmp import commands


def test_records_keep_secrets_out() -> None:
    command = commands.SetPassword(protocol="vnc", password="hunter2")
    record = event_record(7, 1.5, ExecuteQmp(command=command))
    assert record == {"seq": 7, "time": 1.5, "type": "ExecuteQmp",
                      "data": {"command": {"command": "set_password"}}}
    start = event_record(1, 0.0, StartProcess(name="swtpm", argv=("swtpm",),
                                              env=(("SECRET", "x"),)))
    assert start["data"]["env"] == ["SECRET"]
    assert "x" not in json.dumps(start)


def test_rung_record_is_json() -> None:
    record = event_record(2, 0.0, ShutdownRung(rung=Rung.KILL, deadline=None, detail="d"))
    assert json.loads(json.dumps(record))["data"] == {"rung": "kill", "deadline": None,
                                                      "detail": "d"}


def test_notify_datagrams(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        address = notify_address({"NOTIFY_SOCKET": str(path)})
        assert address == str(path)
        assert sd_notify(address, "READY=1", "STATUS=booting")
        assert listener.recv(4096) == b"READY=1\nSTATUS=booting"
    assert notify_address({"NOTIFY_SOCKET": "@abstract"}) == "\0abstract"
    assert notify_address({}) is None
    assert not sd_notify(str(tmp_path / "absent"), "READY=1")


def test_tcp_needs_a_token() -> None:
    with pytest.raises(ValidationError, match="listen needs tokenFile"):
        ApiConfig.model_validate({"listen": "127.0.0.1:9000"})
    with pytest.raises(ValidationError, match="not host:port"):
        ApiConfig.model_validate({"listen": "nowhere", "tokenFile": "/t"})
    assert ApiConfig.model_validate({"listen": "[::1]:9000", "tokenFile": "/t"}).listen


def test_summary_when_nothing_answered() -> None:
    text = format_status(Status([], EventLog()).document())
    assert text.startswith("VM None: initializing for ")
    assert "guest agent:  not connected" in text


def test_configuration_records_hide_passwords() -> None:
    from vmrunner.core import ConfigurationUpdate

    update = ConfigurationUpdate(nodes={"/Runner": {"vm": {"display": {
        "spice": {"displayPassword": "hunter2", "port": 5900}}}}})
    text = json.dumps(event_record(1, 0.0, update))
    assert "hunter2" not in text and '"displayPassword": "***"' in text
    assert '"port": 5900' in text
