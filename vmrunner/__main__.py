"""``python -m vmrunner``: the same as the ``vmrunner`` command."""

from __future__ import annotations

import sys

from vmrunner.daemon.cli import main

sys.exit(main())
