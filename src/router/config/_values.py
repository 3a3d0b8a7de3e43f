"""Option sets and value checks shared by the configuration classes.

Every check takes the dotted field name first and raises :class:`ConfigurationError` naming it,
saying what was expected and what was given. Checks are strict: ``bool`` is not an ``int``, a
``str`` is not a number, and floats must be finite.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final, Literal, Self, TypeVar

from router.config._dsn import redact

# The core's enum, so that its ``is Consistency.STRONG`` checks hold for configured values.
from router.core import Consistency
from router.errors import ConfigurationError

__all__ = [
    "Checked",
    "Consistency",
    "ConsistencyLiteral",
    "Fallback",
    "FallbackLiteral",
    "PolicyLiteral",
    "PolicyName",
    "PoolerMode",
    "PoolerModeLiteral",
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_names",
    "check_str",
    "show",
]


class Checked:
    """Base of the configuration dataclasses: a keyword that names no field raises
    :class:`ConfigurationError` naming it (with the nearest field name), where the generated
    ``__init__`` would raise a bare ``TypeError``; positional arguments are refused alike."""

    __slots__ = ()

    def __new__(cls, *args: object, **kwargs: object) -> Self:
        known = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        if args:
            raise ConfigurationError(
                cls.__name__, f"takes keyword arguments only; got {len(args)} positional"
            )
        for name in kwargs:
            if name not in known:
                near = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ConfigurationError(name, f"{cls.__name__} has no such field{hint}")
        return super().__new__(cls)


# Longest rendering of a bad value in an error message.
_SHOW_LIMIT: Final = 80


class PolicyName(StrEnum):
    """Built-in replica selection policies (design §4)."""

    PRIMARY_ONLY = "primary-only"
    ROUND_ROBIN = "round-robin"
    RANDOM = "random"
    LEAST_OUTSTANDING = "least-outstanding"
    LATENCY = "latency"


class Fallback(StrEnum):
    """What happens to a read when no replica is eligible."""

    PRIMARY = "primary"
    ERROR = "error"


class PoolerMode(StrEnum):
    """What sits between the router and the servers: nothing/session pooling, or a transaction
    pooler (PgBouncer ``pool_mode=transaction``, RDS Proxy) that breaks named prepared statements.
    """

    SESSION = "session"
    TRANSACTION = "transaction"


PolicyLiteral = Literal["primary-only", "round-robin", "random", "least-outstanding", "latency"]
ConsistencyLiteral = Literal["strong", "read_your_writes", "bounded", "eventual"]
FallbackLiteral = Literal["primary", "error"]
PoolerModeLiteral = Literal["session", "transaction"]

E = TypeVar("E", bound=StrEnum)


def show(value: object) -> str:
    """``repr(value)`` cut to a readable length, prefixed by its type when that helps."""
    # Redacted: a DSN given where something else belongs must not show its password.
    text = repr(redact(value)) if isinstance(value, str) else repr(value)
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 3] + "..."
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return text
    return f"{type(value).__name__} {text}"


def _fold(text: str) -> str:
    return text.strip().lower().replace("_", "-")


def check_choice(field: str, value: object, choices: type[E]) -> E:
    """A member of ``choices``, given as itself or its value (case, ``-``/``_`` ignored)."""
    if isinstance(value, choices):
        return value
    if isinstance(value, str):
        folded = _fold(value)
        for member in choices:
            if _fold(member.value) == folded:
                return member
    allowed = ", ".join(repr(m.value) for m in choices)
    raise ConfigurationError(field, f"must be one of {allowed}; got {show(value)}")


def check_bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(field, f"must be True or False; got {show(value)}")
    return value


def check_int(
    field: str, value: object, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An ``int`` (not a ``bool``, not a float) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(field, f"must be an integer; got {show(value)}")
    if minimum is not None and value < minimum:
        raise ConfigurationError(field, f"must be >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(field, f"must be <= {maximum}; got {value}")
    return value


def check_float(
    field: str,
    value: object,
    *,
    minimum: float = 0.0,
    exclusive: bool = False,
    maximum: float | None = None,
) -> float:
    """A finite number (``int`` or ``float``, not ``bool``) >= ``minimum`` (> when
    ``exclusive``) and <= ``maximum``; returned as ``float``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(field, f"must be a number; got {show(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigurationError(field, f"must be a finite number; got {show(value)}")
    if exclusive and number <= minimum:
        raise ConfigurationError(field, f"must be > {minimum:g}; got {number:g}")
    if number < minimum:
        raise ConfigurationError(field, f"must be >= {minimum:g}; got {number:g}")
    if maximum is not None and number > maximum:
        raise ConfigurationError(field, f"must be <= {maximum:g}; got {number:g}")
    return number


def check_str(field: str, value: object, *, max_length: int) -> str:
    """A non-empty string of printable ASCII characters, at most ``max_length`` long."""
    if not isinstance(value, str):
        raise ConfigurationError(field, f"must be a string; got {show(value)}")
    if not value:
        raise ConfigurationError(field, "must not be empty")
    if len(value) > max_length:
        raise ConfigurationError(
            field, f"must be at most {max_length} characters; got {len(value)}"
        )
    if not (value.isascii() and value.isprintable()):
        raise ConfigurationError(field, f"must be printable ASCII; got {show(value)}")
    return value


def check_names(field: str, value: object) -> tuple[str, ...]:
    """Function names for the classifier: a collection (not one string, nor a mapping, whose
    values would be dropped unseen) of ``name`` or ``schema.name`` strings, kept in order
    without duplicates."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ConfigurationError(
            field, f"must be a list or tuple of function names; got {show(value)}"
        )
    names: dict[str, None] = {}
    for index, name in enumerate(value):
        if (
            not isinstance(name, str)
            or not name.strip(". ")
            or name != name.strip()
            or name.count(".") > 1
            or not name.isprintable()
        ):
            raise ConfigurationError(
                f"{field}[{index}]", f"must be a function name or schema.name; got {show(name)}"
            )
        names[name] = None
    return tuple(names)
