"""The carrier: how a client's position travels between requests (a cookie, or a header).

Pure logic shared by the ASGI and WSGI middleware: read what a request carries
(:meth:`Carrier.read`), and say what its response must carry back
(:meth:`Carrier.response_headers`). No I/O; the clock is passed in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from router._context import DEFAULT_HORIZON, SharedFloor, Start
from router.core import Position
from router.core import decode_token as decode
from router.core import encode_token as encode
from router.errors import ConfigurationError, InvalidToken
from router.web._signing import Signed, Signer

__all__ = ["DEFAULT_COOKIE", "DEFAULT_HEADER", "Carrier", "Incoming", "warn_if_late"]

logger = logging.getLogger("router.web")

DEFAULT_COOKIE: Final = "router_position"
DEFAULT_HEADER: Final = "Router-Position"
#: Default lifetime of a position, in seconds: long enough for a replica far behind to catch
#: up; a position every replica has replayed is dropped before that.
DEFAULT_MAX_AGE: Final = 60
#: How far in the future an issue time may lie (clocks of several hosts differ).
_CLOCK_SKEW: Final = 60

_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_DROP: Final = frozenset({Start.FOREIGN, Start.IMPOSSIBLE, Start.SETTLED})


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a request carried. ``source``: ``"cookie"``, ``"header"`` or ``None`` (nothing);
    ``position``/``issued_at``: the verified position, or ``None`` with ``problem`` saying why
    it was ignored (``"forged"``, ``"expired"``, ``"from the future"``, ``"malformed"``)."""

    source: Literal["cookie", "header"] | None = None
    position: Position | None = None
    issued_at: float | None = None
    problem: str = ""

    def shared_floor(self, horizon: float) -> SharedFloor:
        return SharedFloor(self.position, issued_at=self.issued_at, horizon=horizon)


_NOTHING: Final = Incoming()


def _cookie_values(header: str, name: str) -> list[str]:
    found = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            found.append(value.strip().strip('"'))
    return found


@dataclass(frozen=True, kw_only=True, slots=True)
class Carrier:
    """How positions travel: signed with *secret* (an application secret of at least 16
    bytes, or a list of them: the first signs, any verifies), in a cookie (*cookie*, ``None``
    for none) and/or a request header (*header*, ``None`` for none). A request that sent the
    header gets the new position in the same header (API clients); otherwise in the cookie.

    The cookie is ``HttpOnly``, ``SameSite`` *samesite* (``Lax``), ``Secure`` when the request
    came over HTTPS (*secure* ``None``) or always/never (``True``/``False``), ``Path`` *path*,
    and lives *max_age* seconds. It is dropped (``Max-Age=0``) when the position it holds is
    no longer needed (every replica has replayed it), expired, or ignored. *horizon*: seconds a
    position may stay ahead of the primary (as last sampled) before it is judged impossible.
    """

    secret: str | bytes | Sequence[str | bytes] = field(repr=False)
    cookie: str | None = DEFAULT_COOKIE
    header: str | None = DEFAULT_HEADER
    max_age: int = DEFAULT_MAX_AGE
    horizon: float = DEFAULT_HORIZON
    secure: bool | None = None
    samesite: Literal["lax", "strict", "none"] = "lax"
    path: str = "/"
    domain: str | None = None
    signer: Signer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signer", Signer(self.secret))
        if self.cookie is None and self.header is None:
            raise ConfigurationError("cookie", "a cookie or a header (or both) must carry it")
        for name in ("cookie", "header"):
            value = getattr(self, name)
            if value is not None and _NAME.fullmatch(value) is None:
                raise ConfigurationError(name, f"must be letters, digits, '-' and '_': {value!r}")
        if not isinstance(self.max_age, int) or self.max_age <= 0:
            raise ConfigurationError("max_age", f"must be a positive int: {self.max_age!r}")
        if self.horizon < 0:
            raise ConfigurationError("horizon", f"must be >= 0: {self.horizon!r}")
        if self.samesite not in ("lax", "strict", "none"):
            raise ConfigurationError("samesite", f"must be lax, strict or none: {self.samesite!r}")
        if self.samesite == "none" and self.secure is False:
            raise ConfigurationError("samesite", "SameSite=None needs a Secure cookie")

    @property
    def header_key(self) -> str | None:
        """The header's name as WSGI spells it in ``environ`` (``HTTP_ROUTER_POSITION``)."""
        return None if self.header is None else "HTTP_" + self.header.upper().replace("-", "_")

    # -- the request ---------------------------------------------------------------------

    def read(self, cookie_header: str | None, header_value: str | None, now: float) -> Incoming:
        """The position a request carries: its header if it sent one, else its cookie.
        Anything that does not verify is ignored (never an error): see :class:`Incoming`."""
        if self.header is not None and header_value is not None:
            if not header_value.strip():
                return Incoming("header")
            return self._check("header", [header_value.strip()], now)
        if self.cookie is not None and cookie_header:
            values = _cookie_values(cookie_header, self.cookie)
            if values:
                return self._check("cookie", values, now)
        return _NOTHING

    def _check(
        self, source: Literal["cookie", "header"], values: list[str], now: float
    ) -> Incoming:
        signed: Signed | None = None
        for value in values:
            signed = self.signer.verify(value)
            if signed is not None:
                break
        if signed is None:
            logger.debug("ignored a %s position that does not verify", source)
            return Incoming(source, problem="forged")
        if signed.issued_at > now + _CLOCK_SKEW:
            return Incoming(source, problem="from the future")
        if now - signed.issued_at > self.max_age:
            return Incoming(source, problem="expired")
        try:
            position = decode(signed.token)
        except InvalidToken:
            return Incoming(source, problem="malformed")
        return Incoming(source, position, float(signed.issued_at))

    # -- the response --------------------------------------------------------------------

    def response_headers(
        self, incoming: Incoming, shared: SharedFloor, https: bool, now: float
    ) -> list[tuple[str, str]]:
        """Headers to add to the response: the position after the request's commits, or
        a cleared carrier when the one the request sent is of no more use; else none."""
        position = shared.position()
        if position is not None:
            shared.sent = position.lsn
            value = self.signer.sign(encode(position), int(now))
            return [self._carry(incoming, value, https, self.max_age)]
        if incoming.source is not None and (incoming.position is None or shared.verdict in _DROP):
            if incoming.position is not None:
                logger.debug("dropped a position: %s", shared.verdict.value)
            return [self._carry(incoming, "", https, 0)]
        return []

    def _carry(self, incoming: Incoming, value: str, https: bool, max_age: int) -> tuple[str, str]:
        if self.header is not None and (incoming.source == "header" or self.cookie is None):
            return (self.header, value)
        assert self.cookie is not None
        return ("Set-Cookie", self.set_cookie(value, https, max_age))

    def set_cookie(self, value: str, https: bool, max_age: int) -> str:
        """A ``Set-Cookie`` value carrying *value* for *max_age* seconds (0: delete it)."""
        parts = [f"{self.cookie}={value}", f"Max-Age={max_age}", f"Path={self.path}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.secure or (self.secure is None and https):
            parts.append("Secure")
        parts.append("HttpOnly")
        parts.append(f"SameSite={self.samesite.capitalize()}")
        return "; ".join(parts)


def warn_if_late(shared: SharedFloor, path: str) -> None:
    """Warn when a session of the request committed after its response had started: the
    client did not get that position, and its next request may read without the write."""
    committed = shared.committed
    if committed is not None and (shared.sent is None or committed > shared.sent):
        logger.warning(
            "%s: a session committed after the response started; the client did not get its"
            " position (commit before returning; FastAPI: Depends(..., scope='function'))",
            path,
        )
