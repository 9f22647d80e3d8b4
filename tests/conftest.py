"""Shared fixtures: the tiny test guest and the accelerator verdict (see docs/design/testing.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from vmrunner.testing.accel import AccelVerdict, decide_accel
from vmrunner.testing.guest import GuestImage, build_guest, default_cache_dir
from vmrunner.testing.prereq import GUEST_TOOLS, missing_tools, require_tools
from vmrunner.testing.qemu import kvm_boot_probe
from vmrunner.testing.runnerproc import RunnerProcess

_ACCEL = pytest.StashKey[AccelVerdict]()


def _accel(config: pytest.Config) -> AccelVerdict:
    if _ACCEL not in config.stash:
        probe = None if missing_tools(*GUEST_TOOLS) else (lambda: kvm_boot_probe(build_guest()))
        config.stash[_ACCEL] = decide_accel(default_cache_dir() / "accel.json", probe)
    return config.stash[_ACCEL]


def pytest_report_header(config: pytest.Config) -> str:
    verdict = _accel(config)
    return f"guest accel: {verdict.label} ({verdict.reason})"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``-n 2 --dist loadgroup``, scripts/test.sh) the tests that run a VM
    or the Kubernetes API server form one group: they run one after another on one worker,
    as without xdist, while the other tests share both workers. (Runs before xdist's own
    hook, which reads the group.)"""
    for item in items:
        if item.get_closest_marker("guest") or item.get_closest_marker("k8s"):
            item.add_marker(pytest.mark.xdist_group("vm"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("guest"):
        require_tools(*GUEST_TOOLS)


@pytest.fixture(scope="session")
def accel(pytestconfig: pytest.Config) -> AccelVerdict:
    return _accel(pytestconfig)


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    """The cloud-kernel guest (fast boot; CD on virtio-scsi), built once and cached."""
    return build_guest("cloud")


@pytest.fixture(scope="session")
def generic_guest_image() -> GuestImage:
    """The generic-kernel guest (has AHCI, so ide-cd on q35 works; boots ~2x slower)."""
    return build_guest("generic")


@pytest.fixture
def accel_name(accel: AccelVerdict) -> str:
    return str(accel.accel)


@pytest_asyncio.fixture
async def runners() -> AsyncIterator[list[RunnerProcess]]:
    """Runner processes a test starts; killed at the end if still running."""
    started: list[RunnerProcess] = []
    yield started
    for runner in started:
        await runner.close()
