"""OpenTelemetry, through the API only: a span per routed call and a few metrics.

With no SDK installed or configured, every call here is a no-op costing well under a
microsecond. Attributes never carry query parameters, passwords, or database error messages
(which can quote row values); SQL text only when ``record_sql`` is on.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.trace import (
    INVALID_SPAN,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
)

from router._version import __version__

__all__ = ["NO_SPAN", "GaugeSource", "NodeAddress", "Telemetry"]

#: The span of a statement while no tracer provider is installed (it records nothing).
NO_SPAN: Span = INVALID_SPAN

_tracer = trace.get_tracer("router", __version__)
_meter = metrics.get_meter("router", __version__)


class NodeAddress:
    """What telemetry says about a node: its name and where it is, never its credentials."""

    __slots__ = ("database", "host", "name", "port")

    def __init__(self, name: str, host: str, port: int, database: str) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.database = database


class Telemetry:
    def __init__(self, *, record_sql: bool) -> None:
        self.record_sql = record_sql
        self._checked_at = -math.inf
        self._tracing = False

    def tracing(self) -> bool:
        """Whether spans are made: a tracer provider (an SDK) is installed. Callers on the hot
        path test this before building :meth:`start`'s arguments (:data:`NO_SPAN` otherwise)."""
        # Without an SDK the API hands out no-op spans, but making one still costs a few
        # microseconds per call: look (at most once a second) whether a provider is set.
        now = time.monotonic()
        if now - self._checked_at > 1.0:
            self._checked_at = now
            self._tracing = not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
        return self._tracing

    def start(
        self,
        operation: str,
        node: NodeAddress,
        *,
        primary: bool,
        reason: str,
        detail: str,
        route: str,
        sql: str,
        extra: dict[str, Any] | None = None,
    ) -> Span:
        if not self.tracing():
            return INVALID_SPAN
        span = _tracer.start_span(f"router.{operation}", kind=SpanKind.CLIENT)
        if span.is_recording():
            attributes: dict[str, Any] = {
                "db.system.name": "postgresql",
                "db.operation.name": operation,
                "db.namespace": node.database,
                "server.address": node.host,
                "server.port": node.port,
                "router.node": node.name,
                "router.role": "primary" if primary else "replica",
                "router.reason": reason,
                "router.detail": detail,
                "router.route": route,
            }
            if self.record_sql:
                attributes["db.query.text"] = sql
            if extra:
                attributes.update(extra)
            span.set_attributes(attributes)
        return span

    @staticmethod
    def fail(span: Span, exc: BaseException) -> None:
        """Mark *span* failed by the exception's type only: its message may quote row values."""
        if span.is_recording():
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("error.type", type(exc).__qualname__)

    @staticmethod
    def watch(source: GaugeSource) -> None:
        """Report *source*'s replica lag and pool use while it lives."""
        _sources.add(source)


class GaugeSource(Protocol):
    def gauge_decisions(self) -> Iterable[tuple[str, str, int]]: ...
    def gauge_lag_bytes(self) -> Iterable[tuple[str, int]]: ...
    def gauge_pool_in_use(self) -> Iterable[tuple[str, int]]: ...


_sources: weakref.WeakSet[GaugeSource] = weakref.WeakSet()


def _observe(read: Callable[[GaugeSource], Iterable[tuple[str, int]]]) -> Any:
    def callback(_options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return [
            metrics.Observation(value, {"router.node": name})
            for source in list(_sources)
            for name, value in read(source)
        ]

    return callback


def _decisions(_options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    return [
        metrics.Observation(count, {"router.node": node, "router.reason": reason})
        for source in list(_sources)
        for node, reason, count in source.gauge_decisions()
    ]


# Counted by the router as it routes; read when a metrics SDK collects, never per call.
_meter.create_observable_counter(
    "router.decisions", [_decisions], unit="{decision}", description="decisions by node, reason"
)
_meter.create_observable_gauge(
    "router.replica.lag", [_observe(lambda s: s.gauge_lag_bytes())], unit="By"
)
_meter.create_observable_gauge(
    "router.pool.in_use", [_observe(lambda s: s.gauge_pool_in_use())], unit="{connection}"
)
