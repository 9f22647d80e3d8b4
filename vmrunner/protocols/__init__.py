"""Clients of the protocols the runner speaks with QEMU and the guest: QMP (:mod:`.qmp`) and
the QEMU guest agent (:mod:`.qga`). No bus here: the components wrap these clients."""
