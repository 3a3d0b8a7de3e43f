"""A statement's classification kept on the statement object, and the engines' per-text
record of which texts leave session state: each used only where it is valid."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.sql import ClauseElement

from router.core import Classifier, FunctionCatalog, Route
from router.sqlalchemy._engines import _STATE_LEFT, discard_session_state
from router.sqlalchemy._statements import StatementText, classify_statement
from tests.unit.test_sqlalchemy_routing import DIALECTS, Harness, User


def _classify(texts: StatementText, classifier: Classifier, clause: ClauseElement) -> Route:
    return classify_statement(texts, classifier.classify, clause).route


def test_a_statement_derived_from_a_classified_one_is_classified_for_itself() -> None:
    """SQLAlchemy copies a statement's attributes into the statements it derives from it: a
    copy must not take the original's classification."""
    classifier = Classifier()
    texts = StatementText(DIALECTS[0], 100, classifier)
    read = select(User).where(User.id == 1)
    assert _classify(texts, classifier, read) is Route.READ
    assert _classify(texts, classifier, read) is Route.READ  # kept on the object
    assert "_router_classified" in read.__dict__
    assert _classify(texts, classifier, read.with_for_update()) is Route.WRITE
    locked = read._clone()
    locked._for_update_arg = read.with_for_update()._for_update_arg  # as the ORM's get() does
    assert _classify(texts, classifier, locked) is Route.WRITE
    volatile = read.add_columns(func.nextval("s"))
    assert _classify(texts, classifier, volatile) is Route.WRITE
    annotated = read._annotate({"x": 1})
    annotated._for_update_arg = locked._for_update_arg
    assert _classify(texts, classifier, annotated) is Route.WRITE
    assert _classify(texts, classifier, read) is Route.READ


def test_a_kept_classification_follows_the_classifier_and_the_factory() -> None:
    classifier = Classifier()
    texts = StatementText(DIALECTS[0], 100, classifier)
    lookup = select(func.app_lookup(User.id))  # an unknown function: a write
    raw = text("SELECT app_lookup(1)")
    assert _classify(texts, classifier, lookup) is Route.WRITE
    assert _classify(texts, classifier, raw) is Route.WRITE
    classifier.set_catalog(FunctionCatalog.from_rows([("public", "app_lookup", "s")]))
    assert _classify(texts, classifier, lookup) is Route.READ
    assert _classify(texts, classifier, raw) is Route.READ
    classifier.learn_refusal("SELECT app_lookup(1)", "unlogged")
    assert _classify(texts, classifier, raw) is Route.WRITE
    # Another factory's texts (its own classifier, here one without the catalog) do not
    # take this one's classification.
    other = Classifier()
    assert _classify(StatementText(DIALECTS[0], 100, other), other, lookup) is Route.WRITE


def test_a_shape_seen_before_is_answered_from_its_record_and_only_a_classified_one() -> None:
    """A statement built anew per call (the ORM's get() does) finds its shape's
    classification by SQLAlchemy's cache key (classify_statement's own frame), while the
    classifier's generation holds; a record of the text alone (StatementText.of) is not
    taken for one."""
    classifier = Classifier()
    texts = StatementText(DIALECTS[0], 100, classifier)

    def fresh() -> ClauseElement:
        return select(func.app_lookup(User.id)).where(User.id == 3)

    assert texts.of(fresh()) is not None  # the text alone is kept: no classification yet
    assert _classify(texts, classifier, fresh()) is Route.WRITE  # unknown function
    assert _classify(texts, classifier, fresh()) is Route.WRITE  # from the record
    classifier.set_catalog(FunctionCatalog.from_rows([("public", "app_lookup", "s")]))
    assert _classify(texts, classifier, fresh()) is Route.READ
    assert _classify(texts, classifier, fresh()) is Route.READ


def test_a_routed_session_routes_a_repeated_statement_and_its_derivatives() -> None:
    h = Harness()
    try:
        s = h.Session()
        read = select(User).where(User.id == 7)
        assert h.node(s, read) in {"r1", "r2"}
        s.rollback()
        assert h.node(s, read) in {"r1", "r2"}
        s.rollback()
        assert h.node(s, read.with_for_update()) == "p"
        s.close()
    finally:
        h.close()


def _context() -> Any:
    return SimpleNamespace(root_connection=SimpleNamespace(info={}))


def test_texts_that_leave_session_state_are_marked_each_time() -> None:
    """The per-text record answers a repeated text as the classifier did; the pool's reset
    listener comes with the first connection to need it."""
    h = Harness()
    engine = create_engine("postgresql+psycopg://app@x.invalid/app")
    try:
        discard_session_state(engine, h.core.engine, asyncpg=False)
        (do_execute,) = engine.dialect.dispatch.do_execute
        assert not engine.pool.dispatch.reset
        for _ in range(3):
            plain = _context()
            do_execute(None, "SELECT 1", {}, plain)
            assert _STATE_LEFT not in plain.root_connection.info
            assert not engine.pool.dispatch.reset
        for _ in range(3):
            setting = _context()
            do_execute(None, "SET work_mem = '8MB'", {}, setting)
            assert setting.root_connection.info[_STATE_LEFT] is True
            assert len(list(engine.pool.dispatch.reset)) == 1
    finally:
        engine.dispose()
        h.close()


class _Counting:
    """A classifier that counts what it is asked."""

    def __init__(self) -> None:
        self.real = Classifier()
        self.asked: list[str] = []

    @property
    def generation(self) -> int:
        return self.real.generation

    def classify(self, sql: str) -> Any:
        self.asked.append(sql)
        return self.real.classify(sql)


def test_the_record_of_texts_is_asked_again_after_the_classifier_changes() -> None:
    h = Harness()
    counting = _Counting()
    routing = SimpleNamespace(config=h.core.engine.config, classifier=counting)
    engine = create_engine("postgresql+psycopg://app@x.invalid/app")
    try:
        discard_session_state(engine, routing, asyncpg=False)  # type: ignore[arg-type]
        (do_execute,) = engine.dialect.dispatch.do_execute
        setting = "SET work_mem = '8MB'"
        for sql in ("SELECT 1", setting, "SELECT 1", setting):
            do_execute(None, sql, {}, _context())
        assert counting.asked == ["SELECT 1", setting]
        counting.real.set_catalog(FunctionCatalog.from_rows([("public", "app_lookup", "s")]))
        again = _context()
        do_execute(None, setting, {}, again)
        assert again.root_connection.info[_STATE_LEFT] is True
        do_execute(None, setting, {}, _context())
        assert counting.asked == ["SELECT 1", setting, setting]
    finally:
        engine.dispose()
        h.close()
