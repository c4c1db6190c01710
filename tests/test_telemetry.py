"""OpenTelemetry: span attributes, a span of its own outside any, trace id in the audit record,
the decisions counter."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.telemetry import SPAN_NAME
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN


@pytest.fixture
def tracing() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("kzai-guard-tests"), exporter
    provider.shutdown()


@pytest.fixture
def metering() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


@pytest.fixture
def guarded(
    metering: tuple[MeterProvider, InMemoryMetricReader],
) -> Iterator[tuple[kg.Guard, kg.MemorySink]]:
    guard, sink = memory_guard(
        [LOAN], contact="credit@example.kz", meter_provider=metering[0], subject=GATEWAY_SUBJECT
    )
    yield guard, sink
    guard.close()


def decide(guard: kg.Guard) -> Callable[[], str]:
    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    return score


def test_decision_inside_a_span_sets_policy_verdict_reason_and_decision_id(
    guarded: tuple[kg.Guard, kg.MemorySink],
    tracing: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    guard, sink = guarded
    tracer, exporter = tracing
    score = decide(guard)
    guard.consents.grant("T-1", "credit-scoring", "v1")

    with tracer.start_as_current_span("score-application"), kg.decision_context("T-1"):
        score()

    [span] = exporter.get_finished_spans()
    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert dict(span.attributes or {}) == {
        "kzai_guard.policy": "loan_approval",
        "kzai_guard.verdict": "allow",
        "kzai_guard.reason": "consent",
        "kzai_guard.decision_id": record.id,
    }


def test_blocked_decision_inside_a_span_sets_the_block_verdict_and_reason(
    guarded: tuple[kg.Guard, kg.MemorySink],
    tracing: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    guard, _ = guarded
    tracer, exporter = tracing
    score = decide(guard)

    with (
        tracer.start_as_current_span("score-application"),
        kg.decision_context("T-2"),
        pytest.raises(kg.DecisionBlocked) as caught,
    ):
        score()

    [span] = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes["kzai_guard.verdict"] == "block"
    assert attributes["kzai_guard.reason"] == "no-legal-basis"
    assert attributes["kzai_guard.decision_id"] == caught.value.decision_id


def test_audit_record_trace_id_is_the_span_trace_id_in_32_hex_digits(
    guarded: tuple[kg.Guard, kg.MemorySink],
    tracing: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    guard, sink = guarded
    tracer, exporter = tracing
    score = decide(guard)
    guard.consents.grant("T-3", "credit-scoring", "v1")

    with tracer.start_as_current_span("score-application"), kg.decision_context("T-3"):
        score()

    [span] = exporter.get_finished_spans()
    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert span.context is not None
    assert record.trace_id == format(span.context.trace_id, "032x")
    assert record.trace_id is not None and len(record.trace_id) == 32


def test_decisions_counter_counts_by_verdict(
    guarded: tuple[kg.Guard, kg.MemorySink],
    metering: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    guard, _ = guarded
    _, reader = metering
    score = decide(guard)
    guard.consents.grant("T-4", "credit-scoring", "v1")
    for _ in range(3):
        with kg.decision_context("T-4"):
            score()
    for _ in range(2):
        with kg.decision_context("T-5"), pytest.raises(kg.DecisionBlocked):
            score()

    counts = {
        point.attributes["kzai_guard.verdict"]: point.value
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "kzai_guard.decisions"
        for point in metric.data.data_points
    }
    assert counts == {"allow": 3, "block": 2}


def test_decision_duration_histogram_counts_every_decision(
    guarded: tuple[kg.Guard, kg.MemorySink],
    metering: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    guard, _ = guarded
    _, reader = metering
    score = decide(guard)
    guard.consents.grant("T-6", "credit-scoring", "v1")
    for _ in range(4):
        with kg.decision_context("T-6"):
            score()

    [metric] = [
        metric
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "kzai_guard.decision.duration"
    ]
    assert metric.unit == "us"
    assert [point.count for point in metric.data.data_points] == [4]


def test_decision_outside_any_span_has_no_trace_id(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded
    score = decide(guard)
    guard.consents.grant("T-7", "credit-scoring", "v1")

    with kg.decision_context("T-7"):
        score()

    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert record.trace_id is None


def test_decision_under_the_api_no_op_tracer_has_no_trace_id(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded
    score = decide(guard)
    guard.consents.grant("T-8", "credit-scoring", "v1")
    tracer = trace.NoOpTracerProvider().get_tracer("kzai-guard-tests")

    with tracer.start_as_current_span("score-application"), kg.decision_context("T-8"):
        score()

    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert record.trace_id is None


def test_guard_without_a_meter_provider_decides_under_the_api_defaults() -> None:
    guard, sink = memory_guard([LOAN], contact="credit@example.kz", subject=GATEWAY_SUBJECT)
    try:
        score = decide(guard)
        guard.consents.grant("T-9", "credit-scoring", "v1")
        with kg.decision_context("T-9"):
            assert score() == "approved"
        [record] = sink.of_kind(kg.EventKind.DECISION)
        assert (record.verdict, record.trace_id) == ("allow", None)
    finally:
        guard.close()


Traced = tuple[kg.Guard, kg.MemorySink, TracerProvider, InMemorySpanExporter]


@pytest.fixture
def traced() -> Iterator[Traced]:
    """A guard given a tracer provider whose spans land in the returned exporter."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    guard, sink = memory_guard(
        [LOAN],
        contact="credit@example.kz",
        tracer_provider=tracer_provider,
        subject=GATEWAY_SUBJECT,
    )
    yield guard, sink, tracer_provider, exporter
    guard.close()
    tracer_provider.shutdown()


def test_decision_outside_any_span_gets_a_span_of_its_own_from_the_given_provider(
    traced: Traced,
) -> None:
    guard, sink, _, exporter = traced
    score = decide(guard)
    guard.consents.grant("T-10", "credit-scoring", "v1")
    with kg.decision_context("T-10"):
        score()
    with kg.decision_context("T-11"), pytest.raises(kg.DecisionBlocked):
        score()

    allowed, blocked = exporter.get_finished_spans()
    records = sink.of_kind(kg.EventKind.DECISION)
    assert [span.name for span in (allowed, blocked)] == [SPAN_NAME, SPAN_NAME]
    assert dict(allowed.attributes or {}) == {
        "kzai_guard.policy": "loan_approval",
        "kzai_guard.verdict": "allow",
        "kzai_guard.reason": "consent",
        "kzai_guard.decision_id": records[0].id,
    }
    assert (blocked.attributes or {})["kzai_guard.verdict"] == "block"
    for span, record in zip((allowed, blocked), records, strict=True):
        assert span.context is not None and span.parent is None
        assert record.trace_id == format(span.context.trace_id, "032x")
        assert span.start_time is not None and span.end_time is not None
        assert span.end_time - span.start_time == (record.latency_us or 0) * 1000


def test_decision_inside_a_span_gets_no_span_of_its_own(traced: Traced) -> None:
    guard, sink, tracer_provider, exporter = traced
    score = decide(guard)
    guard.consents.grant("T-12", "credit-scoring", "v1")
    tracer = tracer_provider.get_tracer("kzai-guard-tests")
    with tracer.start_as_current_span("score-application"), kg.decision_context("T-12"):
        score()

    [span] = exporter.get_finished_spans()
    assert span.name == "score-application"
    assert (span.attributes or {})["kzai_guard.decision_id"] == sink.records[-1].id


def test_http_decision_without_instrumentation_gets_a_span_of_its_own(traced: Traced) -> None:
    guard, sink, _, exporter = traced

    @guard.decision("loan_approval")
    async def decide_loan(request: Request) -> JSONResponse:
        kg.explain(EXPLANATION)
        return JSONResponse({"approved": True})

    app = Starlette(routes=[Route("/loans", decide_loan, methods=["POST"])])
    guard.install(app)
    guard.consents.grant("A-1", "credit-scoring", "v1")
    with TestClient(app) as client:
        response = client.post("/loans", headers={"X-Subject-Id": "A-1"})

    assert response.status_code == 200
    [span] = exporter.get_finished_spans()
    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert span.name == SPAN_NAME
    assert (span.attributes or {})["kzai_guard.decision_id"] == response.headers["AI-Decision-Id"]
    assert span.context is not None
    assert record.trace_id == format(span.context.trace_id, "032x")
