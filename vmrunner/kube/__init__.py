"""The runner's side of VM-Operator's Kubernetes contract: the ``VirtualMachine`` status, its
Events and the spec patch after a guest power-off (docs/kubernetes.md, "VirtualMachine
status and Events").

Active only when the runner is in a cluster (service account + ``KUBERNETES_SERVICE_*``) or
is given a kubeconfig (:mod:`.settings` decides, at build time). Nothing here imports the
Kubernetes client library at module level: :mod:`.api` does, and it is imported only by the
writer's task of a runner in cluster mode.

* :mod:`.settings`: where the API server and the VM object are (no client import);
* :mod:`.quantity`: byte counts as Kubernetes quantities;
* :mod:`.status`: the desired status (fields and conditions) and the merge patch to it;
* :mod:`.records`: the ``events.k8s.io/v1`` Event bodies;
* :mod:`.api`: the client (lightkube) behind four calls;
* :mod:`.writer`: the single task that writes, coalescing and retrying;
* :mod:`.component`: :class:`~vmrunner.kube.component.KubeStatusWriter`, the bus component
  that maps the runner's events onto the status.
"""
