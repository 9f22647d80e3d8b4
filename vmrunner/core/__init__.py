"""A JGrapes-style typed component/event bus. Knows nothing about VMs."""
