"""The tiny Linux test guest: built from Debian packages, cached by its inputs."""

from __future__ import annotations

from .builder import (
    FLAVORS,
    Flavor,
    GuestBuildError,
    GuestImage,
    build_guest,
    default_cache_dir,
)

__all__ = ["FLAVORS", "Flavor", "GuestBuildError", "GuestImage", "build_guest",
           "default_cache_dir"]
