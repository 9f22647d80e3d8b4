"""Path-addressed YAML configuration for component trees (see docs/design/architecture.md).

- :mod:`.paths`: node syntax (keys starting with ``/`` or ``_`` are child nodes), flattening.
- :mod:`.events`: :class:`ConfigurationUpdate`, :class:`InitialConfiguration`,
  :class:`ConfigurationRejected`.
- :mod:`.configurable`: :class:`Configurable` (validate a section with a pydantic model).
- :mod:`.watcher`: :class:`ConfigWatcher` (the store: initial delivery, live updates).
- :data:`CONFIG_ERROR_EXIT`: the exit code of a rejected initial configuration (2).
- :mod:`.watch`, :mod:`.loader`, :mod:`.validation`: inotify, file reading, error messages.
- :mod:`.inotify`: :func:`~.inotify.close_soon` (close an inotify instance off the loop).
"""

from __future__ import annotations

from .configurable import Configurable as Configurable
from .errors import CONFIG_ERROR_EXIT as CONFIG_ERROR_EXIT
from .errors import ConfigError as ConfigError
from .errors import ConfigFileError as ConfigFileError
from .errors import ConfigFormatError as ConfigFormatError
from .events import ConfigurationRejected as ConfigurationRejected
from .events import ConfigurationUpdate as ConfigurationUpdate
from .events import InitialConfiguration as InitialConfiguration
from .events import ReloadConfiguration as ReloadConfiguration
from .loader import ConfigFileMissingError as ConfigFileMissingError
from .paths import ROOT as ROOT
from .paths import flatten as flatten
from .paths import full_update as full_update
from .validation import Validated as Validated
from .validation import validate as validate
from .watcher import ConfigWatcher as ConfigWatcher

__all__ = [
    "CONFIG_ERROR_EXIT",
    "ROOT",
    "ConfigError",
    "ConfigFileError",
    "ConfigFileMissingError",
    "ConfigFormatError",
    "ConfigWatcher",
    "Configurable",
    "ConfigurationRejected",
    "ConfigurationUpdate",
    "InitialConfiguration",
    "ReloadConfiguration",
    "Validated",
    "flatten",
    "full_update",
    "validate",
]
