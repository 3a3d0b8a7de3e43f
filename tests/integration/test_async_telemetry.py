"""Telemetry on real calls: the attributes are there; passwords and parameters never are."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import router
from router.testing import LocalCluster, router_config

pytestmark = [pytest.mark.integration]

PASSWORD = "pw-MARKER-7f3a9c"
PARAMETER = "param-MARKER-51b2"
_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process; every test here shares it, and the
    # exporter stops collecting when the module is done.
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    yield _EXPORTER
    _EXPORTER.clear()
    _EXPORTER.shutdown()


@pytest.fixture(scope="module")
def secret_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(replicas=1, password=PASSWORD) as cluster:
        yield cluster


@pytest.mark.asyncio
async def test_spans_say_where_and_why_and_keep_secrets(
    exporter: InMemorySpanExporter,
    secret_cluster: LocalCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    exporter.clear()
    config = router_config(secret_cluster, record_sql=True, monitor_interval=0.1)
    seen: list[str] = [repr(config), str(config)]
    async with router.AsyncRouter(config) as rt:
        seen.append(repr(rt))
        await rt.execute("CREATE TABLE s (v text)")
        await rt.execute("INSERT INTO s VALUES ($1)", PARAMETER)
        assert await rt.fetchval("SELECT count(*) FROM s WHERE v = $1", PARAMETER) in (0, 1)
        await rt.execute("CREATE UNIQUE INDEX ON s (v)")
        # The database's own error passes through unchanged (its DETAIL may quote the row:
        # that is the caller's to handle); the router's span records only its type.
        with pytest.raises(asyncpg.UniqueViolationError):
            await rt.execute("INSERT INTO s VALUES ($1)", PARAMETER)
        with pytest.raises(router.SessionStateError) as refused:
            await rt.execute("SET work_mem = '1MB'")
        seen.append(str(refused.value))
        seen.append(repr(rt.explain("SELECT 1")))
        seen.append(repr(rt.stats()))
    spans = exporter.get_finished_spans()
    assert spans
    by_route: dict[str, dict[str, object]] = {}
    for span in spans:
        attributes: dict[str, object] = dict(span.attributes or {})
        by_route.setdefault(str(attributes.get("router.route")), attributes)
        seen.append(repr(attributes))
        seen.extend(str(e.attributes) for e in span.events)
        if span.status.description:
            seen.append(span.status.description)
    write, read = by_route["write"], by_route["read"]
    assert write["router.node"] == "primary"
    assert write["router.role"] == "primary"
    assert write["router.reason"] == "classifier"
    assert write["db.system.name"] == "postgresql"
    assert write["server.address"] == "127.0.0.1"
    assert write["server.port"] == secret_cluster.primary.port
    assert write["db.namespace"] == "postgres"
    assert read["router.role"] in {"replica", "primary"}
    assert "$1" in str(read["db.query.text"])  # the SQL text, with placeholders, when enabled
    failed = [s for s in spans if s.status.description == "UniqueViolationError"]
    assert failed, "a failed call marks its span with the error type"
    seen.extend(record.getMessage() for record in caplog.records)
    everything = "\n".join(seen)
    assert PASSWORD not in everything
    assert PARAMETER not in everything


@pytest.mark.asyncio
async def test_sql_text_is_left_out_unless_asked_for(
    exporter: InMemorySpanExporter, secret_cluster: LocalCluster
) -> None:
    exporter.clear()
    async with router.AsyncRouter(router_config(secret_cluster)) as rt:
        await rt.fetchval("SELECT 42")
    spans = exporter.get_finished_spans()
    assert spans
    assert all("db.query.text" not in (s.attributes or {}) for s in spans)
