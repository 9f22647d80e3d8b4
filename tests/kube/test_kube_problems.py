"""ProblemLog, the status writer's logging rule: one WARNING per problem, one INFO on
recovery, quiet conflicts. (The same rule against the real API server, fault by fault:
tests/k8s/test_k8s_faults.py.)"""

from __future__ import annotations

import logging

import pytest

from vmrunner.kube.errors import KubeProblem
from vmrunner.kube.problems import MAX_QUIET_CONFLICTS, ProblemLog

TIMEOUT = KubeProblem("patch status", 0, "no answer within 2 s")
CONFLICT = KubeProblem("patch status", 409, "Conflict")
GONE = KubeProblem("get VirtualMachine", 404, "NotFound")


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "vmrunner.kube"]


def test_one_line_per_problem_and_one_on_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "vmrunner.kube")
    log = ProblemLog("default", "tg")
    for _ in range(5):
        assert not log.failed(TIMEOUT)
    assert not log.failed(GONE)
    assert not log.failed(GONE)
    assert log.describe() == str(GONE)
    log.worked()
    log.worked()
    assert lines(caplog) == [
        ("WARNING", "Kubernetes: default/tg: patch status: no answer within 2 s (the API "
                    "server does not answer; retrying with backoff)"),
        ("WARNING", "Kubernetes: default/tg: get VirtualMachine: NotFound (the "
                    "VirtualMachine does not exist (deleted?); retrying with backoff)"),
        ("INFO", "Kubernetes: default/tg written again after 7 failed attempt(s); the status "
                 "is current"),
    ]
    assert log.describe() == "no answer yet"


def test_a_conflict_right_after_an_outage_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """A write that timed out may have been applied late: the next write meets a 409, which
    is re-read and retried at once, not a new problem (the outage's failures do not count)."""
    caplog.set_level(logging.INFO, "vmrunner.kube")
    log = ProblemLog("default", "tg")
    for _ in range(6):
        log.failed(TIMEOUT)
    assert log.failed(CONFLICT), "a first conflict is retried at once"
    log.worked()
    assert [level for level, _ in lines(caplog)] == ["WARNING", "INFO"]
    assert "409" not in caplog.text and "Conflict" not in caplog.text


def test_a_persisting_conflict_is_a_problem(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "vmrunner.kube")
    log = ProblemLog("default", "tg")
    for _ in range(MAX_QUIET_CONFLICTS):
        assert log.failed(CONFLICT)
    assert not lines(caplog)
    assert not log.failed(CONFLICT), "then backoff"
    assert not log.failed(CONFLICT)
    assert lines(caplog) == [
        ("WARNING", "Kubernetes: default/tg: patch status: Conflict (conflicting concurrent "
                    "changes; re-reading and retrying)"),
    ]
