"""The case table (``classify_cases.py``) against the classifier, both parse paths."""

from __future__ import annotations

import pytest

from router.core import Classification, Classifier, FunctionCatalog, Route, classify
from tests.unit.classify_cases import CASE_CATALOG_ROWS, CASES, READ_CASES, Case

PLAIN = Classifier()
WITH_CATALOG = Classifier(catalog=FunctionCatalog.from_rows(CASE_CATALOG_ROWS))


def _classifier(case: Case) -> Classifier:
    return WITH_CATALOG if case.catalog else PLAIN


def _check(case: Case, result: Classification) -> None:
    assert result.route is case.route, result
    assert result.effects == case.effects, result
    if case.reason is not None:
        assert case.reason in result.reason, result
    for name, expected in case.attrs.items():
        assert getattr(result, name) == expected, (name, result)


def test_the_table_is_big_and_ids_are_unique() -> None:
    assert len(CASES) >= 300
    assert len({case.id for case in CASES}) == len(CASES)
    assert len({(case.sql, case.catalog) for case in CASES}) == len(CASES)
    assert len(READ_CASES) >= 100


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(case: Case) -> None:
    _check(case, _classifier(case).classify(case.sql))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_json_text_shortcut_agrees_with_the_tree(case: Case) -> None:
    classifier = _classifier(case)
    assert classifier._uncached(case.sql, fast=True) == classifier._uncached(case.sql, fast=False)


def test_module_level_classify_uses_the_default_classifier() -> None:
    assert classify("SELECT 1").route is Route.READ
    assert classify("SELECT nextval('s')").route is Route.WRITE
    assert classify("SELECT 1") is classify("SELECT 1")
