"""``/Runner/Api``: where the per-runner API listens."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_camel


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


class ApiConfig(BaseModel):
    """The node ``/Runner/Api`` (every key optional)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="ignore")

    enabled: bool = True
    """Serve the API on ``runtimeDir/api.sock`` (mode 0600)."""
    listen: str | None = None
    """Also listen on this TCP ``host:port``; needs ``tokenFile``."""
    token_file: Path | None = None
    """A file holding the bearer token TCP clients must send (``Authorization: Bearer``)."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value

    @model_validator(mode="after")
    def _token_for_tcp(self) -> ApiConfig:
        if self.listen is not None and self.token_file is None:
            raise ValueError("listen needs tokenFile (TCP clients must send a bearer token)")
        return self
