"""Operating a runner: status, event stream, metrics (``/Runner/Api``) and systemd notify.

* :class:`~vmrunner.api.status.StatusTracker`: the status, learnt from the bus;
* :class:`~vmrunner.api.server.ApiServer`: HTTP on ``runtimeDir/api.sock`` (docs/operations.md);
* :class:`~vmrunner.api.sdnotify.SystemdNotifier`: ``READY=1``/``STATUS=``/``STOPPING=1``;
* :mod:`vmrunner.api.client`: ``vmrunner status`` and ``vmrunner events``.

Importing this package loads neither h11 nor prometheus-client (first request does).
"""
