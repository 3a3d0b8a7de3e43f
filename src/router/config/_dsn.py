"""Connection strings: redaction, parsing of one node's DSN, splitting of a multi-host URL.

Parsing is libpq's own (``psycopg.conninfo``), which does no I/O. Every error raised here is a
:class:`ConfigurationError` whose message shows the input only through :func:`redact`, and
libpq's own messages are only quoted where they cannot carry the password (libpq quotes the
offending token, which may be the password itself).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from router.errors import ConfigurationError

__all__ = [
    "DEFAULT_PORT",
    "MASK",
    "ParsedDSN",
    "ROUTER_OPTION_PREFIX",
    "URI_PREFIXES",
    "check_text",
    "check_unambiguous",
    "parse_node_dsn",
    "redact",
    "shown",
    "split_hosts",
    "split_router_options",
]

MASK: Final = "***"
DEFAULT_PORT: Final = 5432
URI_PREFIXES: Final = ("postgresql://", "postgres://")
ROUTER_OPTION_PREFIX: Final = "router_"
# Longer connection strings are refused before libpq sees them.
MAX_DSN_LENGTH: Final = 65_536
_SHOW_LIMIT: Final = 160
# Parameters that only make sense across several hosts: the router discovers roles itself, and
# a per-host DSN keeping ``target_session_attrs=read-write`` could never reach a replica.
_MULTI_HOST_ONLY: Final = frozenset({"target_session_attrs", "load_balance_hosts"})

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_SCHEME_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-"
)
# "password=" anywhere (password, sslpassword, PGPASSWORD, even inside another value: masking
# too much beats too little), then its value in libpq's syntax: quoted with backslash escapes
# (unterminated: to the end), or unquoted up to whitespace.
_KV_KEY = re.compile(r"password\s*=\s*", re.IGNORECASE)
_KV_VALUE = re.compile(r"'(?:\\.|[^'\\])*'?|(?:\\.|[^\s\\])+", re.DOTALL)
# In a URL, a query value the query rule already masked.
_MASKED_ITEM = re.compile(r"\*\*\*(?:[&\s]|$)")
_PASSWORD_KEY = re.compile(r"password\s*=", re.IGNORECASE)
# libpq messages longer than this (some quote the whole URL) are not shown.
_MAX_LIBPQ_MESSAGE: Final = 200
_SECRET_PIECE: Final = 4
_QUERY_ITEM = re.compile(r"([?&]|^)([^?&=]*)=([^&]*)")


def _mask_kv(text: str, secrets: list[str], *, in_url: bool = False) -> str:
    """Mask the value after every password key, recording what was hidden.

    Spans are merged, so a key inside another key's value cannot leave part of it visible.
    """
    spans: list[list[int]] = []
    for key in _KV_KEY.finditer(text):
        start = key.end()
        if in_url and _MASKED_ITEM.match(text, start):
            continue
        inside = bool(spans) and start <= spans[-1][1]
        if inside and not text.startswith("'", start):
            # An unquoted value ends at the same whitespace as the span it sits in (and
            # skipping it keeps this linear on "password=password=...").
            continue
        value = _KV_VALUE.match(text, start)
        if value is None:
            continue
        if inside:
            spans[-1][1] = max(spans[-1][1], value.end())
        else:
            spans.append([start, value.end()])
    if not spans:
        return text
    parts: list[str] = []
    pos = 0
    for start, end in spans:
        parts.append(text[pos:start])
        secrets.append(text[start:end])
        parts.append(MASK)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _redact_url(rest: str, secrets: list[str]) -> str:
    """Mask the password in the part of a URL after ``scheme://``.

    libpq ends the user info at the first ``@`` before the first ``/``; a password holding a raw
    ``@`` or ``/`` is a user error it misparses, so this masks from the first ``:`` up to the
    *last* ``@``: sometimes more than the password, never less.
    """
    at = rest.rfind("@")
    info_end = 0
    if at >= 0:
        colon = rest.find(":", 0, at)
        if colon >= 0 and colon + 1 < at:
            secrets.append(rest[colon + 1 : at])
            rest = f"{rest[: colon + 1]}{MASK}{rest[at:]}"
            at = colon + 1 + len(MASK)
        info_end = at + 1
    head, tail = rest[:info_end], rest[info_end:]

    def item(match: re.Match[str]) -> str:
        if "password" in unquote(match.group(2)).lower():
            secrets.append(match.group(3))
            return f"{match.group(1)}{match.group(2)}={MASK}"
        return match.group()

    # Any ``key=value`` after the user info, even past an ``@`` the masking above swallowed;
    # then ``password=`` anywhere else (garbage such as ``?a=1 password=x``).
    return _mask_kv(head + _QUERY_ITEM.sub(item, tail), secrets, in_url=True)


def _redact(text: str) -> tuple[str, list[str]]:
    """:func:`redact`, also returning the masked substrings."""
    secrets: list[str] = []
    stripped = text.lstrip()
    head = _SCHEME.match(stripped)
    if head is not None:
        # The whole string is one URL, as libpq would read it: it may even contain spaces.
        lead = text[: len(text) - len(stripped)]
        return lead + head.group() + _redact_url(stripped[head.end() :], secrets), secrets
    # key=value passwords first, over the whole text: a password may itself contain "://".
    text = _mask_kv(text, secrets)
    parts: list[str] = []
    pos = 0
    while (sep := text.find("://", pos)) >= 0:
        # Found by hand, not by a regex search: that backtracks quadratically on long words.
        start = sep
        while start > pos and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < sep and not (text[start].isascii() and text[start].isalpha()):
            start += 1
        end = sep + 3
        while end < len(text) and not text[end].isspace():
            end += 1
        parts.append(text[pos:start])
        parts.append(text[start : sep + 3] + _redact_url(text[sep + 3 : end], secrets))
        pos = end
    parts.append(text[pos:])
    return "".join(parts), secrets


def redact(dsn: str) -> str:
    """``dsn`` with every password replaced by ``***``, for logs, reprs and error messages.

    Handles libpq URLs (``scheme://user:password@...``, ``?password=``), key=value conninfo
    (``password=...``, quoted or not), and ``PGPASSWORD=...``-style text. Never raises; for
    malformed input it masks more rather than less.
    """
    return _redact(dsn if isinstance(dsn, str) else str(dsn))[0]


def shown(dsn: str) -> str:
    """The redacted DSN, cut to a readable length, for error messages."""
    text = redact(dsn)
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 3] + "..."
    return repr(text)


def _overlaps(message: str, secret: str) -> bool:
    """Whether ``message`` holds ``secret`` or a piece of it (4 characters or more)."""
    size = min(len(secret), _SECRET_PIECE)
    return any(secret[i : i + size] in message for i in range(len(secret) - size + 1))


def _libpq_problem(error: Exception, dsn: str) -> str:
    """libpq's parse error, when it cannot hold the password.

    libpq quotes the offending token, which may be the password or a piece of it, so its
    message is dropped if it shares any piece with what :func:`redact` masks.
    """
    message = " ".join(str(error).split())
    if not message or len(message) > _MAX_LIBPQ_MESSAGE:
        return "libpq cannot parse it"
    _visible, secrets = _redact(dsn)
    for secret in secrets:
        if secret and (_overlaps(message, secret) or _overlaps(message, unquote(secret))):
            return "libpq cannot parse it"
    return message


def check_text(dsn: str, field: str) -> None:
    """Refuse what libpq cannot be trusted with: overlong strings and NUL characters."""
    if len(dsn) > MAX_DSN_LENGTH:
        raise ConfigurationError(
            field, f"is {len(dsn)} characters long, more than {MAX_DSN_LENGTH} allowed"
        )
    if "\0" in dsn:
        # libpq stops at a NUL and would silently parse a prefix of the string.
        raise ConfigurationError(field, f"contains a NUL character; got {shown(dsn)}")


def _parse(dsn: str, field: str, display: str) -> dict[str, str]:
    """libpq's parse of ``dsn`` as a dict, or a :class:`ConfigurationError` naming ``field``
    and showing ``display`` (redacted)."""
    check_text(dsn, field)
    problem = None
    try:
        params = conninfo_to_dict(dsn)
    except UnicodeError:
        problem = "contains characters that are not valid in UTF-8"
    except psycopg.Error as error:
        problem = f"is not a valid connection string ({_libpq_problem(error, dsn)})"
    if problem is not None:
        # Raised outside the ``except``: libpq's exception, which may quote the password, must
        # not ride along as ``__context__``.
        raise ConfigurationError(field, f"{problem}; got {shown(display)}")
    return {key: str(value) for key, value in params.items()}


@dataclass(frozen=True, slots=True)
class ParsedDSN:
    """What the router needs to know about one server's connection string."""

    host: str
    hostaddr: str | None
    port: int
    dbname: str
    user: str | None
    has_password: bool


def _port(text: str | None, field: str, display: str) -> int:
    if not text:
        return DEFAULT_PORT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ConfigurationError(
            field, f"port {text[:20]!r} is not a number from 1 to 65535; got {shown(display)}"
        )
    return int(text)


#: libpq options whose values libpq (or the driver) would refuse only at connect time, or
#: read as something else: checked here, so the mistake is named when the config is made.
_CHOICES: Final[Mapping[str, frozenset[str]]] = {
    "sslmode": frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}),
    "target_session_attrs": frozenset(
        {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}
    ),
    "gssencmode": frozenset({"disable", "prefer", "require"}),
    "channel_binding": frozenset({"disable", "prefer", "require"}),
    "keepalives": frozenset({"0", "1"}),
}
_INTEGERS: Final = ("connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count")


def _check_options(params: Mapping[str, str], field: str, display: str) -> None:
    for key, allowed in _CHOICES.items():
        value = params.get(key)
        if value is not None and value not in allowed:
            raise ConfigurationError(
                field,
                f"{key}={value!r} is not one of {', '.join(sorted(allowed))}; got {shown(display)}",
            )
    for key in _INTEGERS:
        value = params.get(key)
        if value is not None and not value.strip().removeprefix("-").isdigit():
            raise ConfigurationError(
                field, f"{key}={value!r} is not a whole number; got {shown(display)}"
            )


def parse_node_dsn(dsn: str, field: str, display: str | None = None) -> ParsedDSN:
    """Parse and check the DSN of one server (a libpq URL or key=value conninfo).

    Errors name ``field`` and show ``display`` (default ``dsn``), redacted.

    Requires exactly one host (``host`` or ``hostaddr``), a valid port (default 5432) and a
    database name: libpq would default the database to the user name, which hides mistakes.
    """
    display = dsn if display is None else display
    if not dsn:
        raise ConfigurationError(field, "is empty")
    check_text(dsn, field)
    if "=" not in dsn and not dsn.startswith(URI_PREFIXES):
        # Not echoed: a lone word where a DSN belongs may well be the password itself.
        raise ConfigurationError(
            field, "is not a connection string (a postgresql:// URL or key=value pairs)"
        )
    if dsn.startswith(URI_PREFIXES):
        check_unambiguous(dsn, field)
        _clean, options = split_router_options(dsn, field)
        if options:
            raise ConfigurationError(
                field,
                f"router options ({', '.join(ROUTER_OPTION_PREFIX + k for k in options)}) are "
                f"only accepted by RouterConfig.from_url(), not in one node's DSN; "
                f"got {shown(display)}",
            )
    params = _parse(dsn, field, display)
    for key in ("host", "hostaddr", "port", "dbname", "user"):
        # Redaction masks whatever follows "password=": a value holding that text would be
        # shown unmasked in names and messages, so refuse it.
        if _PASSWORD_KEY.search(params.get(key, "")):
            raise ConfigurationError(field, f"{key} contains 'password='; got {shown(display)}")
    host = params.get("host") or None
    hostaddr = params.get("hostaddr") or None
    if host is None and hostaddr is None:
        raise ConfigurationError(
            field, f"names no host (give postgresql://HOST/... or host=HOST); got {shown(display)}"
        )
    for key in ("host", "hostaddr", "port"):
        if "," in params.get(key, ""):
            raise ConfigurationError(
                field,
                f"lists several hosts or ports; one node is one server (use "
                f"RouterConfig.from_url() for a multi-host URL); got {shown(display)}",
            )
    port = _port(params.get("port"), field, display)
    _check_options(params, field, display)
    dbname = params.get("dbname") or None
    if dbname is None:
        raise ConfigurationError(
            field,
            "names no database (give postgresql://host/DBNAME or dbname=DBNAME); "
            f"got {shown(display)}",
        )
    return ParsedDSN(
        host=host if host is not None else str(hostaddr),
        hostaddr=hostaddr,
        port=port,
        dbname=dbname,
        user=params.get("user") or None,
        has_password=bool(params.get("password")),
    )


def check_unambiguous(url: str, field: str) -> None:
    """Refuse a URL whose password libpq would read differently from :func:`redact`.

    A raw ``@`` past the user info, or a ``/`` inside it, makes libpq and a human disagree about
    where the password ends; percent-encoding removes the doubt.
    """
    rest = url[url.index("://") + 3 :]
    last_at = rest.rfind("@")
    colon = rest.find(":", 0, last_at) if last_at >= 0 else -1
    if colon < 0:
        return
    first = next((i for i, c in enumerate(rest) if c in "@/"), -1)
    if first != last_at:
        raise ConfigurationError(
            field,
            "has a raw '@' after its user info or a '/' inside it; percent-encode '@' as %40 "
            f"and '/' as %2F in user names, passwords and parameter values; got {shown(url)}",
        )


def _query_start(url: str) -> int:
    """Index of the ``?`` starting the query of a libpq URL, or -1 (as libpq finds it)."""
    prefix = next(p for p in URI_PREFIXES if url.startswith(p))
    start = len(prefix)
    info_end = start
    for index in range(start, len(url)):
        if url[index] == "/":
            break
        if url[index] == "@":
            info_end = index + 1
            break
    return url.find("?", info_end)


def split_router_options(url: str, field: str) -> tuple[str, dict[str, str]]:
    """Split ``router_*`` query parameters off a libpq URL.

    Returns the URL without them (for the drivers) and the options by name without the prefix,
    values percent-decoded. The URL must start with ``postgresql://`` or ``postgres://``.
    """
    query = _query_start(url)
    if query < 0:
        return url, {}
    kept: list[str] = []
    options: dict[str, str] = {}
    for item in url[query + 1 :].split("&"):
        raw_key, eq, raw_value = item.partition("=")
        key = unquote(raw_key)
        if not key.startswith(ROUTER_OPTION_PREFIX):
            kept.append(item)
            continue
        name = key[len(ROUTER_OPTION_PREFIX) :]
        where = f"{field}: {key[:60]}"
        if not eq:
            raise ConfigurationError(where, f"needs a value ({key[:60]}=...)")
        if name in options:
            raise ConfigurationError(where, "is given more than once")
        value = unquote(raw_value, errors="replace")
        if "\ufffd" in value and "\ufffd" not in raw_value:
            raise ConfigurationError(where, "is not percent-encoded UTF-8")
        options[name] = value
    clean = url[:query] if not kept else f"{url[:query]}?{'&'.join(kept)}"
    return clean, options


def split_hosts(url: str, field: str) -> list[str]:
    """One key=value DSN per host of a (possibly multi-host) libpq URL.

    Every DSN keeps the URL's credentials and parameters except ``target_session_attrs`` and
    ``load_balance_hosts``. Ports pair with hosts as in libpq: one port for all, or one each
    (an empty entry means the default).
    """
    if not url.startswith(URI_PREFIXES):
        raise ConfigurationError(
            field,
            f"must be a URL starting with postgresql:// or postgres://; got {shown(url)}",
        )
    check_unambiguous(url, field)
    params = _parse(url, field, url)
    hosts = params.pop("host", "").split(",")
    addrs = params.pop("hostaddr", "").split(",")
    ports = params.pop("port", "").split(",")
    for key in _MULTI_HOST_ONLY:
        params.pop(key, None)
    count = max(len(hosts), len(addrs))
    if hosts == [""] and addrs == [""]:
        raise ConfigurationError(
            field, f"names no host (postgresql://HOST1,HOST2/DBNAME); got {shown(url)}"
        )
    if hosts != [""] and addrs != [""] and len(hosts) != len(addrs):
        raise ConfigurationError(
            field, f"lists {len(hosts)} hosts but {len(addrs)} hostaddrs; got {shown(url)}"
        )
    if len(ports) not in (1, count):
        raise ConfigurationError(
            field, f"lists {count} hosts but {len(ports)} ports; got {shown(url)}"
        )
    dsns = []
    for index in range(count):
        host = hosts[index] if len(hosts) > 1 else hosts[0]
        addr = addrs[index] if len(addrs) > 1 else addrs[0]
        port = ports[index] if len(ports) > 1 else ports[0]
        if not host and not addr:
            raise ConfigurationError(
                field, f"host #{index + 1} of {count} is empty; got {shown(url)}"
            )
        place = (("host", host), ("hostaddr", addr), ("port", port))
        one = {key: value for key, value in place if value} | params
        dsn = make_conninfo("", **one)
        parse_node_dsn(dsn, field, display=url)  # errors show the URL, not this DSN
        dsns.append(dsn)
    return dsns
