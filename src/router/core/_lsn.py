"""``Lsn``: a PostgreSQL WAL position (``pg_lsn``) as a plain ``int``.

An ``int`` subclass, so ordering, hashing and arithmetic are the integer's: ``a < b`` compares
positions, ``a - b`` is the distance in bytes (a plain ``int``), ``max(a, b)`` keeps the type.
Drivers hand ``pg_lsn`` over as text (asyncpg and psycopg have no binary codec for it), hence
:meth:`Lsn.parse`.
"""

from __future__ import annotations

import operator
import re
from typing import ClassVar, Final, SupportsIndex

__all__ = ["Lsn"]

_MAX: Final = (1 << 64) - 1

# PostgreSQL's pg_lsn_in: 1-8 hex digits, '/', 1-8 hex digits, nothing else (no sign, no
# spaces). The character classes are spelled out so that int(..., 16) never sees the non-ASCII
# digits or underscores it would accept.
_TEXT: Final = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


class Lsn(int):
    """A WAL position: an unsigned 64-bit integer, printed as PostgreSQL does (``16/B374D848``).

    ``Lsn(n)`` raises ``ValueError`` unless ``0 <= n < 2**64`` (``TypeError`` for a non-integer;
    use :meth:`parse` for text). ``Lsn(0)`` is PostgreSQL's
    ``InvalidXLogRecPtr`` (``0/0``), below every real position.
    """

    __slots__ = ()

    ZERO: ClassVar[Lsn]
    MAX: ClassVar[Lsn]

    def __new__(cls, value: SupportsIndex = 0) -> Lsn:
        self = super().__new__(cls, operator.index(value))
        if not 0 <= self <= _MAX:
            raise ValueError(f"LSN out of range: {int(self)}")
        return self

    @classmethod
    def parse(cls, text: str) -> Lsn:
        """Read PostgreSQL's text form ``X/Y`` (hex, either case, 1-8 digits per half).

        Raises ``ValueError`` for any text PostgreSQL's ``pg_lsn`` input would reject,
        ``TypeError`` for a value that is not a ``str``.
        """
        if not isinstance(text, str):
            raise TypeError(f"LSN must be text, not {type(text).__name__}")
        match = _TEXT.fullmatch(text)
        if match is None:
            raise ValueError(f"invalid LSN: {text[:40]!r}")
        return cls((int(match[1], 16) << 32) | int(match[2], 16))

    def __str__(self) -> str:
        # pg_lsn_out's "%X/%X": upper-case hex, no padding.
        return f"{self >> 32:X}/{self & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"

    def __format__(self, spec: str) -> str:
        # f"{lsn}" and f"{lsn:>20}" show the LSN; an integer presentation type (f"{lsn:d}",
        # f"{lsn:x}") shows the integer.
        if spec and spec[-1] in "bdnoxX":
            return int(self).__format__(spec)
        return str(self).__format__(spec)

    def bytes_after(self, other: int) -> int:
        """How many bytes of WAL ``self`` is past ``other``; 0 when it is not past it.

        ``primary.bytes_after(replay)`` is a replica's byte lag: never negative, even when the
        replica was read a moment after the primary and is ahead of the sampled position.
        """
        return self - other if self > other else 0


Lsn.ZERO = Lsn(0)
Lsn.MAX = Lsn(_MAX)
