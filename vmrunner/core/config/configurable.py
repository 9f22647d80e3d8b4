"""``Configurable[ModelT]``: a component that takes its section of the configuration.

::

    class QemuMonitor(Configurable[MonitorConfig], Component):
        config_model = MonitorConfig

        def on_config(self, config: MonitorConfig, initial: bool) -> None:
            ...  # self.config still holds the previous config (None before the first)

Rules:

1. The section is ``event.structured(self.component_path)``, an exact path match. A path that
   is absent from the :class:`InitialConfiguration` or removed (``None``) later counts as an
   empty section, so the model's defaults apply (or its required fields are reported). A
   path absent from a later update is left alone.
2. A section equal to the last one seen is skipped; a section that validates to a config
   equal to the current one does not call ``on_config``.
3. Unknown keys are logged as warnings (see :mod:`~vmrunner.core.config.validation`).
4. Invalid initial section: each error is logged, the tree's exit code becomes
   ``CONFIG_ERROR_EXIT`` (2), :class:`ConfigurationRejected` (``initial=True``) is fired and
   returned as result, and a ``Stop`` is fired (only by the first component to fail, so the
   tree gets one ``Stop``; a :class:`ConfigWatcher` also skips the ordinary ``Start``
   handlers then).
   ``self.config`` stays ``None``.
5. Invalid later section: the errors are logged, :class:`ConfigurationRejected` is fired and
   returned as result, and the last good config stays in force.
6. Validation (:meth:`Configurable.validate_config`, overridable) gets
   :meth:`Configurable.config_context` as pydantic context (the source file and its
   directory, for relative paths).
7. ``self.config`` is updated after ``on_config`` returns; if ``on_config`` raises, the bus
   reports a ``HandlingError`` and the config is not taken over. ``on_config`` may be async.
8. :meth:`Configurable.preset_config` (before the start) takes a configuration the caller has
   already validated from a section: an equal section (the :class:`InitialConfiguration`
   read from the same file) is then skipped by rule 2, not validated a second time.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar, Generic, cast

from pydantic import BaseModel

from vmrunner.core.component import Component
from vmrunner.core.config.errors import CONFIG_ERROR_EXIT
from vmrunner.core.config.events import (
    ConfigurationRejected,
    ConfigurationUpdate,
    InitialConfiguration,
)
from vmrunner.core.config.validation import ModelT, Validated, validate
from vmrunner.core.events import Stop
from vmrunner.core.handler import handler

_log = logging.getLogger("vmrunner.core.config")

_UNSEEN: Any = object()


class Configurable(Component, Generic[ModelT]):
    """Mixin base for components configured by their path's section (see module docs)."""

    config_model: ClassVar[type[BaseModel]]
    """The pydantic model of this component's section."""

    config: ModelT | None = None
    """The last good configuration (``None`` until a valid one has arrived)."""

    _config_section: Any = _UNSEEN

    def on_config(self, config: ModelT, initial: bool) -> Awaitable[None] | None:
        """Called with each new valid configuration (``initial``: at start). Override."""
        return None

    def preset_config(self, config: ModelT, section: Mapping[str, Any]) -> None:
        """Take ``config``, validated by the caller from ``section`` (this path's values), as
        the current configuration without calling ``on_config`` (rule 8)."""
        self.config = config
        self._config_section = dict(section)

    def config_context(self, event: ConfigurationUpdate) -> dict[str, Any] | None:
        """pydantic's validation context for this component's model (``info.context``).

        Default: ``{"source": file, "base_dir": file's directory}`` when the update came from
        a file (the directory as given: a ConfigMap mount, not its timestamped target), so
        validators can resolve relative paths; else ``None``. Override to add more.
        """
        if event.source is None:
            return None
        return {"source": event.source, "base_dir": event.source.parent}

    @handler
    async def on_configuration_update(
        self, event: ConfigurationUpdate
    ) -> ConfigurationRejected | None:
        """Select, validate and apply this component's section (see module docs)."""
        initial = isinstance(event, InitialConfiguration)
        path = self.component_path
        if path in event:
            section = event.structured(path) or {}
        elif initial:
            section = {}
        else:
            return None
        if section == self._config_section and not (initial and self.config is None):
            return None
        self._config_section = section
        outcome = self.validate_config(path, section, self.config_context(event))
        for warning in outcome.warnings:
            _log.warning("%s", warning)
        if outcome.config is None:
            return self._reject(path, outcome.errors, initial)
        config = cast(ModelT, outcome.config)
        if config == self.config:
            return None
        result = self.on_config(config, initial)
        if inspect.isawaitable(result):
            await result
        self.config = config
        return None

    def validate_config(
        self, path: str, section: dict[str, Any], context: dict[str, Any] | None
    ) -> Validated[Any]:
        """Validate this component's section (default: :func:`validate` with
        :attr:`config_model`). Override to use a validator of your own; its error and warning
        lines must name the key path (``/Runner/vm/currentCpus: ...``)."""
        return validate(self._config_model(), path, section, context)

    def _config_model(self) -> type[BaseModel]:
        model = getattr(type(self), "config_model", None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{type(self).__qualname__}.config_model must be a pydantic model")
        return model

    def _reject(
        self, path: str, errors: tuple[str, ...], initial: bool
    ) -> ConfigurationRejected:
        for error in errors:
            _log.error("%s", error)
        rejected = ConfigurationRejected(path=path, errors=errors, initial=initial)
        self.fire(rejected)
        if initial:
            _log.error("%s: invalid initial configuration; stopping", path)
            if self.exit_code != CONFIG_ERROR_EXIT:
                self.set_exit_code(CONFIG_ERROR_EXIT)
                self.fire(Stop())
        else:
            _log.error("%s: configuration update rejected; keeping the last good one", path)
        return rejected
