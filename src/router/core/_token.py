"""Read-your-writes tokens: a commit's WAL position, bound to the cluster that wrote it.

A :class:`Position` is what a session has seen: the primary's WAL position *after* a commit
record, plus the cluster's ``system_identifier`` (``SELECT system_identifier FROM
pg_control_system()``). :func:`encode` turns it into an opaque string that is safe in a URL, an
HTTP header, a cookie or a job payload; :func:`decode` turns it back and refuses anything it did
not make, or a position of another cluster, with :class:`InvalidToken`.

Format (version 1)::

    "r1." + base64url_nopad( system_identifier u64 BE | lsn u64 BE | crc32 u32 BE )

30 characters from ``[A-Za-z0-9._-]``. The CRC catches truncation and typos, not forgery: a
token is not a secret and grants nothing but a *stricter* routing choice for its holder. Each
position has exactly one token (decoding checks the encoding is canonical), so tokens compare
equal exactly when positions do.

The timeline is left out on purpose: a promoted standby keeps the ``system_identifier`` and WAL
positions keep growing across timelines, so a token taken before a failover stays meaningful
after it, which is what callers want.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Final

from router.core._lsn import Lsn
from router.errors import ForeignToken, InvalidToken

__all__ = ["TOKEN_PREFIX", "ForeignToken", "InvalidToken", "Position", "decode", "encode"]

TOKEN_PREFIX: Final = "r1."
_BODY: Final = struct.Struct(">QQ")
_CRC: Final = struct.Struct(">I")
_TOKEN: Final = re.compile(r"r1\.([A-Za-z0-9_-]{27})")
_LENGTH: Final = len(TOKEN_PREFIX) + 27
_U64: Final = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Position:
    """A WAL position on one cluster: the floor for later reads of whoever holds it.

    ``system_id`` is the cluster's ``system_identifier`` (unsigned 64-bit); ``lsn`` the primary's
    WAL position after the commit. Raises ``ValueError`` for a ``system_id`` out of range.
    """

    system_id: int
    lsn: Lsn

    def __post_init__(self) -> None:
        if not 0 <= self.system_id <= _U64:
            raise ValueError(f"system_id out of range: {self.system_id}")

    def max(self, other: Position | None) -> Position:
        """The later of two positions of the same cluster (``self`` when ``other`` is None).

        Raises :class:`ForeignToken` when the clusters differ. There is no sensible "later" across
        two clusters, and picking one would silently drop the other's guarantee. A router
        checks imported tokens against the cluster it serves (:func:`decode` with
        ``system_id=``), so inside a session this never fires; when it does, two clusters'
        positions were mixed, and the caller should hear about it.
        """
        if other is None:
            return self
        if other.system_id != self.system_id:
            raise ForeignToken(self.system_id, other.system_id)
        return other if other.lsn > self.lsn else self

    def __str__(self) -> str:
        return f"{self.lsn} on cluster {self.system_id}"


def encode(position: Position) -> str:
    """The token for ``position``: ``"r1."`` and 27 base64url characters."""
    body = _BODY.pack(position.system_id, position.lsn)
    raw = body + _CRC.pack(zlib.crc32(body))
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(token: object, *, system_id: int | None = None) -> Position:
    """The position ``token`` carries.

    With ``system_id``, the token must come from that cluster, else :class:`ForeignToken`.
    Raises :class:`InvalidToken` for anything else that is not a token :func:`encode` made:
    another type, another version, bad characters, wrong length, non-canonical base64, a CRC
    mismatch. Never raises any other exception, whatever it is given.
    """
    if not isinstance(token, str):
        raise InvalidToken(f"expected a string, got {type(token).__name__}")
    if len(token) != _LENGTH or (match := _TOKEN.fullmatch(token)) is None:
        if token.startswith("r") and token[1:2].isdigit() and not token.startswith(TOKEN_PREFIX):
            raise InvalidToken("unsupported version", token)
        raise InvalidToken("malformed", token)
    text = match[1]
    try:
        raw = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only base64
        raise InvalidToken("malformed", token) from None
    # 27 characters carry 162 bits for 160: the last character's two spare bits must be zero,
    # so that one position has one token.
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != text:
        raise InvalidToken("malformed", token)
    body, (crc,) = raw[: _BODY.size], _CRC.unpack(raw[_BODY.size :])
    if zlib.crc32(body) != crc:
        raise InvalidToken("checksum mismatch", token)
    found, lsn = _BODY.unpack(body)
    if system_id is not None and found != system_id:
        raise ForeignToken(system_id, found, token)
    return Position(found, Lsn(lsn))
