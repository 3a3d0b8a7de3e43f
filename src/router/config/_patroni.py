"""Nodes learnt from Patroni: the members of ``GET /cluster``, each reached with one DSN
template (credentials, database, parameters) and the member's own host and port.

Patroni's view decides only *which* nodes exist; roles stay discovered from the databases at
run time, as with any other configuration (design §5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psycopg.conninfo import make_conninfo

from router._patroni import fetch_cluster
from router.config._dsn import redact
from router.config._nodes import NodeConfig
from router.errors import ConfigurationError

__all__ = ["nodes_from_patroni"]

#: Patroni's ``GET /cluster`` answer is small; a member list is read within this long.
DEFAULT_TIMEOUT = 5.0


def _members(body: Any, source: str) -> list[tuple[str, str, int]]:
    """``(member name, host, port)`` of each member of a ``/cluster`` body."""
    if not isinstance(body, Mapping) or not isinstance(body.get("members"), list):
        raise ConfigurationError("patroni_urls", f"{source}/cluster is not Patroni's answer")
    found = []
    for entry in body["members"]:
        if not isinstance(entry, Mapping):
            raise ConfigurationError("patroni_urls", f"{source}/cluster is not Patroni's answer")
        name, host, port = entry.get("name"), entry.get("host"), entry.get("port")
        if not isinstance(name, str) or not isinstance(host, str) or not host:
            raise ConfigurationError(
                "patroni_urls", f"{source}/cluster names a member without a name or host"
            )
        if not isinstance(port, int) or isinstance(port, bool):
            port = 5432
        found.append((name, host, port))
    return found


def nodes_from_patroni(
    urls: Sequence[str],
    dsn: object,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    fetch: Callable[[str, float], Any] = fetch_cluster,
) -> tuple[NodeConfig, ...]:
    """One :class:`NodeConfig` per member Patroni reports (named as Patroni names it), from
    the first of *urls* that answers. *dsn* gives everything but the host and port (a
    ``host``/``port`` in it is replaced). Raises :class:`ConfigurationError` naming
    ``patroni_urls`` when no URL answers or no member is reported, and naming ``dsn`` when the
    template is not a usable connection string (shown redacted)."""
    if not isinstance(dsn, str):
        raise ConfigurationError("dsn", f"must be a connection string; got a {type(dsn).__name__}")
    failures = []
    for url in urls:
        try:
            body = fetch(url, timeout)
        except (OSError, ValueError) as exc:
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        members = _members(body, url.rstrip("/"))
        if not members:
            raise ConfigurationError("patroni_urls", f"{url}/cluster reports no member")
        nodes = []
        for name, host, port in members:
            try:
                member_dsn = make_conninfo(dsn, host=host, port=str(port))
            except Exception:  # libpq's message may quote the password: not shown
                raise ConfigurationError(
                    "dsn", f"is not a connection string libpq accepts: {redact(dsn)}"
                ) from None
            try:
                nodes.append(NodeConfig(dsn=member_dsn, name=name))
            except ConfigurationError as error:
                raise ConfigurationError(
                    "dsn", f"for member {name} ({host}:{port}): {error.field} {error.problem}"
                ) from None
        return tuple(nodes)
    raise ConfigurationError(
        "patroni_urls", "no Patroni REST API answered (" + "; ".join(failures) + ")"
    )
