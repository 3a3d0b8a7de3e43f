"""Facts about a parse tree that decide a query's route, found two ways.

``tree_facts`` walks pglast's JSON parse tree once loaded (``json.loads``). ``text_facts`` finds
the same facts in the JSON *text* for a string made of one ``SELECT``, which skips ``json.loads``
and the walk, the bulk of a first-seen classification. It is sound because libpg_query writes
compact JSON in which a ``"`` inside a string value is always escaped: ``"key":`` can only be a
key. Whenever the text is not in the expected shape it returns ``None`` and the caller falls
back to the tree. The unit tests check that both agree on every case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["DML_NODES", "Call", "Facts", "text_calls", "text_facts", "tree_facts"]

DML_NODES: Final = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")
# Functions whose rule depends on their arguments: the text path cannot see those.
ARGUMENT_SENSITIVE: Final = frozenset({"set_config"})

_DECODER: Final = json.JSONDecoder()
_FUNCCALL: Final = '"FuncCall":'
_FUNCNAME: Final = '"FuncCall":{"funcname":['
_STRENGTH: Final = '"strength":"'
_DML_WORDS: Final = ("insert", "update", "delete", "merge")


@dataclass(frozen=True, slots=True)
class Call:
    """One function call: ``schema`` is ``None`` when unqualified; ``args`` only from the tree."""

    schema: str | None
    name: str
    args: list[Any] | None = field(default=None, compare=False, hash=False)

    @property
    def display(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


@dataclass(slots=True)
class Facts:
    """What a statement tree contains, as far as routing cares."""

    calls: list[Call] = field(default_factory=list)
    dml: set[str] = field(default_factory=set)
    locks: set[str] = field(default_factory=set)
    into: bool = False
    temp_create: bool = False
    temp_ref: bool = False


def _call(names: list[Any], args: list[Any] | None) -> Call | None:
    parts: list[str] = []
    for item in names:
        if not isinstance(item, dict) or not isinstance(item.get("String"), dict):
            return None
        parts.append(str(item["String"].get("sval", "")))
    if len(parts) == 1:
        return Call(None, parts[0], args)
    if len(parts) >= 2:
        # catalog.schema.name: the catalog is the current database, so schema.name decides.
        return Call(parts[-2], parts[-1], args)
    return None


def tree_facts(node: Any, facts: Facts | None = None) -> Facts:
    """Walk a loaded pglast JSON tree (iteratively: trees can be deep) and collect its facts."""
    facts = Facts() if facts is None else facts
    stack: list[Any] = [node]
    pop = stack.pop
    push = stack.append
    while stack:
        item = pop()
        if type(item) is list:
            stack.extend(item)
            continue
        if type(item) is not dict:
            continue
        for key, value in item.items():
            if key == "FuncCall" and type(value) is dict:
                args = value.get("args")
                call = _call(value.get("funcname") or [], args if type(args) is list else None)
                if call is not None:
                    facts.calls.append(call)
            elif key in DML_NODES:
                facts.dml.add(key)
            elif key == "lockingClause" and type(value) is list:
                for clause in value:
                    if type(clause) is dict and type(clause.get("LockingClause")) is dict:
                        facts.locks.add(str(clause["LockingClause"].get("strength", "")))
            elif key == "intoClause":
                facts.into = True
            elif key == "schemaname" and type(value) is str and value.startswith("pg_temp"):
                facts.temp_ref = True
            elif key == "relpersistence" and value == "t":
                facts.temp_create = True
            if type(value) is dict or type(value) is list:
                push(value)
    return facts


def text_calls(text: str) -> list[Call] | None:
    """The calls in pglast JSON ``text``, or ``None`` if one needs its arguments or looks odd."""
    calls: list[Call] = []
    start = text.find(_FUNCCALL)
    while start >= 0:
        if not text.startswith(_FUNCNAME, start):
            return None
        try:
            names, end = _DECODER.raw_decode(text, start + len(_FUNCNAME) - 1)
        except ValueError:
            return None
        call = _call(names, None) if type(names) is list else None
        if call is None or call.name in ARGUMENT_SENSITIVE:
            return None
        calls.append(call)
        start = text.find(_FUNCCALL, end)
    return calls


def text_facts(text: str, sql: str) -> Facts | None:
    """The facts of the pglast JSON ``text`` of one SELECT, ``sql``, or ``None`` to use the tree.

    Returns ``None`` when the text holds an ``INTO`` clause, a call whose rule depends on its
    arguments, or anything not in the shape expected. Every ``in`` over the JSON is a pass over
    text ~15x longer than the SQL, so each is guarded by a cheap test on the SQL: a keyword
    (``INTO``, ``FOR``, ``INSERT``...) can only appear in the tree if it is spelled in the SQL.
    """
    lowered = sql.lower()
    if "into" in lowered and '"intoClause":' in text:
        return None
    # Not guarded by "(" in the SQL: AT TIME ZONE, SIMILAR TO, SYSTEM_USER are calls too.
    calls = text_calls(text)
    if calls is None:
        return None
    facts = Facts(calls)
    if any(word in lowered for word in _DML_WORDS):
        for node in DML_NODES:
            if f'"{node}":' in text:
                facts.dml.add(node)
    if "for" in lowered and '"lockingClause":' in text:
        start = text.find(_STRENGTH)
        while start >= 0:
            start += len(_STRENGTH)
            end = text.find('"', start)
            facts.locks.add(text[start:end])
            start = text.find(_STRENGTH, end)
        if not facts.locks:
            return None
    # A schema name can also be spelled with Unicode escapes: U&"pg\005ftemp".
    if ("pg_temp" in lowered or "u&" in lowered) and '"schemaname":"pg_temp' in text:
        facts.temp_ref = True
    return facts
