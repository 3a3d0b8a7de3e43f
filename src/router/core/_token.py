"""Read-your-writes tokens: a commit's WAL position, bound to the cluster that wrote it.

A :class:`Position` is what a session has seen: the primary's WAL position *after* a commit
record, plus the cluster's ``system_identifier`` (``SELECT system_identifier FROM
pg_control_system()``). :func:`encode` turns it into an opaque string that is safe in a URL, an
HTTP header, a cookie or a job payload; :func:`decode` turns it back and refuses anything it did
not make, or a position of another cluster, with :class:`InvalidToken`.

Format (version 1, a position known exactly)::

    "r1." + base64url_nopad( system_identifier u64 BE | lsn u64 BE | crc32 u32 BE )

30 characters from ``[A-Za-z0-9._-]``. Version 2 carries a position that may be *behind* its
holder's commits (``uncertain``: a commit whose position could not be read, because the
primary went away between the commit and that read)::

    "r2." + base64url_nopad( system_identifier u64 BE | lsn u64 BE | flags u8 | crc32 u32 BE )

31 characters; flag bit 0 is ``uncertain``, the others are zero. Whoever resumes from such a
token reads the primary's position first (which covers that commit), then reads as usual.

The CRC catches truncation and typos, not forgery: a token is not a secret and grants nothing
but a *stricter* routing choice for its holder. Each position has exactly one token (decoding
checks the encoding is canonical), so tokens compare equal exactly when positions do.

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

from router.core._chain import caused
from router.core._lsn import Lsn
from router.errors import ForeignToken, InvalidToken

__all__ = ["TOKEN_PREFIX", "ForeignToken", "InvalidToken", "Position", "decode", "encode"]

TOKEN_PREFIX: Final = "r1."
_BODY: Final = struct.Struct(">QQ")
_FLAGS: Final = struct.Struct(">B")
_CRC: Final = struct.Struct(">I")
_TOKEN: Final = re.compile(r"r1\.([A-Za-z0-9_-]{27})|r2\.([A-Za-z0-9_-]{28})")
_LENGTHS: Final = (len(TOKEN_PREFIX) + 27, len(TOKEN_PREFIX) + 28)
_U64: Final = (1 << 64) - 1
_UNCERTAIN: Final = 0x01
_KNOWN: Final = (TOKEN_PREFIX, "r2.")


@dataclass(frozen=True, slots=True)
class Position:
    """A WAL position on one cluster: the floor for later reads of whoever holds it.

    ``system_id`` is the cluster's ``system_identifier`` (unsigned 64-bit); ``lsn`` the primary's
    WAL position after the commit. ``uncertain``: the holder also committed at a position it
    could not read, possibly past ``lsn`` (a reader must learn the primary's position first).
    Raises ``ValueError`` for a ``system_id`` out of range.
    """

    system_id: int
    lsn: Lsn
    uncertain: bool = False

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
        later = other if other.lsn > self.lsn else self
        if self.uncertain or other.uncertain:
            return Position(later.system_id, later.lsn, uncertain=True)
        return later

    def __str__(self) -> str:
        text = f"{self.lsn} on cluster {self.system_id}"
        return f"{text} (or later, uncertain)" if self.uncertain else text


def encode(position: Position) -> str:
    """The token for ``position``: ``"r1."`` and 27 base64url characters, or ``"r2."`` and 28
    for an uncertain one."""
    body = _BODY.pack(position.system_id, position.lsn)
    prefix = TOKEN_PREFIX
    if position.uncertain:
        body += _FLAGS.pack(_UNCERTAIN)
        prefix = "r2."
    raw = body + _CRC.pack(zlib.crc32(body))
    return prefix + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(token: object, *, system_id: int | None = None) -> Position:
    """The position ``token`` carries.

    With ``system_id``, the token must come from that cluster, else :class:`ForeignToken`.
    Raises :class:`InvalidToken` for anything else that is not a token :func:`encode` made:
    another type, another version, bad characters, wrong length, non-canonical base64, a CRC
    mismatch. Never raises any other exception, whatever it is given.
    """
    if not isinstance(token, str):
        raise InvalidToken(f"expected a string, got {type(token).__name__}")
    if len(token) not in _LENGTHS or (match := _TOKEN.fullmatch(token)) is None:
        if token.startswith("r") and token[1:2].isdigit() and not token.startswith(_KNOWN):
            raise InvalidToken("unsupported version", token)
        raise InvalidToken("malformed", token)
    text = match[1] or match[2]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only base64
        raise caused(InvalidToken("malformed", token), None) from None
    # 27 characters carry 162 bits for 160: the last character's two spare bits must be zero,
    # so that one position has one token.
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != text:
        raise InvalidToken("malformed", token)
    body, (crc,) = raw[: -_CRC.size], _CRC.unpack(raw[-_CRC.size :])
    if zlib.crc32(body) != crc:
        raise InvalidToken("checksum mismatch", token)
    found, lsn = _BODY.unpack(body[: _BODY.size])
    uncertain = False
    if match[2] is not None:
        (flags,) = _FLAGS.unpack(body[_BODY.size :])
        if flags != _UNCERTAIN:  # one position, one token: no other bit, and r1 when clear
            raise InvalidToken("malformed", token)
        uncertain = True
    if system_id is not None and found != system_id:
        raise ForeignToken(system_id, found, token)
    return Position(found, Lsn(lsn), uncertain)
