"""The runner's side of VM-Operator's Kubernetes contract: the ``VirtualMachine`` status, its
Events and the spec patch after a guest power-off (docs/guide/kubernetes.md, "VirtualMachine
status and Events").

Active only when the runner is in a cluster (service account + ``KUBERNETES_SERVICE_*``) or
is given a kubeconfig (:mod:`.settings` decides, at build time). The builder imports only
:mod:`.settings` for a stand-alone runner; the client modules (:mod:`.api`, :mod:`.http`,
:mod:`.credentials`) are imported by the writer's task when it starts.

* :mod:`.settings`: where the API server and the VM object are (no client import);
* :mod:`.quantity`: byte counts as Kubernetes quantities;
* :mod:`.status`: the desired status (fields and conditions) and the merge patch to it;
* :mod:`.records`: the ``events.k8s.io/v1`` Event bodies;
* :mod:`.credentials`: the service account or a kubeconfig → address, TLS, token;
* :mod:`.http`: JSON over HTTPS (h11, one kept-alive connection, bounded calls);
* :mod:`.api`: the four calls the Role allows;
* :mod:`.writer`: the single task that writes, coalescing and retrying;
* :mod:`.component`: :class:`~vmrunner.kube.component.KubeStatusWriter`, the bus component
  that maps the runner's events onto the status.
"""
