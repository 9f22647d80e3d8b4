"""vmrunner: start and supervise one QEMU virtual machine, built on a typed component/event bus.

Embedding (imported lazily, so ``import vmrunner`` stays cheap)::

    import vmrunner
    from vmrunner.core import run

    runner = vmrunner.RunnerBuilder("vm.yaml").add(MyComponent()).build()
    exit_code = await run(runner)        # or vmrunner.standard_components("vm.yaml")
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from vmrunner.daemon.builder import RunnerBuilder, standard_components

__all__ = ["RunnerBuilder", "__version__", "standard_components"]


def __getattr__(name: str) -> Any:
    if name in ("RunnerBuilder", "standard_components"):
        from vmrunner.daemon import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'vmrunner' has no attribute {name!r}")
