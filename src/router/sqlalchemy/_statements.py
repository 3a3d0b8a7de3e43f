"""SQLAlchemy statements to classifications, without compiling on the common path.

The classifier reads SQL text. A SQLAlchemy statement has none until it is compiled, and
compiling costs more than the whole routed call may add, so:

- ``insert()`` / ``update()`` / ``delete()`` (``UpdateBase``) are writes: no text needed;
- ``text()`` carries its own text (``:name`` placeholders are normalised by the classifier);
- everything else (ORM and Core selects, lambda statements of the lazy loaders, ...) is
  compiled with the engines' dialect once per *statement shape*, keyed by SQLAlchemy's own
  cache key. The key is memoized on the statement and SQLAlchemy reuses it when it compiles
  the statement for execution, so a repeated shape costs a hash and a dict lookup. What
  makes a select a write (``FOR UPDATE``, ``nextval()``, a volatile function in a
  ``column_property``, a data-modifying CTE, a ``/* router:primary */`` prefix) is in the
  compiled text, so the classifier sees it.

Only the SQL text is cached here; the classification is asked for each time from the core's
classifier (itself cached per text), so a reloaded function catalog takes effect at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.lambdas import StatementLambdaElement

from router.core import Classification, Route

__all__ = ["DML", "FLUSH", "NO_STATEMENT", "StatementText", "classify_statement"]

DML: Final = Classification(Route.WRITE, frozenset(), "INSERT, UPDATE or DELETE statement")
FLUSH: Final = Classification(Route.WRITE, frozenset(), "ORM flush")
NO_STATEMENT: Final = Classification(
    Route.WRITE, frozenset(), "a connection asked for without a statement to classify"
)
#: Errors a statement may raise when compiled; SQLAlchemy raises them again when it
#: executes the statement, on the primary.
_COMPILE_ERRORS: Final = (SQLAlchemyError, NotImplementedError, TypeError, ValueError)


class StatementText:
    """The SQL text of statements as *dialect* compiles them, remembered per cache key.

    At most *size* texts are kept (0: none); the oldest goes first. Thread-safe.
    """

    __slots__ = ("_dialect", "_lock", "_size", "_texts")

    def __init__(self, dialect: Dialect, size: int) -> None:
        self._dialect = dialect
        self._size = size
        self._texts: dict[Any, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._texts)

    def of(self, clause: ClauseElement) -> str | None:
        """The SQL of *clause*; ``None`` when it does not compile (SQLAlchemy will say why
        when it runs it)."""
        keyed: ClauseElement = clause
        if isinstance(clause, StatementLambdaElement):
            # A lambda statement's own key is what SQLAlchemy computes (and memoizes); the
            # statement it stands for is compiled only on a miss.
            clause = clause._resolved
        elif isinstance(clause, FunctionElement):
            # Executed as SELECT fn(...); on its own it compiles to a bare call.
            keyed = clause = clause.select()
        key = keyed._generate_cache_key()
        if key is None:  # a construct SQLAlchemy itself cannot cache: compile each time
            return self._compile(clause)
        text = self._texts.get(key.key)
        if text is None:
            text = self._compile(clause)
            if text is not None and self._size:
                self._remember(key.key, text)
        return text

    def _compile(self, clause: ClauseElement) -> str | None:
        try:
            return clause.compile(dialect=self._dialect).string
        except _COMPILE_ERRORS:
            return None

    def _remember(self, key: Any, text: str) -> None:
        with self._lock:
            texts = self._texts
            if len(texts) >= self._size:
                del texts[next(iter(texts))]
            texts[key] = text


_UNCOMPILABLE: Final = Classification(
    Route.WRITE, frozenset(), "statement does not compile: the primary will say why"
)


def classify_statement(
    texts: StatementText,
    classify: Callable[[str], Classification],
    clause: ClauseElement,
) -> Classification:
    """Where *clause* may run: DML is a write, ``text()`` is classified by its text, any
    other statement by its compiled SQL (see the module docstring)."""
    if isinstance(clause, TextClause):
        return classify(clause.text)
    if isinstance(clause, UpdateBase):
        return DML
    text = texts.of(clause)
    return _UNCOMPILABLE if text is None else classify(text)
