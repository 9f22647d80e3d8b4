"""The VM runner's components, each a node on the vmrunner.core bus.

All standard components listen and fire on :data:`BUS` (a named channel shared by the tree);
components of your own join the conversation by passing ``channel=BUS``. See
:mod:`vmrunner.components.standard` for building and extending the standard set.
"""

from __future__ import annotations

from vmrunner.core import NamedChannel

BUS = NamedChannel("vmrunner")
"""The channel the runner's components share."""
