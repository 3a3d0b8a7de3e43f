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

The text is cached with its classification, which is used while the classifier's
``generation`` is the one it was made in: a reloaded function catalog or a refusal learnt
takes effect at once.
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

from router.core import Classification, Classifier, Route

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
    """The SQL text of statements as *dialect* compiles them, remembered per cache key, with
    its classification by *classifier* while the classifier's ``generation`` holds.

    At most *size* texts are kept (0: none); the oldest goes first. Thread-safe.
    """

    __slots__ = ("_classifier", "_dialect", "_lock", "_size", "_texts")

    def __init__(self, dialect: Dialect, size: int, classifier: Classifier | None = None) -> None:
        self._dialect = dialect
        self._size = size
        self._classifier = classifier
        # cache key -> (text, its classification or None, the classifier's generation then)
        self._texts: dict[Any, tuple[str, Classification | None, int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._texts)

    @property
    def classifier(self) -> Classifier | None:
        """The classifier whose ``generation`` a classification is valid in."""
        return self._classifier

    def of(self, clause: ClauseElement) -> str | None:
        """The SQL of *clause*; ``None`` when it does not compile (SQLAlchemy will say why
        when it runs it)."""
        key, clause = _keyed(clause)
        if key is None:  # a construct SQLAlchemy itself cannot cache: compile each time
            return self._compile(clause)
        found = self._texts.get(key)
        if found is not None:
            return found[0]
        text = self._compile(clause)
        if text is not None and self._size:
            self._remember(key, (text, None, 0))
        return text

    def classify(
        self, clause: ClauseElement, classify: Callable[[str], Classification]
    ) -> Classification:
        """*clause*'s classification by *classify* (the classifier's, or one that checks
        the text first): a repeated shape costs a dict lookup while the classifier's
        generation is the one it was classified in."""
        return self.classify_keyed(clause, classify)[0]

    def classify_keyed(
        self, clause: ClauseElement, classify: Callable[[str], Classification]
    ) -> tuple[Classification, bool]:
        """:meth:`classify`, and whether *clause* has a cache key (else it was compiled
        anew, as SQLAlchemy compiles it each time it runs it)."""
        classifier = self._classifier
        key, clause = _keyed(clause)
        if key is None or classifier is None:
            text = self.of(clause) if key is not None else self._compile(clause)
            return (_UNCOMPILABLE if text is None else classify(text)), key is not None
        found = self._texts.get(key)
        # Read before classifying: a catalog set meanwhile leaves the entry stale, not wrong.
        generation = classifier.generation
        if found is not None:
            text, cls, seen = found
            if cls is not None and seen == generation:
                return cls, True
        else:
            compiled = self._compile(clause)
            if compiled is None:
                return _UNCOMPILABLE, True
            text = compiled
        cls = classify(text)
        if self._size:
            self._remember(key, (text, cls, generation))
        return cls, True

    def _compile(self, clause: ClauseElement) -> str | None:
        try:
            return clause.compile(dialect=self._dialect).string
        except _COMPILE_ERRORS:
            return None

    def _remember(self, key: Any, entry: tuple[str, Classification | None, int]) -> None:
        with self._lock:
            texts = self._texts
            if key not in texts and len(texts) >= self._size:
                del texts[next(iter(texts))]
            texts[key] = entry


def _keyed(clause: ClauseElement) -> tuple[Any, ClauseElement]:
    """SQLAlchemy's cache key of *clause* (``None``: it has none) and the clause to compile."""
    kind = _KINDS.get(type(clause))
    if kind is None:
        kind = _KINDS[type(clause)] = _kind(clause)
    keyed: ClauseElement = clause
    if kind is _LAMBDA:
        # A lambda statement's own key is what SQLAlchemy computes (and memoizes); the
        # statement it stands for is compiled only on a miss.
        clause = clause._resolved  # type: ignore[attr-defined]
    elif kind is _FUNCTION:
        # Executed as SELECT fn(...); on its own it compiles to a bare call.
        keyed = clause = clause.select()  # type: ignore[attr-defined]
    key = keyed._generate_cache_key()
    return (None if key is None else key.key), clause


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
    # One dict lookup by the statement's class rather than a chain of isinstance() calls:
    # this runs for every statement a routed session executes.
    kind = _KINDS.get(type(clause))
    if kind is None:
        kind = _KINDS[type(clause)] = _kind(clause)
    if kind is _DML:
        return DML
    if kind is _LAMBDA or kind is _FUNCTION or kind is _SLOTTED:
        # Not kept on the statement: a lambda statement's closure decides the statement it
        # stands for; a bare function is classified as a SELECT of a copy of it.
        return texts.classify(clause, classify)
    # A statement executed again (applications keep their statements in module constants and
    # caches) finds its classification on itself: one attribute read. It is used only by the
    # object it was made for (SQLAlchemy copies a statement's attributes into every statement
    # it derives from it: ``where()``, ``with_for_update()``, ``_clone()``, annotations), by
    # this factory's texts (another factory may have another dialect or classifier), and while
    # the classifier's generation holds.
    # A statement SQLAlchemy cannot make a cache key for is compiled (and classified) anew
    # each time, as SQLAlchemy itself does.
    attributes = clause.__dict__
    memo = attributes.get(_MEMO)
    classifier = texts._classifier  # (the property's value, without its frame)
    # Read before classifying: a catalog set meanwhile leaves the memo stale, not wrong.
    generation = 0 if classifier is None else classifier.generation
    if memo is not None and memo[0] == id(clause) and memo[1] is texts and memo[2] == generation:
        cls: Classification = memo[3]
        return cls
    if kind is _TEXT:
        cls, kept = classify(clause.text), True  # type: ignore[attr-defined]
    elif (
        classifier is not None
        and (key := clause._generate_cache_key()) is not None
        and (found := texts._texts.get(key.key)) is not None
        and found[1] is not None
        and found[2] == generation
    ):
        # classify_keyed's answer for a shape classified before (a statement built anew per
        # call, as the ORM's get() does), in this frame; SQLAlchemy memoizes the cache key
        # on the statement, for its own compiled cache too. Anything else takes its steps.
        cls, kept = found[1], True
    else:
        cls, kept = texts.classify_keyed(clause, classify)
    if kept:
        attributes[_MEMO] = (id(clause), texts, generation, cls)
    return cls


#: Where a statement keeps its classification: ``(id(statement), texts, generation,
#: classification)``.
_MEMO: Final = "_router_classified"
_TEXT: Final = "text"
_DML: Final = "dml"
_LAMBDA: Final = "lambda"
_FUNCTION: Final = "function"
_OTHER: Final = "other"
#: A statement class whose instances have no ``__dict__`` (none of SQLAlchemy's own).
_SLOTTED: Final = "slotted"
#: Statement class -> how it is classified (classes are few and live as long as the process).
_KINDS: dict[type, str] = {}


def _kind(clause: ClauseElement) -> str:
    if isinstance(clause, TextClause):
        return _TEXT
    if isinstance(clause, UpdateBase):
        return _DML
    if isinstance(clause, StatementLambdaElement):
        return _LAMBDA
    if isinstance(clause, FunctionElement):
        return _FUNCTION
    return _OTHER if hasattr(clause, "__dict__") else _SLOTTED
