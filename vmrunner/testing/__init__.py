"""Test bed for vmrunner: the tiny real guest, QEMU launch helpers, console and QMP clients."""
