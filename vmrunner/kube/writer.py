"""The single writer: one task that brings the ``VirtualMachine`` up to date.

Invariants:

* **One desired state, one writer.** The component changes :class:`DesiredStatus` and calls
  :meth:`StatusWriter.changed`; the task (owned by the component) computes the patch from the
  desired state *when it writes*, so bursts coalesce into one write and a write never carries
  a state older than the current one. Nothing else talks to the API server.
* **Order per write round:** the status (the current truth) first, then the Events in the
  order they happened (each with the time it happened), then the spec patch.
* **Failures** are retried with exponential backoff (0.5 s doubling to 30 s); what is logged
  about them is :class:`~vmrunner.kube.problems.ProblemLog`'s (one line per problem, not per
  retry; a 409 re-reads the object and retries at once). Data the server refuses as invalid
  (400/422) for an Event or the spec patch is dropped with its own line (retrying cannot
  help); a refused status patch is retried (the desired state changes with the VM, and a
  fixed CRD takes it).
* **At stop** :meth:`StatusWriter.flush` waits a bounded time for everything pending (the
  component calls it only after the VM has stopped: the shutdown ladder never waits).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import importlib
import logging
from typing import TYPE_CHECKING, Any

from vmrunner.kube.errors import KubeProblem
from vmrunner.kube.problems import ProblemLog
from vmrunner.kube.records import EventRecord, event_body
from vmrunner.kube.status import DesiredStatus, status_patch

if TYPE_CHECKING:
    from vmrunner.kube.api import KubeApi
    from vmrunner.kube.settings import KubeSettings

_log = logging.getLogger("vmrunner.kube")

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
MAX_EVENTS = 200
"""Events kept while the server cannot take them; the oldest are dropped beyond that."""
STOP_SPEC_PATCH = [{"op": "replace", "path": "/spec/vm/state", "value": "Stopped"}]


class _Dropped(Exception):
    """An Event or the spec patch the server refused as invalid: dropped, not retried."""


class StatusWriter:
    """Writes :attr:`desired` (plus Events and the spec patch) to the VM object."""

    def __init__(self, settings: KubeSettings, desired: DesiredStatus) -> None:
        self.settings = settings
        self.desired = desired
        self.events: collections.deque[EventRecord] = collections.deque()
        self.stop_spec = False
        """Patch ``spec.vm.state`` to ``Stopped`` (once)."""
        self.generation: int | None = None
        """``observedGeneration`` of the applied configuration (``None``: not known yet)."""
        self.passwords_applied = 0
        """Display passwords QEMU accepted in this run."""
        self.password_expected = False
        """A display-password file exists (``displayPasswordSerial`` is -1 without one)."""
        self.vm: dict[str, Any] | None = None
        """The object as the server last showed it."""
        self.writes = 0
        """Successful write rounds (for tests and the log)."""
        self._api: KubeApi | None = None
        self._serial_base: int | None = None
        self._need_get = True
        self._dirty = True
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._idle = asyncio.Event()
        self.problems = ProblemLog(settings.namespace, settings.vm_name)

    # -- from the component ------------------------------------------------------------------

    def changed(self) -> None:
        """The desired state changed: write it (soon, coalesced with other changes)."""
        self._dirty = True
        self._idle.clear()
        self._wake.set()

    def config_applied(self, generation: int | None) -> None:
        """A configuration was applied; ``generation`` if it names its VM generation, else
        the object's generation is read from the server."""
        self.generation = generation
        if generation is None:
            self._need_get = True
        self.changed()

    def event(self, record: EventRecord) -> None:
        """Create an Event for ``record`` (in order, after the status)."""
        if len(self.events) >= MAX_EVENTS:
            dropped = self.events.popleft()
            _log.warning("Kubernetes: too many Events waiting; dropped %s %s",
                         dropped.action, dropped.reason)
        self.events.append(record)
        self.changed()

    def spec_stopped(self) -> None:
        """Patch ``spec.vm.state`` to ``Stopped``."""
        self.stop_spec = True
        self.changed()

    @property
    def pending(self) -> bool:
        """Whether anything waits to be written."""
        return self._dirty or bool(self.events) or self.stop_spec or self._need_get

    async def flush(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for everything pending to be written (a backoff wait is
        cut short); whether it was."""
        self._urgent.set()
        self._wake.set()
        try:
            async with asyncio.timeout(seconds):
                while self.pending:
                    self._idle.clear()
                    await self._idle.wait()
        except TimeoutError:
            _log.warning("Kubernetes: the last status/Events not written within %g s (%s); "
                         "exiting anyway", seconds, self.problems.describe())
            return False
        return True

    # -- the task ----------------------------------------------------------------------------

    async def run(self) -> None:
        """The writer task (owned and cancelled by the component's tree)."""
        backoff = BACKOFF_START
        try:
            while True:
                if not self.pending:
                    self._idle.set()
                    self._wake.clear()
                    await self._wake.wait()
                self._idle.clear()
                try:
                    await self._round()
                except KubeProblem as problem:
                    if self.problems.failed(problem):
                        continue
                    await self._pause(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                except Exception:
                    _log.exception("Kubernetes: unexpected failure of the status writer")
                    await self._pause(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                else:
                    backoff = BACKOFF_START
                    self.problems.worked()
        finally:
            if self._api is not None:
                api, self._api = self._api, None
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(api.close())

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, at most :data:`BACKOFF_START` once a flush is waiting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        if not self._urgent.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._urgent.wait()
        remaining = deadline - loop.time()
        if remaining > 0:
            await asyncio.sleep(min(remaining, BACKOFF_START))

    async def _connect(self) -> KubeApi:
        if self._api is None:
            # the client is imported here, on first use (no cost for a stand-alone runner)
            module = importlib.import_module("vmrunner.kube.api")
            self._api = module.KubeApi(self.settings)
            _log.info("Kubernetes: writing the status of %s", self.settings.describe())
        return self._api

    async def _round(self) -> None:
        api = await self._connect()
        if self._need_get or self.vm is None:
            self.vm = await api.get_vm()
            self._need_get = False
            self._learn(self.vm)
            self.problems.worked()
        if self._dirty:
            self._dirty = False
            try:
                await self._write_status(api)
            except BaseException:
                self._dirty = True
                raise
        while self.events:
            record = self.events[0]
            with contextlib.suppress(_Dropped):
                await self._dropping("Event " + record.reason, api.create_event(event_body(
                    record, vm_name=self.settings.vm_name, namespace=self.settings.namespace,
                    vm_uid=self._uid())))
            self.events.popleft()
        if self.stop_spec:
            try:
                await self._dropping("spec patch", api.patch_spec(STOP_SPEC_PATCH))
                _log.info("Kubernetes: the guest powered off with guestShutdownStops: "
                          "spec.vm.state of %s/%s set to Stopped", self.settings.namespace,
                          self.settings.vm_name)
            except _Dropped:
                pass
            self.stop_spec = False
        self.writes += 1

    async def _dropping(self, what: str, call: Any) -> None:
        try:
            await call
        except KubeProblem as problem:
            if problem.status in (400, 404, 422):
                _log.warning("Kubernetes: %s dropped: %s", what, problem)
                raise _Dropped from None
            raise

    def _learn(self, vm: dict[str, Any]) -> None:
        metadata = vm.get("metadata") or {}
        if self.generation is None and isinstance(metadata.get("generation"), int):
            self.generation = metadata["generation"]
        if self._serial_base is None:
            serial = (vm.get("status") or {}).get("displayPasswordSerial")
            self._serial_base = serial if isinstance(serial, int) and serial > 0 else 0

    def _uid(self) -> str | None:
        uid = ((self.vm or {}).get("metadata") or {}).get("uid")
        return uid if isinstance(uid, str) else None

    def _serial(self) -> int | None:
        if self.passwords_applied > 0:
            return (self._serial_base or 0) + self.passwords_applied
        return None if self.password_expected else -1

    async def _write_status(self, api: KubeApi) -> None:
        assert self.vm is not None
        serial = self._serial()
        if serial is not None:
            self.desired.set("displayPasswordSerial", serial)
        patch = status_patch(self.desired, self.vm.get("status"), self.generation,
                             datetime.datetime.now(datetime.UTC))
        if not patch:
            return
        body: dict[str, Any] = {"status": patch}
        if "conditions" in patch:
            version = (self.vm.get("metadata") or {}).get("resourceVersion")
            if version:
                body["metadata"] = {"resourceVersion": version}
        try:
            self.vm = await api.patch_status(body)
        except KubeProblem as problem:
            if problem.status in (404, 409):
                self._need_get = True
            raise
        self.problems.worked()
