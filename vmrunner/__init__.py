"""vmrunner: start and supervise one QEMU virtual machine, built on a typed component/event bus."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
