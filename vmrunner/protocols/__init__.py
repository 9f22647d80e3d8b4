"""Clients of the protocols the runner speaks with QEMU and the guest: QMP (:mod:`.qmp`) and
the QEMU guest agent (:mod:`.qga`); the notice line of the runner's own console socket
(:mod:`.console`). No bus here: the components wrap these clients."""
