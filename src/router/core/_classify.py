"""``Classifier`` and ``classify()``: SQL text → :class:`Classification`, cached.

Parsing uses PostgreSQL's own grammar through pglast (libpg_query), reading its JSON output:
``parse_sql_json`` is about 15x cheaper than building pglast's Python AST.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Final

from pglast.parser import parse_sql_json

from router.core._catalog import FunctionCatalog
from router.core._facts import ARGUMENT_SENSITIVE, Call, text_calls, text_facts
from router.core._functions import FunctionRule, builtin_rule
from router.core._placeholders import lex
from router.core._statements import (
    DML_KINDS,
    StatementResult,
    dml_result,
    query_result,
    statement_result,
)
from router.core._types import UNPARSEABLE, Classification, Effect, Hint, Route
from router.errors import ConfigurationError

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_MAX_LENGTH",
    "REFUSED_BY_A_REPLICA",
    "Classifier",
    "classify",
    "default_classifier",
]

DEFAULT_CACHE_SIZE: Final = 4096
DEFAULT_MAX_LENGTH: Final = 1_000_000
# Longer strings are classified every time rather than kept alive by the cache.
MAX_CACHED_LENGTH: Final = 16_384
_MEMO_LIMIT: Final = 10_000
_REFUSED_LIMIT: Final = 1024
#: The start of the reason of a statement :meth:`Classifier.learn_refusal` remembers.
REFUSED_BY_A_REPLICA: Final = "a replica refused it before"

_NO_EFFECTS: Final[frozenset[Effect]] = frozenset()
_NO_NAMES: Final[frozenset[str]] = frozenset()
_TX_SCOPED: Final = frozenset({Effect.SET_LOCAL, Effect.SAVEPOINT})
_VOLATILITY_NAMES: Final = {"i": "IMMUTABLE", "s": "STABLE"}


def _unparseable(hint: Hint | None = None) -> Classification:
    return Classification(Route.WRITE, _NO_EFFECTS, UNPARSEABLE, hint=hint)


def _names(entries: Iterable[str], field: str) -> frozenset[str]:
    if isinstance(entries, str):
        raise ConfigurationError(field, "must be a collection of function names, not one string")
    given: object = entries  # typed Iterable[str]; callers may pass anything
    if not isinstance(given, Iterable):
        kind = type(given).__name__
        raise ConfigurationError(field, f"must be a collection of function names, not a {kind}")
    names = list(entries)
    for name in names:
        if not isinstance(name, str) or not name.strip(". ") or name.count(".") > 1:
            raise ConfigurationError(field, f"{name!r} is not a function name or schema.name")
    return frozenset(names)


class _Engine:
    """Classification for one configuration (overrides + catalog); immutable once built."""

    __slots__ = ("_catalog", "_max_length", "_memo", "_read", "_read_bare", "_write", "_write_bare")

    def __init__(
        self,
        read: frozenset[str],
        write: frozenset[str],
        catalog: FunctionCatalog | None,
        max_length: int,
    ) -> None:
        self._read = read
        self._write = write
        self._read_bare = frozenset(name.rsplit(".", 1)[-1] for name in read)
        self._write_bare = frozenset(name.rsplit(".", 1)[-1] for name in write)
        self._catalog = catalog
        self._max_length = max_length
        self._memo: dict[tuple[str | None, str], FunctionRule] = {}

    def resolve(self, call: Call) -> FunctionRule:
        """The rule for one call: overrides, then pg_catalog's table, then the catalog."""
        key = (call.schema, call.name)
        rule = self._memo.get(key)
        if rule is None:
            rule = self._resolve(call)
            if call.name not in ARGUMENT_SENSITIVE:
                if len(self._memo) >= _MEMO_LIMIT:
                    self._memo.clear()  # bounded even if every statement names new functions
                self._memo[key] = rule
        return rule

    def _resolve(self, call: Call) -> FunctionRule:
        schema, name, display = call.schema, call.name, call.display
        if schema is None:
            if name in self._write_bare:
                return FunctionRule(Route.WRITE, _NO_EFFECTS, f"{name}() is in write_functions")
            if name in self._read_bare:
                return FunctionRule(Route.READ, _NO_EFFECTS, f"{name}() is in read_functions")
        else:
            if display in self._write or name in self._write:
                return FunctionRule(Route.WRITE, _NO_EFFECTS, f"{display}() is in write_functions")
            if display in self._read or name in self._read:
                return FunctionRule(Route.READ, _NO_EFFECTS, f"{display}() is in read_functions")
        if schema is None or schema == "pg_catalog":
            rule = builtin_rule(name, call.args)
            if rule is not None:
                return rule
        volatility = None if self._catalog is None else self._catalog.volatility(name, schema)
        if volatility in _VOLATILITY_NAMES:
            return FunctionRule(
                Route.READ, _NO_EFFECTS, f"{display}() is {_VOLATILITY_NAMES[volatility]}"
            )
        if volatility == "v":
            return FunctionRule(Route.WRITE, _NO_EFFECTS, f"volatile function {display}()")
        missing = "no function catalog loaded" if self._catalog is None else "not in the catalog"
        return FunctionRule(Route.WRITE, _NO_EFFECTS, f"unknown function {display}() ({missing})")

    def classify(self, sql: str) -> Classification:
        """Never raises: anything unexpected sends the string to the primary."""
        try:
            return self._classify(sql, fast=True)
        except RecursionError:
            return Classification(Route.WRITE, _NO_EFFECTS, "too deeply nested to classify")
        except Exception as exc:  # the contract is "never raises"; WRITE is always safe
            return Classification(
                Route.WRITE, _NO_EFFECTS, f"classifier error ({type(exc).__name__})"
            )

    def _classify(self, sql: str, *, fast: bool) -> Classification:
        if not isinstance(sql, str) or "\x00" in sql:
            # libpg_query reads a C string: it would silently stop at the NUL.
            return _unparseable()
        if len(sql) > self._max_length:
            return Classification(Route.WRITE, _NO_EFFECTS, "too long to classify")
        hint = None
        text = sql
        if "%" in sql or ":" in sql:
            lexed = lex(sql)
            text = lexed.sql
            if lexed.hints:
                hint = Hint.PRIMARY if Hint.PRIMARY in lexed.hints else Hint.REPLICA
        try:
            parsed = parse_sql_json(text)
        except Exception:  # pglast.parser.ParseError, or UnicodeEncodeError for lone surrogates
            return _unparseable(hint)
        if parsed.endswith('"stmts":[]}'):
            return _unparseable(hint)
        results: list[StatementResult] | None = None
        # Without a ";" the text holds one statement at most; with one, count them.
        if fast and (";" not in text or parsed.count('{"stmt":') == 1):
            results = self._fast(parsed, text)
        if results is None:
            document = json.loads(parsed)
            results = [statement_result(raw.get("stmt"), self.resolve) for raw in document["stmts"]]
        result = _combine(results)
        catalog = self._catalog
        if result.route is Route.READ and catalog is not None and catalog.relations:
            refused = _refused_relation(parsed, catalog)
            if refused is not None:
                result = dataclasses.replace(
                    result,
                    route=Route.WRITE,
                    reason=f"reads {refused}: standbys refuse it",
                    standby_refuses=True,
                )
        return _with_hint(result, hint)

    def _fast(self, parsed: str, sql: str) -> list[StatementResult] | None:
        """One SELECT or DML statement decided from the JSON text, or ``None`` (use the tree)."""
        start = parsed.find('{"stmt":{"') + 10
        kind = parsed[start : parsed.find('"', start)]
        if kind == "SelectStmt":
            facts = text_facts(parsed, sql)
            return None if facts is None else [query_result(facts, self.resolve)]
        if kind in DML_KINDS:
            calls = text_calls(parsed)
            return None if calls is None else [dml_result(kind, calls, self.resolve)]
        return None


#: A relation reference in libpg_query's JSON: optional catalog and schema, then its name.
_RANGE_VAR: Final = re.compile(
    r'"RangeVar":\{(?:"catalogname":"(?:[^"\\]|\\.)*",)?'
    r'(?:"schemaname":"((?:[^"\\]|\\.)*)",)?"relname":"((?:[^"\\]|\\.)*)"'
)


def _refused_relation(parsed: str, catalog: FunctionCatalog) -> str | None:
    """Why a relation the statement (pglast JSON *parsed*) names cannot be read on a standby,
    or ``None``. A CTE named like such a relation counts too: the safe side."""
    if '"RangeVar":' not in parsed:
        return None
    for match in _RANGE_VAR.finditer(parsed):
        schema, name = match.group(1), match.group(2)
        if "\\" in name or (schema and "\\" in schema):
            name = json.loads(f'"{name}"')
            schema = json.loads(f'"{schema}"') if schema else schema
        why = catalog.relation(name, schema or None)
        if why is not None:
            return why
    return None


def _combine(results: list[StatementResult]) -> Classification:
    """Fold statements into one decision: WRITE if any is; effects are the net effect."""
    if len(results) == 1 and not results[0].tx_begin and not results[0].tx_end:
        only = results[0]
        return Classification(
            only.route,
            frozenset(only.effects) if only.effects else _NO_EFFECTS,
            only.reason,
            frozenset([call.display for call in only.calls]) if only.calls else _NO_NAMES,
            only.readonly,
            only.isolation,
            None,
            1,
            only.changes_catalog,
            opaque=only.opaque,
        )
    effects: set[Effect] = set()
    functions: set[str] = set()
    opened = False
    readonly: bool | None = None
    isolation: str | None = None
    first_write: StatementResult | None = None
    changes_catalog = opaque = False
    for result in results:
        changes_catalog = changes_catalog or result.changes_catalog
        opaque = opaque or result.opaque
        if result.route is Route.WRITE and first_write is None:
            first_write = result
        if result.tx_end:
            effects -= _TX_SCOPED
            if opened:
                opened = False
            else:
                effects.add(Effect.TX_END)
            readonly = isolation = None
        if result.tx_begin:
            opened = True
        if result.tx_begin or Effect.SET_LOCAL in result.effects:
            readonly = result.readonly if result.readonly is not None else readonly
            isolation = result.isolation if result.isolation is not None else isolation
        effects |= result.effects
        functions.update(call.display for call in result.calls)
    if opened:
        effects.add(Effect.TX_BEGIN)
    if first_write is not None:
        route, reason = Route.WRITE, first_write.reason
    else:
        route = Route.READ
        reason = results[0].reason if len(results) == 1 else f"{len(results)} read-only statements"
    if len(results) > 1 and first_write is not None:
        reason = f"statement {results.index(first_write) + 1} of {len(results)}: {reason}"
    return Classification(
        route,
        frozenset(effects),
        reason,
        frozenset(functions),
        readonly,
        isolation,
        None,
        len(results),
        changes_catalog,
        opaque=opaque,
    )


def _with_hint(result: Classification, hint: Hint | None) -> Classification:
    if hint is None:
        return result
    route, reason = result.route, result.reason
    if hint is Hint.PRIMARY:
        reason = "router:primary hint" if route is Route.READ else f"{reason} (router:primary hint)"
        route = Route.WRITE
    elif route is Route.READ:
        reason = f"{reason} (router:replica hint)"
    else:
        reason = f"{reason} (router:replica hint ignored: not a read)"
    return Classification(
        route,
        result.effects,
        reason,
        result.functions,
        result.readonly_begin,
        result.isolation,
        hint,
        result.statements,
        result.changes_catalog,
        result.standby_refuses,
        result.opaque,
    )


class Classifier:
    """Classifies SQL strings, caching the result per string in a bounded LRU.

    ``read_functions`` / ``write_functions``
        Function names (``"name"`` or ``"schema.name"``, as stored in ``pg_proc``: unquoted
        identifiers are lower case) whose route is forced; they win over everything else. A
        name in both raises ``ConfigurationError``.
    ``catalog``
        A :class:`FunctionCatalog` for user functions: STABLE / IMMUTABLE → READ; VOLATILE or
        absent → WRITE. Without one, every function that is not a pg_catalog built-in is WRITE.
    ``cache_size``
        How many distinct strings to remember (0 disables the cache). Strings longer than
        16 KiB are never cached (a bounded count of bounded strings bounds the memory).
    ``max_length``
        Longer strings are WRITE without parsing ("too long to classify").

    Thread-safe: the cache is ``functools.lru_cache``; :meth:`set_catalog` swaps in a new engine
    and a new cache at once, so no result computed from an old catalog survives the swap.
    """

    __slots__ = (
        "_cache_size",
        "_cached",
        "_engine",
        "_max_length",
        "_read",
        "_refused",
        "_write",
        "generation",
    )

    def __init__(
        self,
        *,
        read_functions: Iterable[str] = (),
        write_functions: Iterable[str] = (),
        catalog: FunctionCatalog | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        self._read = _names(read_functions, "read_functions")
        self._write = _names(write_functions, "write_functions")
        both = self._read & self._write
        if both:
            raise ConfigurationError("read_functions", f"also in write_functions: {sorted(both)}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError("cache_size", f"must be an int >= 0, got {cache_size!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ConfigurationError("max_length", f"must be an int >= 1, got {max_length!r}")
        if catalog is not None and not isinstance(catalog, FunctionCatalog):
            raise ConfigurationError("catalog", f"must be a FunctionCatalog, got {catalog!r}")
        self._cache_size = cache_size
        self._max_length = max_length
        self._refused: dict[str, Classification] = {}
        self._engine: _Engine
        self._cached: Callable[[str], Classification]
        #: Rises whenever a string's classification may change (a catalog set, a refusal
        #: learnt): a cache of classifications outside this one is good while it is the same.
        self.generation = 0
        self.set_catalog(catalog)

    @property
    def catalog(self) -> FunctionCatalog | None:
        return self._engine._catalog

    def set_catalog(self, catalog: FunctionCatalog | None) -> None:
        """Use ``catalog`` (or none) from now on and forget every cached result."""
        engine = _Engine(self._read, self._write, catalog, self._max_length)
        cached: Callable[[str], Classification] = engine.classify
        if self._cache_size:
            cached = functools.lru_cache(maxsize=self._cache_size)(engine.classify)
        self._engine, self._cached = engine, cached
        self.generation += 1

    def classify(self, sql: str) -> Classification:
        """Classify ``sql``; never raises. A repeated string costs one cache lookup."""
        if self._refused:
            found = self._refused.get(sql)
            if found is not None:
                return found
        if type(sql) is str and len(sql) <= MAX_CACHED_LENGTH:
            return self._cached(sql)
        return self._engine.classify(sql)

    def learn_refusal(self, sql: str, why: str) -> Classification:
        """Remember that a standby refused *sql* for a reason that cannot change there
        (a view or function that writes, an unlogged relation the catalog did not know):
        from now on it is a WRITE whose reason says so. Bounded; survives catalog reloads."""
        found = dataclasses.replace(
            self.classify(sql),
            route=Route.WRITE,
            reason=f"{REFUSED_BY_A_REPLICA}: {why}",
            standby_refuses=True,
        )
        if len(self._refused) >= _REFUSED_LIMIT:
            del self._refused[next(iter(self._refused))]
        self._refused[sql] = found
        self.generation += 1
        return found

    def cache_info(self) -> Any:
        """``functools`` cache statistics (hits, misses, maxsize, currsize), or ``None``."""
        info = getattr(self._cached, "cache_info", None)
        return info() if info is not None else None

    def cache_clear(self) -> None:
        clear = getattr(self._cached, "cache_clear", None)
        if clear is not None:
            clear()

    def _uncached(self, sql: str, *, fast: bool = True) -> Classification:
        """Classify without the cache; ``fast=False`` skips the JSON-text shortcut (for tests)."""
        return self._engine._classify(sql, fast=fast)

    def __repr__(self) -> str:
        catalog = "none" if self.catalog is None else f"{len(self.catalog)} functions"
        return (
            f"Classifier(read_functions={sorted(self._read)}, "
            f"write_functions={sorted(self._write)}, catalog={catalog}, "
            f"cache_size={self._cache_size})"
        )


_DEFAULT: Final = Classifier()


def default_classifier() -> Classifier:
    """The classifier behind :func:`classify`; give it a catalog with ``set_catalog``."""
    return _DEFAULT


def classify(sql: str) -> Classification:
    """Classify ``sql`` with the default :class:`Classifier`. Never raises."""
    return _DEFAULT.classify(sql)
