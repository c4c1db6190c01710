"""OpenTelemetry, through the API only: a span attribute set and two instruments per decision,
and a counter of review tickets found due soon or overdue.

A decision made inside a span (a server span of the HTTP instrumentation, a batch job's own)
puts its policy, verdict, reason and decision id on that span. A decision made outside any
span gets a span of its own, ``kzai_guard.decision``, from its start to its verdict, when the
guard was given a tracer provider; without one it gets none (finding out whether a global
provider is set costs a microsecond per decision, which is why it is asked for). With no SDK
installed every call is a no-op; attribute work is gated on ``is_recording()``.
"""

from __future__ import annotations

from time import time_ns
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import INVALID_SPAN, get_current_span

__all__ = ["SPAN_NAME", "Telemetry"]

_SCOPE = "kzai_guard"
SPAN_NAME = "kzai_guard.decision"
"""The name of the span a decision outside any span gets."""


class Telemetry:
    """Tracer and meters made once; :meth:`decision` is called per decision."""

    __slots__ = ("_attributes", "_counter", "_deadlines", "_latency", "_tracer")

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._tracer = None if tracer_provider is None else tracer_provider.get_tracer(_SCOPE)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._counter = meter.create_counter(
            "kzai_guard.decisions", unit="{decision}", description="Decisions by verdict"
        )
        self._latency = meter.create_histogram(
            "kzai_guard.decision.duration", unit="us", description="Guard time per decision"
        )
        self._deadlines = meter.create_counter(
            "kzai_guard.reviews.deadline_findings",
            unit="{ticket}",
            description="Review tickets newly found due soon or overdue",
        )
        self._attributes: dict[tuple[str, str, str], dict[str, Any]] = {}

    def deadline_finding(self, policy: str, state: str) -> None:
        """Count one ticket newly found in a deadline state (``due_soon``, ``overdue``)."""
        self._deadlines.add(1, {"kzai_guard.policy": policy, "kzai_guard.deadline": state})

    def decision(
        self, policy: str, outcome: str, reason: str, decision_id: str, latency_us: int
    ) -> str | None:
        """Record one decision; returns the current trace id (hex) when there is one."""
        key = (policy, outcome, reason)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = {
                "kzai_guard.policy": policy,
                "kzai_guard.verdict": outcome,
                "kzai_guard.reason": reason,
            }
            self._attributes[key] = attributes
        self._counter.add(1, attributes)
        self._latency.record(latency_us, attributes)
        span = get_current_span()
        if span is INVALID_SPAN:
            if self._tracer is None:
                return None
            return self._own_span(self._tracer, attributes, decision_id, latency_us)
        context = span.get_span_context()
        if not context.is_valid:
            return None
        if span.is_recording():  # one call: the SDK validates and locks once per call
            span.set_attributes({**attributes, "kzai_guard.decision_id": decision_id})
        return f"{context.trace_id:032x}"

    @staticmethod
    def _own_span(
        tracer: trace.Tracer, attributes: dict[str, Any], decision_id: str, latency_us: int
    ) -> str | None:
        """The span of a decision made outside any; its trace id."""
        end = time_ns()
        span = tracer.start_span(
            SPAN_NAME,
            start_time=end - latency_us * 1000,
            attributes={**attributes, "kzai_guard.decision_id": decision_id},
        )
        span.end(end_time=end)
        context = span.get_span_context()
        return f"{context.trace_id:032x}" if context.is_valid else None
