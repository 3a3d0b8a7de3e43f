"""The bench's own error, and the one way text about a failure is made fit to show."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["BenchError", "describe_error", "scrub"]

MASK: Final = "***"
MAX_MESSAGE: Final = 200


class BenchError(RuntimeError):
    """The bench could not be set up or carried on: a node unreachable, a dataset table that
    is not the bench's, a fault switch that failed. The message names the node or table and
    never holds a password."""


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """*text* with every non-empty secret masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def describe_error(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """``"Type: message"``: one line, at most :data:`MAX_MESSAGE` characters of message,
    secrets masked (an error sample of the result)."""
    message = " ".join(str(exc).split())
    message = scrub(message, secrets)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    name = type(exc).__name__
    return f"{name}: {message}" if message else name
