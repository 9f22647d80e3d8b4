"""A minimal SPICE client for tests: the link handshake of the main channel, nothing more.

It proves which password QEMU's SPICE server accepts right now: it sends a ``SpiceLinkMess``
(no capabilities, so the server expects the classic ticket), encrypts the password with the
RSA key of the server's ``SpiceLinkReply`` (OAEP/SHA-1, NUL-terminated, as spice-gtk does) and
returns the server's link result (:data:`LINK_OK` or e.g. :data:`LINK_PERMISSION_DENIED`).
The real peer is QEMU's SPICE server; only the client side is written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

LINK_OK = 0
LINK_PERMISSION_DENIED = 7

_MAGIC = b"REDQ"
_VERSION = (2, 2)
_MAIN_CHANNEL = 1
_PUBKEY_BYTES = 162


async def spice_link(host: str, port: int, password: str) -> int:
    """Link the main channel with ``password``; return the server's link result."""
    async with spice_session(host, port, password) as result:
        return result


@contextlib.asynccontextmanager
async def spice_session(host: str, port: int, password: str) -> AsyncIterator[int]:
    """Link the main channel with ``password`` and keep the connection open while the
    ``async with`` body runs (a console client, as QEMU sees it); yields the link result."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        yield await _link(reader, writer, password)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                password: str) -> int:
    mess = struct.pack("<IBBIII", 0, _MAIN_CHANNEL, 0, 0, 0, 18)
    writer.write(_MAGIC + struct.pack("<III", *_VERSION, len(mess)) + mess)
    await writer.drain()
    magic, major, _minor, size = struct.unpack("<4sIII", await reader.readexactly(16))
    if magic != _MAGIC or major != _VERSION[0]:
        raise ConnectionError(f"not a SPICE {_VERSION[0]} server: {magic!r} {major}")
    reply = await reader.readexactly(size)
    (error,) = struct.unpack_from("<I", reply)
    if error != LINK_OK:
        return int(error)
    key = serialization.load_der_public_key(reply[4:4 + _PUBKEY_BYTES])
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConnectionError("the SPICE server's ticket key is not RSA")
    ticket = key.encrypt(password.encode() + b"\0", padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    writer.write(ticket)
    await writer.drain()
    (result,) = struct.unpack("<I", await reader.readexactly(4))
    return int(result)
