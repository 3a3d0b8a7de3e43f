"""Signed positions: a router token, when it was issued, and an HMAC over both.

Format (version 1), from ``[A-Za-z0-9._-]`` only, so it is a valid cookie value and header
value without quoting::

    <router token "r1.…">.<issued, Unix seconds>.<base64url(HMAC-SHA256(key, message)[:16])>

The message binds a fixed purpose string, the token and the issue time, so a signature made
for anything else does not verify here. Several keys may be given: the first signs, any of them
verifies (key rotation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

from router.errors import ConfigurationError

__all__ = ["Signed", "Signer"]

_PURPOSE: Final = b"router.web position v1|"
_MAC_BYTES: Final = 16
_MAC_CHARS: Final = 22
#: Secrets shorter than this are refused: the HMAC is only as strong as its key.
MIN_SECRET_BYTES: Final = 16
#: Longer values are not ours (a router token is 30 characters); refused before any work.
_MAX_LENGTH: Final = 128


class Signed:
    """A verified value: the router token and its issue time."""

    __slots__ = ("issued_at", "token")

    def __init__(self, token: str, issued_at: int) -> None:
        self.token = token
        self.issued_at = issued_at


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            "secret", f"must be at least {MIN_SECRET_BYTES} bytes (use secrets.token_urlsafe())"
        )
    return key


class Signer:
    """Signs and verifies positions with an application secret (or several, for rotation)."""

    __slots__ = ("_keys",)

    def __init__(self, secret: str | bytes | Sequence[str | bytes]) -> None:
        secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
        if not secrets:
            raise ConfigurationError("secret", "at least one secret is needed")
        self._keys = tuple(_key(s) for s in secrets)

    def __repr__(self) -> str:
        return f"Signer(<{len(self._keys)} secret(s)>)"

    @staticmethod
    def _mac(key: bytes, token: str, issued: str) -> str:
        message = _PURPOSE + token.encode("ascii") + b"|" + issued.encode("ascii")
        digest = hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def sign(self, token: str, issued_at: int) -> str:
        """*token* (a router token) with its issue time, signed with the first secret."""
        issued = str(int(issued_at))
        return f"{token}.{issued}.{self._mac(self._keys[0], token, issued)}"

    def verify(self, value: str) -> Signed | None:
        """The token and issue time *value* carries, if one of the secrets signed it;
        ``None`` for anything else (forged, damaged, truncated, not ours). Never raises."""
        if not isinstance(value, str) or len(value) > _MAX_LENGTH or not value.isascii():
            return None
        parts = value.rsplit(".", 2)
        if len(parts) != 3:
            return None
        token, issued, mac = parts
        if len(mac) != _MAC_CHARS or not issued.isdigit() or len(issued) > 12:
            return None
        for key in self._keys:
            if hmac.compare_digest(self._mac(key, token, issued), mac):
                return Signed(token, int(issued))
        return None
