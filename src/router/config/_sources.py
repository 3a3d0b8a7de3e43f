"""Options given as text — ``router_*`` URL parameters and ``ROUTER_*`` environment variables —
turned into ``RouterConfig`` keyword arguments, with errors naming where the text came from.

An option is a scalar field of ``RouterConfig`` by its name (``policy``), or a field of its
``PoolConfig`` / ``RetryConfig`` prefixed ``pool_`` / ``retry_`` (``pool_max_size``). Text is
converted by the field's type; the dataclasses then validate the values as usual.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from router.config._dsn import (
    MASK,
    URI_PREFIXES,
    check_text,
    split_hosts,
    split_router_options,
)
from router.config._dsn import _redact as redact_found
from router.config._nodes import NodeConfig, PoolConfig, RetryConfig
from router.config._patroni import nodes_from_patroni
from router.config._values import show
from router.errors import ConfigurationError

__all__ = ["Option", "config_from_env", "config_from_url", "options"]

# RouterConfig fields that are not options: nodes come from URLs, groups from their options.
NODE_FIELDS: Final = frozenset({"primary", "replicas", "nodes"})
_GROUPS: Final[Mapping[str, type[Any]]] = {"pool": PoolConfig, "retry": RetryConfig}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_NONE: Final = frozenset({"none", "null"})
# Between DSNs in a list: a comma before a URL or a key=value conninfo (a comma inside one
# URL, as in a host list, is followed by neither).
_DSN_LIST_SPLIT: Final = re.compile(r",\s*(?=postgres(?:ql)?://|[A-Za-z_]+\s*=)")


@dataclass(frozen=True, slots=True)
class Option:
    """One option settable from text: ``group`` is ``None``, ``"pool"`` or ``"retry"``."""

    group: str | None
    name: str
    kind: type[Any]  # bool, int, float, tuple (of names) or str
    optional: bool
    #: Words the field takes besides values of its kind (``auto`` for ``read_timeout``).
    words: frozenset[str] = frozenset()

    @property
    def path(self) -> str:
        """The dotted field name used in errors (``pool.max_size``)."""
        return self.name if self.group is None else f"{self.group}.{self.name}"


def _option(group: str | None, name: str, hint: Any) -> Option:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    bases = {typing.get_origin(arg) or arg for arg in args}
    if bases & {tuple, list, Sequence}:
        bases.add(tuple)
    kind: type[Any] = next((k for k in (bool, int, float, tuple) if k in bases), str)
    words = frozenset(
        word
        for arg in args
        if typing.get_origin(arg) is typing.Literal
        for word in typing.get_args(arg)
        if isinstance(word, str)
    )
    return Option(group, name, kind, type(None) in bases, words if kind is not str else frozenset())


_TABLES: dict[type[Any], Mapping[str, Option]] = {}


def options(config_cls: type[Any]) -> Mapping[str, Option]:
    """Every option of ``config_cls`` (``RouterConfig``) by its text name."""
    cached = _TABLES.get(config_cls)
    if cached is not None:
        return cached
    table: dict[str, Option] = {}
    hints = typing.get_type_hints(config_cls)
    for spec in fields(config_cls):
        if spec.name in NODE_FIELDS:
            continue
        if spec.name in _GROUPS:
            group_cls = _GROUPS[spec.name]
            group_hints = typing.get_type_hints(group_cls)
            for sub in fields(group_cls):
                table[f"{spec.name}_{sub.name}"] = _option(
                    spec.name, sub.name, group_hints[sub.name]
                )
        else:
            table[spec.name] = _option(None, spec.name, hints[spec.name])
    _TABLES[config_cls] = table
    return table


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for a likely typo, else nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _convert(option: Option, text: str, where: str) -> Any:
    value = text.strip()
    if option.optional and value.lower() in _NONE:
        return None
    if value.lower() in option.words:
        return value.lower()
    if not value:
        raise ConfigurationError(where, "is empty; leave it out for the default")
    kind = option.kind
    if kind is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigurationError(
            where, f"must be one of 1/0/true/false/yes/no/on/off; got {show(value)}"
        )
    if kind is tuple:
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if kind is int or kind is float:
        try:
            return int(value) if kind is int else float(value)
        except ValueError:
            pass
        noun = "an integer" if kind is int else "a number"
        extra = "".join(f", {word}" for word in sorted(option.words))
        extra += " or none" if option.optional else ""
        raise ConfigurationError(where, f"must be {noun}{extra}; got {show(value)}")
    return value


def _nodes(
    dsns: Sequence[str], where: str, *, password: str | None, item: str
) -> tuple[NodeConfig, ...]:
    """``NodeConfig`` for each DSN; errors are renamed to ``where`` (``host #2: ...``)."""
    built = []
    for index, dsn in enumerate(dsns):
        try:
            built.append(NodeConfig(dsn=dsn, password=password))
        except ConfigurationError as error:
            prefix = f"{item} #{index + 1}: " if len(dsns) > 1 else ""
            subject = "" if error.field == "dsn" else f"{error.field} "
            raise ConfigurationError(where, f"{prefix}{subject}{error.problem}") from None
    return tuple(built)


def _nodes_from_url(
    url: object, where: str, password: str | None
) -> tuple[tuple[NodeConfig, ...], dict[str, str]]:
    """The nodes of a (multi-host) libpq URL, and its ``router_*`` options as text."""
    if not isinstance(url, str):
        raise ConfigurationError(where, f"must be a string; got a {type(url).__name__}")
    url = url.strip()
    if not url:
        raise ConfigurationError(where, "is empty (a URL such as postgresql://app@db1,db2/app)")
    check_text(url, where)
    if not url.startswith(URI_PREFIXES):
        # Not shown: this may be anything, including a bare password.
        raise ConfigurationError(where, "must be a URL starting with postgresql:// or postgres://")
    clean, texts = split_router_options(url, where)
    dsns = split_hosts(clean, where)
    return _nodes(dsns, where, password=password, item="host"), texts


def _build(
    config_cls: type[Any],
    *,
    base: dict[str, Any],
    texts: Mapping[str, str],
    name_of: Callable[[str], str],
    node_source: Callable[[str], str | None],
    overrides: Mapping[str, Any],
) -> Any:
    """``config_cls(**base, **converted texts, **overrides)``.

    ``name_of(option)`` says where an option's text came from (``url: router_policy``,
    ``ROUTER_POLICY``); ``node_source(field)`` where a node field's value came from. Errors of
    the resulting config are renamed accordingly, so they name what the user wrote.
    """
    table = options(config_cls)
    kwargs: dict[str, Any] = dict(base)
    groups: dict[str, dict[str, Any]] = {group: {} for group in _GROUPS}
    for key, text in texts.items():
        option = table.get(key)
        if option is None:
            known = ", ".join(sorted(table))
            raise ConfigurationError(
                name_of(key), f"is not a router option{suggest(key, table)}; known: {known}"
            )
        value = _convert(option, text, name_of(key))
        if option.group is None:
            kwargs[option.name] = value
        else:
            groups[option.group][option.name] = value
    sources = {table[key].path: name_of(key) for key in texts}
    for field_name in overrides:
        sources.pop(field_name, None)
        for group in _GROUPS:
            if field_name == group:
                sources = {k: v for k, v in sources.items() if not k.startswith(f"{group}.")}
    failure = None
    try:
        for group, values in groups.items():
            if values and group not in overrides:
                kwargs[group] = _GROUPS[group](**values)
        kwargs.update(overrides)
        return config_cls(**kwargs)
    except ConfigurationError as error:
        failure = error
    if failure.field in sources:
        raise ConfigurationError(sources[failure.field], failure.problem)
    origin = sources.get(failure.field.partition("[")[0]) or node_source(failure.field)
    if origin is not None:
        raise ConfigurationError(origin, f"{failure.field} {failure.problem}")
    raise failure


def _hiding(dsns: Iterable[object], password: str | None, call: Callable[[], Any]) -> Any:
    """``call()``, with the passwords of *dsns* and *password* masked in its
    :class:`ConfigurationError`: an option's text is echoed in errors, and a password pasted
    into the wrong variable must not be."""
    try:
        return call()
    except ConfigurationError as error:
        failure = error
    found = {secret for dsn in dsns if isinstance(dsn, str) for secret in redact_found(dsn)[1]}
    if password:
        found.add(password)
    field, problem = failure.field, failure.problem
    for secret in sorted((s for s in found if len(s) >= 4), key=len, reverse=True):
        field, problem = field.replace(secret, MASK), problem.replace(secret, MASK)
    if (field, problem) == (failure.field, failure.problem):
        raise failure
    raise ConfigurationError(field, problem) from None


def config_from_url(
    config_cls: type[Any],
    url: object,
    *,
    where: str,
    password: str | None,
    extra: Mapping[str, str],
    name_of: Callable[[str], str],
    overrides: Mapping[str, Any],
) -> Any:
    """``RouterConfig.from_url``; ``extra`` options (from elsewhere) win over the URL's."""
    clash = sorted(NODE_FIELDS & overrides.keys())
    if clash:
        raise ConfigurationError(clash[0], "cannot be given with a URL, which lists the nodes")
    found, texts = _nodes_from_url(url, where, password)
    texts.update(extra)

    def node_source(field_name: str) -> str | None:
        return where if field_name.startswith("nodes") else None

    return _hiding(
        [url],
        password,
        lambda: _build(
            config_cls,
            base={"nodes": found},
            texts=texts,
            name_of=name_of,
            node_source=node_source,
            overrides=overrides,
        ),
    )


#: Variables of the library's other parts that share the prefix and are no configuration:
#: ``router.testing``'s Patroni script and the fault suites' report file. Not refused.
OTHER_VARIABLES: frozenset[str] = frozenset({"PATRONI", "RELIABILITY_REPORT"})


#: What Kubernetes puts in every pod's environment for a Service of the same name (a Service
#: called ``router``: ``ROUTER_SERVICE_HOST``, ``ROUTER_PORT_5432_TCP_ADDR``, ...). Not
#: configuration, and not typos: ignored.
_SERVICE_LINKS: Final = re.compile(
    r"(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?)?)"
)


def config_from_env(config_cls: type[Any], env: Mapping[str, str], prefix: str) -> Any:
    """``RouterConfig.from_env`` on the mapping ``env``."""
    others = {f"{prefix}{name}" for name in OTHER_VARIABLES}
    mine = {
        key: value
        for key, value in env.items()
        if key.startswith(prefix)
        and key not in others
        and not _SERVICE_LINKS.fullmatch(key.removeprefix(prefix))
    }
    url_var, primary_var, replicas_var, password_var = (
        f"{prefix}{name}" for name in ("URL", "PRIMARY_URL", "REPLICA_URLS", "PASSWORD")
    )
    known = {f"{prefix}{key.upper()}": key for key in options(config_cls)}
    specials = {url_var, primary_var, replicas_var, password_var}
    unknown = sorted(set(mine) - known.keys() - specials)
    if unknown:
        every = sorted(known.keys() | specials)
        raise ConfigurationError(
            unknown[0],
            f"unknown variable{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
            f"{suggest(unknown[0], every)}; known: {', '.join(every)}",
        )
    texts = {known[key]: value for key, value in mine.items() if key in known}
    password = mine.get(password_var)

    def name_of(key: str) -> str:
        return f"{prefix}{key.upper()}"

    if url_var in mine:
        if primary_var in mine or replicas_var in mine:
            raise ConfigurationError(
                url_var, f"give {url_var} or {primary_var} (+ {replicas_var}), not both"
            )

        def source(key: str) -> str:
            return name_of(key) if key in texts else f"{url_var}: router_{key}"

        return config_from_url(
            config_cls,
            mine[url_var],
            where=url_var,
            password=password,
            extra=texts,
            name_of=source,
            overrides={},
        )
    if primary_var not in mine:
        if replicas_var in mine:
            raise ConfigurationError(primary_var, f"is not set, but {replicas_var} is")
        raise ConfigurationError(url_var, f"is not set (nor {primary_var}): no nodes to route to")
    primary = _nodes([mine[primary_var]], primary_var, password=password, item="entry")
    replica_text = mine.get(replicas_var, "").strip()
    replica_dsns = [d.strip() for d in _DSN_LIST_SPLIT.split(replica_text)] if replica_text else []
    replicas = _nodes(replica_dsns, replicas_var, password=password, item="entry")

    def node_source(field_name: str) -> str | None:
        if field_name.startswith("primary"):
            return primary_var
        return replicas_var if field_name.startswith("replicas") else None

    return _hiding(
        [mine[primary_var], *replica_dsns],
        password,
        lambda: _build(
            config_cls,
            base={"primary": primary[0], "replicas": replicas},
            texts=texts,
            name_of=name_of,
            node_source=node_source,
            overrides={},
        ),
    )


def config_from_patroni(
    config_cls: type[Any],
    urls: tuple[str, ...],
    dsn: object,
    *,
    timeout: float,
    overrides: Mapping[str, Any],
) -> Any:
    """``RouterConfig.from_patroni``: the nodes from Patroni, the rest from *dsn*'s
    ``router_*`` options (when it is a URL) and *overrides*, which win."""
    clash = sorted(NODE_FIELDS & overrides.keys())
    if clash:
        raise ConfigurationError(
            clash[0], "cannot be given with from_patroni, which finds the nodes"
        )
    texts: dict[str, str] = {}
    if isinstance(dsn, str) and dsn.strip().startswith(URI_PREFIXES):
        dsn, texts = split_router_options(dsn.strip(), "dsn")
    nodes = nodes_from_patroni(urls, dsn, timeout=timeout)

    def node_source(field_name: str) -> str | None:
        return "dsn" if field_name.startswith("nodes") else None

    return _hiding(
        [dsn],
        None,
        lambda: _build(
            config_cls,
            base={"nodes": nodes, "patroni_urls": urls},
            texts=texts,
            name_of=lambda key: f"dsn: router_{key}",
            node_source=node_source,
            overrides=overrides,
        ),
    )
