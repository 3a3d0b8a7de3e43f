"""A small SQL lexer: driver placeholders to ``$n``, and routing hints from comments.

libpg_query parses ``$1`` but not psycopg's ``%s`` / ``%(name)s`` or SQLAlchemy's ``:name``, so
those are rewritten before parsing. The lexer knows just enough of PostgreSQL's lexical rules to
leave string constants (``'...'``, ``E'...'`` with backslash escapes), quoted identifiers, line
and nested block comments, and dollar-quoted strings alone. It assumes
``standard_conforming_strings = on`` (the default since PostgreSQL 9.1).

A mistake here can never make a write look like a read: substitutions never add or remove a quote
or a dollar-quote delimiter, so at worst a constant's text changes or the parse fails (WRITE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from router.core._types import Hint

__all__ = ["Lexed", "lex", "normalize_placeholders"]

# Characters that may start something the lexer cares about; everything else is copied as is.
_SPECIAL: Final = re.compile(r"""['"$%:/\-\\]""")
_HINTS: Final = {"router:primary": Hint.PRIMARY, "router:replica": Hint.REPLICA}
_PSYCOPG_FORMATS: Final = "sbt"


@dataclass(frozen=True, slots=True)
class Lexed:
    """``sql`` with placeholders as ``$n``; the hints found in comments; how many placeholders."""

    sql: str
    hints: frozenset[Hint]
    placeholders: int


def _ident(c: str) -> bool:
    """Can ``c`` continue an identifier (letters, digits, ``_``, ``$``, any non-ASCII)?"""
    return c.isalnum() or c in "_$" or c >= "\x80"


def _ident_start(c: str) -> bool:
    return c.isalpha() or c == "_" or c >= "\x80"


def _word(c: str) -> bool:
    # Python's ``\w``, which is what SQLAlchemy's bind-parameter pattern uses.
    return c.isalnum() or c == "_"


def _skip_string(sql: str, i: int, backslash_escapes: bool) -> int:
    """Index just past the constant whose body starts at ``i`` (``len(sql)`` if unterminated)."""
    n = len(sql)
    while True:
        quote = sql.find("'", i)
        if quote < 0:
            return n
        if backslash_escapes:
            backslash = sql.find("\\", i, quote)
            if backslash >= 0:
                i = backslash + 2
                continue
        if quote + 1 < n and sql[quote + 1] == "'":
            i = quote + 2
            continue
        return quote + 1


def _skip_quoted_identifier(sql: str, i: int) -> int:
    n = len(sql)
    while True:
        quote = sql.find('"', i)
        if quote < 0:
            return n
        if quote + 1 < n and sql[quote + 1] == '"':
            i = quote + 2
            continue
        return quote + 1


def _skip_block_comment(sql: str, i: int) -> int:
    """Index just past the (possibly nested) comment whose body starts at ``i``."""
    depth = 1
    n = len(sql)
    while depth:
        close = sql.find("*/", i)
        if close < 0:
            return n
        opening = sql.find("/*", i, close)
        if opening >= 0:
            depth += 1
            i = opening + 2
        else:
            depth -= 1
            i = close + 2
    return i


def _dollar_tag_end(sql: str, i: int) -> int:
    """If a dollar-quote delimiter starts at ``i`` (a ``$``), the index of its closing ``$``."""
    n = len(sql)
    j = i + 1
    if j < n and _ident_start(sql[j]):
        j += 1
        while j < n and sql[j] != "$" and _ident(sql[j]):
            j += 1
    return j if j < n and sql[j] == "$" else -1


def _hints_in(comment: str) -> set[Hint]:
    if "router:" not in comment.lower():
        return set()
    words = comment.lower().replace(",", " ").replace("*", " ").split()
    return {_HINTS[word] for word in words if word in _HINTS}


def lex(sql: str) -> Lexed:
    """Rewrite driver placeholders to ``$n`` and collect ``router:`` hints from comments.

    ``%s``, ``%b``, ``%t`` and ``%(name)s`` (psycopg), ``:name`` (SQLAlchemy, not ``::type``
    casts, not after a word character, ``\\:`` for a literal colon) become ``$1``, ``$2`` ...;
    a repeated name reuses its number; ``%%`` becomes ``%``. Never raises.
    """
    n = len(sql)
    out: list[str] = []
    last = 0
    i = 0
    hints: set[Hint] = set()
    numbers: dict[str, int] = {}
    count = 0
    search = _SPECIAL.search

    def param(start: int, end: int, name: str | None) -> None:
        nonlocal count, last
        if name is None or name not in numbers:
            count += 1
            if name is not None:
                numbers[name] = count
        number = count if name is None else numbers[name]
        before = " " if start > 0 and _ident(sql[start - 1]) else ""
        after = " " if end < n and _ident(sql[end]) else ""
        out.append(sql[last:start])
        out.append(f"{before}${number}{after}")
        last = end

    while True:
        match = search(sql, i)
        if match is None:
            break
        i = match.start()
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if c == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i == 1 or not _ident(sql[i - 2]))
            i = _skip_string(sql, i + 1, escapes)
        elif c == '"':
            i = _skip_quoted_identifier(sql, i + 1)
        elif c == "-" and nxt == "-":
            end = min((k for k in (sql.find("\n", i), sql.find("\r", i)) if k >= 0), default=n)
            hints |= _hints_in(sql[i + 2 : end])
            i = end
        elif c == "/" and nxt == "*":
            end = _skip_block_comment(sql, i + 2)
            hints |= _hints_in(sql[i + 2 : end])
            i = end
        elif c == "$":
            if i > 0 and _ident(sql[i - 1]):
                i += 1  # part of an identifier such as a$b
                continue
            tag_end = _dollar_tag_end(sql, i)
            if tag_end < 0:
                i += 1
                continue
            tag = sql[i : tag_end + 1]
            close = sql.find(tag, tag_end + 1)
            i = n if close < 0 else close + len(tag)
        elif c == "%":
            if nxt == "%":
                out.append(sql[last : i + 1])
                i += 2
                last = i
            elif nxt and nxt in _PSYCOPG_FORMATS:
                param(i, i + 2, None)
                i += 2
            elif nxt == "(":
                close = sql.find(")", i + 2)
                if 0 < close < n - 1 and sql[close + 1] in _PSYCOPG_FORMATS:
                    param(i, close + 2, "%" + sql[i + 2 : close])
                    i = close + 2
                else:
                    i += 1
            else:
                i += 1
        elif c == ":":
            if nxt == ":":
                while i < n and sql[i] == ":":
                    i += 1
                continue
            j = i + 1
            while j < n and _word(sql[j]):
                j += 1
            if j == i + 1 or (i > 0 and _word(sql[i - 1])):
                i += 1
                continue
            param(i, j, ":" + sql[i + 1 : j])
            i = j
        elif c == "\\" and nxt == ":":
            out.append(sql[last:i])
            last = i + 1
            i += 2
        else:
            i += 1
    if not out:
        return Lexed(sql, frozenset(hints), 0)
    out.append(sql[last:])
    return Lexed("".join(out), frozenset(hints), count)


def normalize_placeholders(sql: str) -> str:
    """``sql`` with psycopg and SQLAlchemy placeholders rewritten to PostgreSQL's ``$n``."""
    return lex(sql).sql
