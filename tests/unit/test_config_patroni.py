"""``nodes_from_patroni``: Patroni's member list to nodes (the fetch is injected; the real REST
API is exercised in tests/integration/test_patroni_cluster.py)."""

from __future__ import annotations

from typing import Any

import pytest

from router import ConfigurationError
from router.config._patroni import nodes_from_patroni

TEMPLATE = "postgresql://app:s3cret@/appdb?sslmode=disable"


def _serve(answers: dict[str, Any]) -> Any:
    def fetch(url: str, timeout: float) -> Any:
        answer = answers[url]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return fetch


def test_one_node_per_member_at_its_own_address_from_the_first_url_that_answers() -> None:
    body = {
        "members": [
            {"name": "pg1", "role": "leader", "host": "10.0.0.1", "port": 5433},
            {"name": "pg2", "role": "replica", "host": "10.0.0.2", "port": 5432},
        ]
    }
    fetch = _serve({"http://a:8008": OSError("refused"), "http://b:8008": body})
    nodes = nodes_from_patroni(["http://a:8008", "http://b:8008"], TEMPLATE, fetch=fetch)
    assert [(n.name, n.host, n.port, n.dbname, n.user) for n in nodes] == [
        ("pg1", "10.0.0.1", 5433, "appdb", "app"),
        ("pg2", "10.0.0.2", 5432, "appdb", "app"),
    ]
    assert all("s3cret" not in repr(n) for n in nodes)


@pytest.mark.parametrize(
    "body",
    [
        {"nope": []},
        {"members": ["pg1"]},
        {"members": [{"name": "pg1", "port": 5432}]},
        {"members": []},
    ],
    ids=["not-cluster", "member-not-object", "no-host", "no-member"],
)
def test_a_body_that_is_not_a_member_list_names_patroni_urls(body: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        nodes_from_patroni(["http://a:8008"], TEMPLATE, fetch=_serve({"http://a:8008": body}))
    assert caught.value.field == "patroni_urls"


def test_no_url_answering_says_what_each_answered_without_the_password() -> None:
    fetch = _serve({"http://a:8008": OSError("refused"), "http://b:8008": ValueError("not JSON")})
    with pytest.raises(ConfigurationError) as caught:
        nodes_from_patroni(["http://a:8008", "http://b:8008"], TEMPLATE, fetch=fetch)
    text = str(caught.value)
    assert caught.value.field == "patroni_urls"
    assert "http://a:8008: OSError: refused" in text
    assert "not JSON" in text
    assert "s3cret" not in text


def test_a_template_without_a_database_names_dsn() -> None:
    body = {"members": [{"name": "pg1", "host": "10.0.0.1", "port": 5432}]}
    with pytest.raises(ConfigurationError) as caught:
        nodes_from_patroni(
            ["http://a:8008"], "postgresql://app:s3cret@/", fetch=_serve({"http://a:8008": body})
        )
    assert caught.value.field == "dsn"
    assert "pg1" in str(caught.value)
    assert "s3cret" not in str(caught.value)
