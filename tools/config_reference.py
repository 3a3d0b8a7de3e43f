"""The configuration reference page, generated from the configuration dataclasses.

Every field of ``RouterConfig``, ``PoolConfig``, ``RetryConfig`` and ``NodeConfig`` gets a row:
its name, type, default, environment variable, URL option and meaning. The meaning is the
field's attribute docstring (the string literal right under it in the source), read with
``ast``; a field without one is an error (:func:`undocumented`, and :func:`render` raises), so
a new setting cannot ship without its documentation. The docs build calls :func:`render` from
``docs/hooks.py``; ``python tools/config_reference.py`` prints the page.
"""

from __future__ import annotations

import ast
import dataclasses
import html
import inspect
import itertools
import sys
import textwrap
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = ["field_docs", "render", "undocumented"]

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from router.config import ENV_PREFIX, NodeConfig, PoolConfig, RetryConfig, RouterConfig  # noqa: E402
from router.config._sources import NODE_FIELDS, options  # noqa: E402

CLASSES: tuple[type[Any], ...] = (RouterConfig, PoolConfig, RetryConfig, NodeConfig)
GROUPS = {"pool": PoolConfig, "retry": RetryConfig}

# Node fields are not options: where each comes from instead.
NODE_SOURCES = {
    "primary": ("`ROUTER_PRIMARY_URL`", "-"),
    "replicas": ("`ROUTER_REPLICA_URLS` (comma-separated)", "-"),
    "nodes": ("`ROUTER_URL` (one node per host)", "the URL's hosts (`h1:5432,h2,h3`)"),
}
NODE_CONFIG_SOURCES = {
    "dsn": ("one per host of `ROUTER_URL`", "one per host"),
    "name": ("-", "-"),
    "weight": ("-", "-"),
    "password": ("`ROUTER_PASSWORD` (every node)", "`user:password@` (every node)"),
}


def field_docs(cls: type[Any]) -> dict[str, str]:
    """``{field: docstring}`` for the attribute docstrings in *cls*'s class body."""
    source = textwrap.dedent(inspect.getsource(cls))
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    statements = body.body
    for statement, following in itertools.pairwise(statements):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _public_fields(cls: type[Any]) -> Iterator[dataclasses.Field[Any]]:
    for spec in dataclasses.fields(cls):
        if spec.init and not spec.name.startswith("_"):
            yield spec


def undocumented() -> list[str]:
    """``Class.field`` for every field without an attribute docstring."""
    missing = []
    for cls in CLASSES:
        docs = field_docs(cls)
        missing.extend(
            f"{cls.__name__}.{spec.name}" for spec in _public_fields(cls) if spec.name not in docs
        )
    return missing


def _annotations(cls: type[Any]) -> dict[str, str]:
    source = textwrap.dedent(inspect.getsource(cls))
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    return {
        node.target.id: ast.unparse(node.annotation)
        for node in body.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def _default(spec: dataclasses.Field[Any]) -> str:
    if spec.default is not dataclasses.MISSING:
        value = spec.default
    elif spec.default_factory is not dataclasses.MISSING:
        return f"`{spec.default_factory.__name__}()`"  # type: ignore[union-attr]
    else:
        return "required"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, tuple) and not value:
        return "`()`"
    return f"`{value!r}`"


def _meaning(doc: str) -> str:
    """One table cell: reST roles and literals made markdown, lines joined."""
    text = " ".join(doc.split())
    for role in (":class:", ":meth:", ":func:", ":attr:"):
        while role in text:
            start = text.index(role)
            end = text.index("`", start + len(role) + 1)
            target = text[start + len(role) + 1 : end].lstrip("~").rsplit(".", 1)[-1]
            text = text[:start] + f"`{target}`" + text[end + 1 :]
    return text.replace("``", "`").replace("|", "\\|")


def _table(cls: type[Any], group: str | None) -> list[str]:
    docs = field_docs(cls)
    types = _annotations(cls)
    table = options(RouterConfig)
    lines = [
        "| field | type | default | environment | URL option | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for spec in _public_fields(cls):
        name = spec.name
        if name not in docs:
            raise ValueError(f"{cls.__name__}.{name} has no documentation (an attribute docstring)")
        key = name if group is None else f"{group}_{name}"
        if cls is NodeConfig:
            env, url = NODE_CONFIG_SOURCES[name]
        elif group is None and name in NODE_FIELDS:
            env, url = NODE_SOURCES[name]
        elif group is None and name in GROUPS:
            env, url = f"`{ENV_PREFIX}{name.upper()}_*`", f"`router_{name}_*`"
        elif key in table:
            env, url = f"`{ENV_PREFIX}{key.upper()}`", f"`router_{key}`"
        else:  # pragma: no cover - every other field is an option
            env, url = "-", "-"
        kind = types[name]
        if isinstance(spec.default, Enum):  # an option set: its values say more than its type
            values = " | ".join(repr(member.value) for member in type(spec.default))
            kind = values if name != "policy" else f"{values} | a policy"
        # A code span keeps a table's escaped pipe as "\\|": HTML code with an entity instead.
        kind = f"<code>{html.escape(kind).replace('|', '&#124;')}</code>"
        title = name if group is None else f"{group}.{name}"
        lines.append(
            f"| `{title}` | {kind} | {_default(spec)} | {env} | {url} | {_meaning(docs[name])} |"
        )
    return lines


HEADER = """\
# Configuration reference

<!-- Generated by tools/config_reference.py from the configuration dataclasses at build time:
     edit the attribute docstrings in src/router/config/_router_config.py and _nodes.py. -->

Every setting of [`RouterConfig`](../api/config.md), with its type, default, the environment
variable `RouterConfig.from_env()` reads it from and the option `RouterConfig.from_url()` takes
in the URL's query string. Times are in seconds, sizes in bytes.

- **In code**: `RouterConfig(primary=..., replicas=[...], max_lag_seconds=2.0,
  pool=PoolConfig(max_size=20))`, or `RouterConfig.from_url(url, max_lag_seconds=2.0)`.
- **In a URL**: `postgresql://app@db1,db2,db3/app?router_max_lag_seconds=2&router_pool_max_size=20`
  (the `router_*` parameters are removed before the drivers see the URL).
- **In the environment**: `ROUTER_URL=postgresql://app@db1,db2,db3/app`,
  `ROUTER_MAX_LAG_SECONDS=2`, `ROUTER_POOL_MAX_SIZE=20`. Booleans are `1`/`0`, `true`/`false`,
  `yes`/`no`, `on`/`off`; `none` clears an optional number; lists are comma-separated. An
  unknown `ROUTER_*` variable is an error that names it (a typo must not be ignored).

A bad value raises [`ConfigurationError`](../troubleshooting.md#configurationerror) naming the
field, or the variable or URL option it came from.
"""

SECTIONS = (
    (RouterConfig, None, "RouterConfig", "The router: nodes, routing, health, modes."),
    (PoolConfig, "pool", "PoolConfig (`pool`)", "One pool per node; `RouterConfig(pool=...)`."),
    (
        RetryConfig,
        "retry",
        "RetryConfig (`retry`)",
        "Retries of reads outside a transaction (design §6); `RouterConfig(retry=...)`.",
    ),
    (
        NodeConfig,
        None,
        "NodeConfig",
        "One server, for `primary=`, `replicas=` or `nodes=` when a string is not enough.",
    ),
)


def render() -> str:
    """The whole page, as markdown. Raises ``ValueError`` for an undocumented field."""
    parts = [HEADER]
    for cls, group, title, intro in SECTIONS:
        parts.append(f"## {title}\n\n{intro}\n")
        parts.append("\n".join(_table(cls, group)) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
