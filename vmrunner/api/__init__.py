"""Operating a runner: status, event stream, metrics (``/Runner/Api``) and systemd notify.

* :mod:`vmrunner.api.status`: the status, asked from the components (``StatusQuery``);
* :class:`~vmrunner.api.eventlog.EventLog`: the event stream, recent errors and counters;
* :class:`~vmrunner.api.server.ApiServer`: HTTP on ``runtimeDir/api.sock``
  (docs/guide/operations.md);
* :class:`~vmrunner.api.sdnotify.SystemdNotifier`: ``READY=1``/``STATUS=``/``STOPPING=1``,
  ``EXTEND_TIMEOUT_USEC=`` and ``WATCHDOG=1``;
* :mod:`vmrunner.api.client`: ``vmrunner status`` and ``vmrunner events``.

Importing this package loads neither h11 nor prometheus-client (first request does).
"""
