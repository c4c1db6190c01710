"""OpenTelemetry, through the API only: a span attribute set and two instruments per decision.

With no SDK installed every call is a no-op; attribute work is gated on ``is_recording()``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics
from opentelemetry.trace import INVALID_SPAN, get_current_span

__all__ = ["Telemetry"]

_SCOPE = "kzai_guard"


class Telemetry:
    """Tracer and meters made once; :meth:`decision` is called per decision."""

    __slots__ = ("_attributes", "_counter", "_latency")

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._counter = meter.create_counter(
            "kzai_guard.decisions", unit="{decision}", description="Decisions by verdict"
        )
        self._latency = meter.create_histogram(
            "kzai_guard.decision.duration", unit="us", description="Guard time per decision"
        )
        self._attributes: dict[tuple[str, str, str], dict[str, Any]] = {}

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
            return None
        context = span.get_span_context()
        if not context.is_valid:
            return None
        if span.is_recording():
            span.set_attributes(attributes)
            span.set_attribute("kzai_guard.decision_id", decision_id)
        return f"{context.trace_id:032x}"
