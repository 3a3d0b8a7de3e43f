"""Shared by the fault and abuse suite: a cluster whose password is a marker, and a watch on it.

Every test here runs against :func:`fault_cluster`, a primary and two streaming replicas whose
superuser password is :data:`SECRET`. Whatever a test does, the autouse :func:`_secret_kept`
checks afterwards that the marker appears in no captured log record (message, arguments,
traceback) and no span (name, attributes, events, status) recorded while it ran.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router.testing import LocalCluster

SECRET = "pw-FAULTS-SECRET-c41d7e"
"""The cluster's password: it must never be seen outside a connection's handshake."""

#: Spans kept per test for the tests that read them; every span is checked for the marker.
KEEP_SPANS = 5_000


class _Spans(InMemorySpanExporter):
    """Checks every finished span for :data:`SECRET` as it ends, and keeps the first
    :data:`KEEP_SPANS` of a test: a load run ends tens of thousands of spans, and holding them
    all made every garbage collection of the test process scan them."""

    def __init__(self) -> None:
        super().__init__()
        self.leaked: list[str] = []
        self.dropped = 0
        self._kept = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            if any(leaks(t) for t in _span_text(span)):
                self.leaked.append(span.name)
        room = max(0, KEEP_SPANS - self._kept)
        self.dropped += max(0, len(spans) - room)
        self._kept += min(room, len(spans))
        return super().export(spans[:room]) if room else SpanExportResult.SUCCESS

    def clear(self) -> None:
        super().clear()
        self.leaked.clear()
        self.dropped = self._kept = 0


_EXPORTER = _Spans()


class _WhileWatched(SimpleSpanProcessor):
    """Exports only while a test of this suite runs: the processor stays on the process's
    tracer provider for the session (OpenTelemetry has no way to take one off), and every
    later test's spans would otherwise pile up in memory."""

    watching = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.watching:
            super().on_end(span)


_PROCESSOR = _WhileWatched(_EXPORTER)


def leaks(text: object) -> bool:
    """Whether the marker (or any long enough piece of it) is in ``text``'s string form."""
    s = str(text)
    return SECRET in s or SECRET[3:-3] in s


@pytest.fixture(scope="session")
def spans() -> Iterator[_Spans]:
    """The spans finished during each test (cleared before it; the first
    :data:`KEEP_SPANS` kept, all checked)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(_PROCESSOR)
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture(scope="session")
def fault_cluster() -> Iterator[LocalCluster]:
    """A primary + 2 streaming replicas of this suite's own, password :data:`SECRET`."""
    with LocalCluster(replicas=2, password=SECRET) as cluster:
        yield cluster


@pytest.fixture
def faulty(fault_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """:func:`fault_cluster` for a test that throws fault switches; undone afterwards."""
    before = fault_cluster.faults_used
    yield fault_cluster
    if fault_cluster.faults_used != before:
        fault_cluster.reset()


def _span_text(span: ReadableSpan) -> list[object]:
    seen: list[object] = [span.name, span.status.description]
    seen.extend(f"{k}={v!r}" for k, v in (span.attributes or {}).items())
    for event in span.events:
        seen.append(event.name)
        seen.extend(f"{k}={v!r}" for k, v in (event.attributes or {}).items())
    return seen


@pytest.fixture(autouse=True)
def _secret_kept(caplog: pytest.LogCaptureFixture, spans: _Spans) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    spans.clear()
    _PROCESSOR.watching = True
    try:
        yield
    finally:
        _PROCESSOR.watching = False
    for record in caplog.records:
        assert not leaks(record.getMessage()), f"password in a log record: {record.name}"
        assert not leaks(record.exc_text or ""), f"password in a logged traceback: {record.name}"
        if record.exc_info and record.exc_info[1] is not None:
            assert not leaks(record.exc_info[1]), f"password in a logged error: {record.name}"
    assert not spans.leaked, f"password in spans {sorted(set(spans.leaked))}"
