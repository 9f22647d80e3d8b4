"""What the status writer says about failed calls: one line per problem, not per retry.

Invariants:

* one WARNING per distinct problem (by HTTP status) while the calls fail, with a hint of what
  to do, and one INFO line when a call works again (only if a problem was logged);
* a conflict (409) is re-read and retried at once without a line, up to
  :data:`MAX_QUIET_CONFLICTS` times in a row; only a conflict that persists is a problem.
  Other failures before it do not count: a write that timed out may have been applied late
  by the server, so the first write after an outage can meet a 409.
"""

from __future__ import annotations

import logging

from vmrunner.kube.errors import KubeProblem

_log = logging.getLogger("vmrunner.kube")

MAX_QUIET_CONFLICTS = 3
"""409s in a row that are re-read and retried at once without a log line."""
HINTS = {
    -1: "the client cannot be set up",
    0: "the API server does not answer; retrying with backoff",
    401: "the token was refused (read again from its file); retrying with backoff",
    403: "forbidden: the runner's service account needs the Role of docs/guide/kubernetes.md "
         "(vms get/list/patch, vms/status patch, events.k8s.io events create)",
    404: "the VirtualMachine does not exist (deleted?); retrying with backoff",
    409: "conflicting concurrent changes; re-reading and retrying",
    422: "the server refused the data as invalid (does the CRD match?); retrying with backoff",
}
"""What to do about a problem, by HTTP status (0: no answer, -1: no client)."""


class ProblemLog:
    """The failures of one VM's writes since the last call that worked."""

    def __init__(self, namespace: str, vm_name: str) -> None:
        self.namespace = namespace
        self.vm_name = vm_name
        self.failures = 0
        """Failed calls since the last one that worked."""
        self._logged: KubeProblem | None = None
        self._conflicts = 0

    def failed(self, problem: KubeProblem) -> bool:
        """Count ``problem`` (logging it if it is a new one); whether to retry at once (a
        conflict that has not persisted) rather than after a backoff."""
        self.failures += 1
        self._conflicts = self._conflicts + 1 if problem.status == 409 else 0
        quiet_conflict = 0 < self._conflicts <= MAX_QUIET_CONFLICTS
        if not quiet_conflict and (self._logged is None
                                   or problem.status != self._logged.status):
            self._logged = problem
            _log.warning("Kubernetes: %s/%s: %s (%s)", self.namespace, self.vm_name, problem,
                         HINTS.get(problem.status, "retrying with backoff"))
        return quiet_conflict

    def worked(self) -> None:
        """A call worked: log the recovery once if a problem was logged."""
        if self._logged is not None:
            _log.info("Kubernetes: %s/%s written again after %d failed attempt(s); the "
                      "status is current", self.namespace, self.vm_name, self.failures)
        self._logged = None
        self.failures = 0
        self._conflicts = 0

    def describe(self) -> str:
        """The problem logged last, or that there was no answer yet."""
        return "no answer yet" if self._logged is None else str(self._logged)
