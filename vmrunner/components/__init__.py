"""The VM runner's components, each a node on the vmrunner.core bus."""
