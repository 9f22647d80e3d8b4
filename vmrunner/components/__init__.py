"""The VM runner's components, each a node on the vmrunner.core bus.

All standard components listen and fire on :data:`BUS` (a named channel shared by the tree);
components of your own join the conversation by deriving from
:class:`~vmrunner.components.base.BusComponent`. :mod:`vmrunner.daemon.builder` builds and
extends the standard set.
"""

from __future__ import annotations

from vmrunner.components.base import BUS, BusComponent

__all__ = ["BUS", "BusComponent"]
