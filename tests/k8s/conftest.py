"""Fixtures of the Kubernetes tests (marker ``k8s``): a real API server per test.

The binaries come from ``bash scripts/k8s-apiserver.sh`` (cached; ``scripts/test.sh`` runs it
and exports ``VMRUNNER_K8S_BIN``). Without them a test skips, or fails when ``CI`` is set.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from vmrunner.testing.apiserver import EVENTS_CRD, VM_CRD, KubeApiServer, find_binaries
from vmrunner.testing.prereq import in_ci

KubeApiFactory = Callable[..., KubeApiServer]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.k8s)


@pytest.fixture(scope="session")
def k8s_bin() -> Path:
    """The directory with etcd and apiextensions-apiserver."""
    found = find_binaries()
    if found is None:
        reason = ("no Kubernetes API server binaries (run: bash scripts/k8s-apiserver.sh, "
                  "or set VMRUNNER_K8S_BIN)")
        if in_ci():
            pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip",
                        pytrace=False)
        pytest.skip(reason)
    return found


@pytest.fixture
def kube_api_factory(k8s_bin: Path) -> Iterator[KubeApiFactory]:
    """``kube_api_factory(start=True, crds=(VM_CRD, EVENTS_CRD))``: a KubeApiServer in a
    fresh temp dir; with ``start=False`` only etcd runs (the API is down until
    ``start_apiserver()``). All are closed and their directories removed after the test."""
    made: list[tuple[KubeApiServer, Path]] = []

    def make(start: bool = True, crds: Sequence[Path] = (VM_CRD, EVENTS_CRD)) -> KubeApiServer:
        workdir = Path(tempfile.mkdtemp(prefix="vr-k8s-"))
        server = KubeApiServer(k8s_bin, workdir, crds)
        made.append((server, workdir))
        return server.start(apiserver=start)

    yield make
    for server, workdir in made:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def kube_api(kube_api_factory: KubeApiFactory) -> KubeApiServer:
    """A running API server with the VirtualMachine and Events CRDs established."""
    return kube_api_factory()
