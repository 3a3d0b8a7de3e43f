"""Per-statement rules: one parsed statement (pglast JSON) → route, effects, reason.

READ only if a hot standby accepts the statement (PostgreSQL docs, "Hot Standby", 26.4) and it
leaves no state the application expects to keep. Anything not named here is WRITE.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from router.core._facts import DML_NODES, Call, Facts, tree_facts
from router.core._functions import FunctionRule
from router.core._types import Effect, Route

__all__ = [
    "DML_KINDS",
    "Resolver",
    "StatementResult",
    "dml_result",
    "query_result",
    "statement_result",
    "with_calls",
]

Resolver = Callable[[Call], FunctionRule]

_CURSOR_OPT_HOLD: Final = 0x0020
_LOCK_NAMES: Final = {
    "LCS_FORUPDATE": "FOR UPDATE",
    "LCS_FORNOKEYUPDATE": "FOR NO KEY UPDATE",
    "LCS_FORSHARE": "FOR SHARE",
    "LCS_FORKEYSHARE": "FOR KEY SHARE",
}
_DML_NAMES: Final = {
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
}
DML_KINDS: Final = frozenset(_DML_NAMES)
_COMMAND_NAMES: Final = {
    "CreateStmt": "CREATE TABLE",
    "IndexStmt": "CREATE INDEX",
    "ViewStmt": "CREATE VIEW",
    "RuleStmt": "CREATE RULE",
    "DefineStmt": "CREATE",
    "CompositeTypeStmt": "CREATE TYPE",
    "CreateSeqStmt": "CREATE SEQUENCE",
    "CheckPointStmt": "CHECKPOINT",
    "TruncateStmt": "TRUNCATE",
    "DoStmt": "DO",
    **_DML_NAMES,
}
# Session-level forms of these still only last for the current transaction.
_TRANSACTION_GUCS: Final = frozenset(
    {"transaction_read_only", "transaction_isolation", "transaction_deferrable"}
)
_FALSE_WORDS: Final = frozenset({"false", "off", "0", "no", "n", "f"})
_TRUE_WORDS: Final = frozenset({"true", "on", "1", "yes", "y", "t"})


@dataclass(slots=True)
class StatementResult:
    """One statement's decision. ``effects`` never holds ``TX_BEGIN`` / ``TX_END``."""

    route: Route
    reason: str
    effects: set[Effect] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)
    tx_begin: bool = False
    tx_end: bool = False
    readonly: bool | None = None
    isolation: str | None = None
    changes_catalog: bool = False
    #: Code the router cannot see into (DO, CALL): it may leave session state.
    opaque: bool = False


def _read(reason: str, *effects: Effect) -> StatementResult:
    return StatementResult(Route.READ, reason, set(effects))


def _write(reason: str, *effects: Effect) -> StatementResult:
    return StatementResult(Route.WRITE, reason, set(effects))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _command_name(kind: str) -> str:
    name = _COMMAND_NAMES.get(kind)
    if name is None:
        name = " ".join(re.findall(r"[A-Z][a-z]*", kind.removesuffix("Stmt"))).upper()
    return name or kind


def _value(node: Any) -> Any:
    """A constant from a ``DefElem`` arg or ``A_Const``: str, int, bool, or ``None``."""
    if not isinstance(node, dict):
        return None
    if "A_Const" in node:
        node = node["A_Const"]
    for key in ("sval", "ival", "boolval"):
        inner = node.get(key)
        if isinstance(inner, dict):
            return inner.get(key, {"sval": "", "ival": 0, "boolval": False}[key])
    for key, inner_key in (("String", "sval"), ("Integer", "ival"), ("Boolean", "boolval")):
        inner = node.get(key)
        if isinstance(inner, dict):
            return inner.get(inner_key, {"sval": "", "ival": 0, "boolval": False}[inner_key])
    return None


def _truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return None


def _transaction_modes(options: Any, result: StatementResult) -> None:
    """Read ``READ ONLY`` / ``ISOLATION LEVEL`` options; refuse what a standby refuses."""
    for item in options if isinstance(options, list) else ():
        elem = item.get("DefElem", {}) if isinstance(item, dict) else {}
        name = elem.get("defname")
        value = _value(elem.get("arg"))
        if name == "transaction_read_only":
            result.readonly = _truth(value) is not False
        elif name == "transaction_isolation":
            result.isolation = str(value).lower() if value is not None else None
    if result.readonly is False:
        result.route = Route.WRITE
        result.reason = "READ WRITE transaction: standbys refuse it"
    elif result.isolation == "serializable":
        result.route = Route.WRITE
        result.reason = "SERIALIZABLE isolation: standbys refuse it"


def _transaction(node: dict[str, Any]) -> StatementResult:
    kind = node.get("kind", "")
    if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
        result = _read("BEGIN")
        result.tx_begin = True
        _transaction_modes(node.get("options"), result)
        return result
    if kind in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK"):
        result = _read("COMMIT" if kind == "TRANS_STMT_COMMIT" else "ROLLBACK")
        result.tx_end = True
        result.tx_begin = bool(node.get("chain"))
        return result
    if kind in ("TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"):
        return _read("savepoint command", Effect.SAVEPOINT)
    result = _write("two-phase commit command runs on the primary")
    result.tx_end = True
    return result


def _variable_set(node: dict[str, Any]) -> StatementResult:
    kind = node.get("kind", "")
    name = str(node.get("name", "")).lower()
    args = _list(node.get("args"))
    if kind == "VAR_SET_MULTI" and name == "transaction":
        result = _read("SET TRANSACTION", Effect.SET_LOCAL)
        _transaction_modes(args, result)
        return result
    if kind == "VAR_SET_MULTI" and name == "transaction snapshot":
        return _write("SET TRANSACTION SNAPSHOT imports a primary's snapshot", Effect.SET_LOCAL)
    if kind in ("VAR_RESET", "VAR_RESET_ALL"):
        return _write("RESET changes session settings", Effect.SET, Effect.PIN)
    if not node.get("is_local") and name not in _TRANSACTION_GUCS:
        return _write("SET changes a session setting", Effect.SET, Effect.PIN)
    result = _read("SET LOCAL" if node.get("is_local") else f"SET {name}", Effect.SET_LOCAL)
    value = _value(args[0]) if len(args) == 1 else None
    if name == "transaction_read_only":
        result.readonly = _truth(value) is not False
    elif name == "transaction_isolation":
        result.isolation = str(value).lower() if value is not None else "unknown"
    _transaction_modes([], result)
    if name == "transaction_isolation" and result.isolation == "unknown":
        result.route, result.reason = Route.WRITE, "isolation level not a constant"
    return result


def _option_on(options: Any, wanted: str) -> bool:
    for item in options if isinstance(options, list) else ():
        elem = item.get("DefElem", {}) if isinstance(item, dict) else {}
        if elem.get("defname") == wanted:
            # No argument means on; anything not clearly false counts as on (the safe side).
            return "arg" not in elem or _truth(_value(elem.get("arg"))) is not False
    return False


def query_result(facts: Facts, resolve: Resolver) -> StatementResult:
    """Decide a query (SELECT, VALUES, TABLE) from its facts."""
    effects: set[Effect] = set()
    writers: list[tuple[str, str]] = []
    for call in facts.calls:
        rule = resolve(call)
        effects |= rule.effects
        if rule.route is Route.WRITE:
            writers.append((call.display, rule.reason))
    if facts.temp_create or (facts.into and facts.temp_ref):
        effects.add(Effect.PIN)
    if facts.dml:
        node = next(node for node in DML_NODES if node in facts.dml)
        reason = f"data-modifying {_DML_NAMES[node]} inside a query"
    elif facts.locks:
        lock = next((n for s, n in _LOCK_NAMES.items() if s in facts.locks), "FOR UPDATE")
        reason = f"row lock {lock}"
    elif facts.into:
        reason = "SELECT INTO creates a table"
    elif facts.temp_ref:
        reason = "reads a temporary table of the session"
    elif writers:
        reason = min(writers)[1]
    else:
        reason = "read-only query"
        if Effect.SET_LOCAL in effects:
            reason = "read-only query; set_config(..., true) is local to the transaction"
        return StatementResult(Route.READ, reason, effects, facts.calls)
    return StatementResult(Route.WRITE, reason, effects, facts.calls)


def with_calls(result: StatementResult, calls: list[Call], resolve: Resolver) -> StatementResult:
    """Add the effects and names of the calls a statement makes when it runs."""
    for call in calls:
        result.effects |= resolve(call).effects
    result.calls = calls
    return result


def dml_result(kind: str, calls: list[Call], resolve: Resolver) -> StatementResult:
    """INSERT / UPDATE / DELETE / MERGE making ``calls``."""
    return with_calls(_write(f"{_DML_NAMES[kind]} writes rows"), calls, resolve)


def _with_calls(result: StatementResult, node: Any, resolve: Resolver) -> StatementResult:
    facts = tree_facts(node)
    if facts.temp_create:
        result.effects.add(Effect.PIN)
    return with_calls(result, facts.calls, resolve)


#: DDL that always changes what the router knows from the catalog.
_CATALOG_DDL: Final = frozenset(
    {
        "CreateFunctionStmt",
        "AlterFunctionStmt",
        "ViewStmt",
        "DropStmt",
        "RenameStmt",
        "AlterObjectSchemaStmt",
    }
)


_PERSISTENCE_CHANGES: Final = frozenset({"AT_SetLogged", "AT_SetUnLogged"})


def _changes_catalog(kind: str, node: dict[str, Any]) -> bool:
    """Whether DDL *kind* changes functions' volatility, views or unlogged relations."""
    if kind in _CATALOG_DDL:
        return True
    if kind == "CreateStmt":
        return _dict(_dict(node.get("relation"))).get("relpersistence") == "u"
    if kind == "AlterTableStmt":
        subtypes = {
            _dict(_dict(cmd).get("AlterTableCmd")).get("subtype") for cmd in _list(node.get("cmds"))
        }
        return not subtypes.isdisjoint(_PERSISTENCE_CHANGES)
    return False


def _ddl(kind: str, node: dict[str, Any]) -> StatementResult:
    result = _write(f"{_command_name(kind)}: standbys refuse it")
    result.changes_catalog = _changes_catalog(kind, node)
    facts = tree_facts(node)
    funcname = node.get("funcname") if kind == "CreateFunctionStmt" else None
    temp_function = len(_list(funcname)) > 1 and "pg_temp" in str(_list(funcname)[0])
    if facts.temp_create or facts.temp_ref or temp_function:
        result.effects.add(Effect.PIN)
        result.reason = f"{_command_name(kind)} of a temporary object"
    return result


def statement_result(stmt: Any, resolve: Resolver) -> StatementResult:
    """Decide one statement node, ``{"SelectStmt": {...}}`` or the like."""
    if not isinstance(stmt, dict) or len(stmt) != 1:
        return _write("unexpected parse tree")
    ((kind, node),) = stmt.items()
    if not isinstance(node, dict):
        node = {}
    if kind == "SelectStmt":
        return query_result(tree_facts(node), resolve)
    if kind in _DML_NAMES:
        return dml_result(kind, tree_facts(node).calls, resolve)
    if kind == "VariableShowStmt":
        return _read("SHOW")
    if kind == "TransactionStmt":
        return _transaction(node)
    if kind == "VariableSetStmt":
        return _variable_set(node)
    if kind == "ConstraintsSetStmt":
        return _read("SET CONSTRAINTS", Effect.SET_LOCAL)
    if kind in ("FetchStmt", "ClosePortalStmt"):
        return _read("cursor command")
    if kind == "ExplainStmt":
        query = node.get("query")
        is_execute = isinstance(query, dict) and "ExecuteStmt" in query
        if _option_on(node.get("options"), "analyze") or is_execute:
            inner = statement_result(query, resolve)
            inner.reason = f"EXPLAIN ANALYZE runs it: {inner.reason}"
            return inner
        return _read("EXPLAIN without ANALYZE")
    if kind == "DeclareCursorStmt":
        inner = statement_result(node.get("query"), resolve)
        if int(node.get("options", 0)) & _CURSOR_OPT_HOLD:
            inner.route = Route.WRITE
            inner.reason = "DECLARE ... WITH HOLD keeps a cursor in the session"
            inner.effects.add(Effect.PIN)
        return inner
    if kind == "CopyStmt":
        if node.get("is_from"):
            return _with_calls(_write("COPY FROM writes rows"), node, resolve)
        if node.get("filename") or node.get("is_program"):
            return _with_calls(_write("COPY TO a server file or program"), node, resolve)
        if "query" in node:
            inner = statement_result(node["query"], resolve)
            inner.reason = f"COPY ... TO STDOUT: {inner.reason}"
            return inner
        relation = _dict(node.get("relation"))
        if str(relation.get("schemaname", "")).startswith("pg_temp"):
            return _write("COPY of a temporary table of the session")
        return _read("COPY ... TO STDOUT")
    if kind == "CallStmt":
        result = _with_calls(_write("CALL runs a procedure"), node, resolve)
        result.opaque = True
        return result
    if kind == "DoStmt":
        result = _write("DO runs a code block")
        result.opaque = True
        return result
    if kind == "PrepareStmt":
        return _write("PREPARE keeps a statement in the session", Effect.PIN)
    if kind == "ExecuteStmt":
        return _write("EXECUTE of a prepared statement (contents unknown)")
    if kind == "DeallocateStmt":
        return _write("DEALLOCATE changes the session's prepared statements", Effect.PIN)
    if kind == "DiscardStmt":
        return _write("DISCARD changes session state", Effect.PIN)
    if kind == "ListenStmt":
        return _write("LISTEN: standbys refuse it; it lasts for the session", Effect.PIN)
    if kind == "UnlistenStmt":
        return _write("UNLISTEN belongs with the session's LISTEN", Effect.PIN)
    if kind == "NotifyStmt":
        return _write("NOTIFY: standbys refuse it")
    if kind == "LoadStmt":
        return _write("LOAD keeps a library in the session", Effect.PIN)
    if kind == "LockStmt":
        return _write("LOCK TABLE must lock on the primary")
    if kind == "CreateTableAsStmt":
        into = _dict(node.get("into"))
        result = _write(f"{_command_name(kind)} creates a table")
        if not into.get("skipData"):
            _with_calls(result, node.get("query"), resolve)
        if tree_facts(into).temp_create:
            result.effects.add(Effect.PIN)
            result.reason = "CREATE TEMP TABLE AS creates a temporary table"
        result.changes_catalog = _dict(_dict(into.get("rel"))).get("relpersistence") == "u"
        return result
    return _ddl(kind, node)
