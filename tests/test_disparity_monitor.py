"""Disparity monitoring through a guard: counted off the request thread, in the store, judged."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import kzai_guard as kg
import kzai_guard.disparity
from kzai_guard.core import problems
from kzai_guard.disparity import MONITOR_NAME
from kzai_guard.stores.base import Store
from kzai_guard.stores.url import open_store
from tests.postgres import fresh_database
from tests.samples import EXPLANATION, GATEWAY_SUBJECT
from tests.test_fork import in_child

ROOT = Path(__file__).resolve().parent.parent
PRICING = kg.DecisionPolicy(
    name="pricing",
    significance=kg.Significance.AFFECTS_INTERESTS,
    autonomy=kg.Autonomy.HIGH,
    risk=kg.RiskClass.MEDIUM,
    model=kg.ModelInfo(name="pricer", version="1"),
    inputs=frozenset({"income", "tenure"}),
    monitoring=kg.DisparityMonitoring(
        grounds=frozenset({kg.ProtectedGround.SEX}),
        action=kg.DisparityAction.SUSPEND,
        min_sample=50,
    ),
)


def sex_of(subject: str) -> dict[str, str]:
    """Subjects are named ``f-1``, ``m-2``: the group is the prefix (tests only)."""
    return {"sex": subject.split("-")[0]}


@pytest.fixture
def metering() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


def make_guard(
    tmp_path: Path, provider: MeterProvider | None = None, store: str | Store | None = None
) -> tuple[kg.Guard, kg.MemorySink]:
    sink = kg.MemorySink()
    guard = kg.Guard(
        [PRICING],
        store=store or f"sqlite:///{tmp_path / 'store.db'}",
        audit=sink,
        pseudonym_key=b"k" * 32,
        contact="fairness@example.kz",
        subject=GATEWAY_SUBJECT,
        groups=sex_of,
        meter_provider=provider,
    )
    return guard, sink


def decide(guard: kg.Guard, subject: str, favourable: bool | None) -> None:
    @guard.decision("pricing")
    def price() -> None:
        kg.explain(EXPLANATION)
        if favourable is not None:
            kg.mark_outcome(favourable=favourable)

    with kg.decision_context(subject):
        price()


def traffic(guard: kg.Guard, rates: dict[str, float], per_group: int) -> int:
    """``per_group`` decisions for each group, interleaved, favourable evenly spread; returns
    how many were refused because the policy was suspended meanwhile."""
    suspended = 0
    for i in range(per_group):
        for group, rate in rates.items():
            try:
                decide(guard, f"{group}-{i}", int((i + 1) * rate) > int(i * rate))
            except kg.DecisionBlocked as exc:
                assert exc.problem is problems.SUSPENDED
                suspended += 1
    return suspended


def detected(sink: kg.MemorySink) -> list[kg.AuditRecord]:
    return [r for r in sink.records if r.kind is kg.EventKind.DISPARITY_DETECTED]


def metric_points(reader: InMemoryMetricReader) -> list[tuple[dict[str, object], int]]:
    data = reader.get_metrics_data()
    return [
        (dict(point.attributes or {}), int(point.value))
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "kzai_guard.disparity.detected"
        for point in metric.data.data_points
    ]


def test_a_planted_disparity_is_audited_measured_and_suspends_the_policy(
    tmp_path: Path, metering: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    guard, sink = make_guard(tmp_path, metering[0])
    try:
        traffic(guard, {"f": 0.3, "m": 0.7}, 100)  # suspended part way, once judged
        guard.disparity.flush()
        [record] = detected(sink)
        assert record.policy == "pricing"
        assert record.subject is None
        assert record.detail is not None and record.detail.startswith("sex=f: selection rate")
        assert "of sex=m's" in record.detail and record.detail.endswith("action suspend")
        assert metric_points(metering[1]) == [
            (
                {
                    "kzai_guard.policy": "pricing",
                    "kzai_guard.ground": "sex",
                    "kzai_guard.group": "f",
                    "kzai_guard.action": "suspend",
                },
                1,
            )
        ]
        assert guard.switches.is_suspended("pricing")
        [switch] = [r for r in sink.records if r.kind is kg.EventKind.SWITCH_SUSPENDED]
        assert switch.reviewer == guard.auditor.reviewer_ref(MONITOR_NAME)
        with pytest.raises(kg.DecisionBlocked):
            decide(guard, "m-1", True)
        # Judged again after more traffic: still flagged, so no second report.
        guard.switches.resume("pricing", by="ops@example.kz")
        assert traffic(guard, {"f": 0.3, "m": 0.7}, 10) == 0
        guard.disparity.flush()
        assert len(detected(sink)) == 1
        [sex] = guard.disparity.disparities("pricing").values()
        assert [d.group for d in sex if d.flagged] == ["f"]
    finally:
        guard.close()


def test_equal_outcomes_raise_nothing(
    tmp_path: Path, metering: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    guard, sink = make_guard(tmp_path, metering[0])
    try:
        assert traffic(guard, {"f": 0.5, "m": 0.52}, 100) == 0
        guard.disparity.flush()
        assert detected(sink) == []
        assert metric_points(metering[1]) == []
        assert not guard.switches.is_suspended("pricing")
    finally:
        guard.close()


def test_only_marked_ai_decisions_are_counted_and_no_subject_is_stored(tmp_path: Path) -> None:
    guard, _ = make_guard(tmp_path)
    try:
        decide(guard, "f-1", True)
        decide(guard, "f-2", None)  # the function did not say: not counted
        with kg.decision_context("f-3", reviewer=kg.Reviewer(id="officer-1")):
            guard.decision("pricing")(lambda: kg.mark_outcome(favourable=False))()
        guard.disparity.flush()
        now = datetime.now(UTC)
        [count] = guard.store.outcome_counts(now - timedelta(days=1), now + timedelta(days=1))
        assert (count.policy, count.ground, count.group) == ("pricing", "sex", "f")
        assert (count.decisions, count.favourable) == (1, 1)
    finally:
        guard.close()
    raw = (tmp_path / "store.db").read_bytes()
    assert b"f-1" not in raw


def start(
    policy: kg.DecisionPolicy, groups: kzai_guard.disparity.GroupResolver | None = None
) -> None:
    """Start a guard with ``policy`` alone, in memory."""
    kg.Guard(
        [policy],
        store="memory://",
        audit=kg.MemorySink(),
        contact="c",
        subject=GATEWAY_SUBJECT,
        groups=groups,
    )


def test_a_protected_input_is_refused_at_start_up(tmp_path: Path) -> None:
    monitoring = PRICING.monitoring
    assert monitoring is not None
    policy = PRICING.model_copy(
        update={
            "inputs": frozenset({"income", "Birth_Date"}),
            "monitoring": monitoring.model_copy(
                update={"protected_attributes": frozenset({"birth-date"})}
            ),
        }
    )
    with pytest.raises(kg.ConfigurationError, match=r"'Birth_Date'.*remove them from 'inputs'"):
        start(policy, groups=sex_of)
    sexed = PRICING.model_copy(update={"inputs": frozenset({"sex"})})
    with pytest.raises(kg.ConfigurationError, match="KZ-AI 6"):
        start(sexed, groups=sex_of)


def test_monitoring_without_a_group_resolver_is_refused() -> None:
    with pytest.raises(kg.ConfigurationError, match="give the guard groups="):
        start(PRICING)


def test_policies_without_the_new_fields_keep_their_digest() -> None:
    plain = PRICING.model_copy(update={"inputs": frozenset(), "monitoring": None})
    before = plain.model_dump(mode="json")  # the fields as the digest covered them before
    del before["inputs"], before["monitoring"], before["data_basis"]
    before["capabilities"] = sorted(before["capabilities"])
    expected = hashlib.sha256(orjson.dumps(before, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert plain.digest == expected
    assert PRICING.digest != expected


OTHER_PROCESS = """
import sys
import kzai_guard as kg
from tests.samples import EXPLANATION
from tests.test_fork import in_child
from tests.test_disparity_monitor import make_guard, traffic
from pathlib import Path

guard, _ = make_guard(Path("."), store=sys.argv[1])
traffic(guard, {"f": 0.5, "m": 0.5}, int(sys.argv[2]))
guard.close()
"""


def test_counts_from_two_processes_add_up() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with fresh_database() as url:
        processes = [
            subprocess.Popen([sys.executable, "-c", OTHER_PROCESS, url, str(n)], env=env, cwd=ROOT)
            for n in (60, 40)
        ]
        assert [p.wait(timeout=120) for p in processes] == [0, 0]
        guard, _ = make_guard(Path("."), store=url)
        try:
            [sex] = guard.disparity.disparities("pricing").values()
        finally:
            guard.close()
    assert [(d.group, d.decisions, d.favourable) for d in sex] == [
        ("f", 100, 50),
        ("m", 100, 50),
    ]


def test_a_forked_child_counts_on_its_own_and_the_counts_add_up(tmp_path: Path) -> None:
    guard, _ = make_guard(tmp_path)
    try:
        traffic(guard, {"f": 0.5, "m": 0.5}, 10)  # may still be queued at the fork

        def in_the_child() -> dict[str, object]:
            traffic(guard, {"f": 0.5, "m": 0.5}, 20)
            guard.disparity.flush()
            return {}

        in_child(in_the_child)
        traffic(guard, {"f": 0.5, "m": 0.5}, 5)
        guard.disparity.flush()
        [sex] = guard.disparity.disparities("pricing").values()
        assert [(d.group, d.decisions, d.favourable) for d in sex] == [
            ("f", 35, 17),
            ("m", 35, 17),
        ]
    finally:
        guard.close()


class RefusesOnce:
    """A store whose first ``add_outcome_counts`` fails, as an unreachable database does."""

    def __init__(self, store: object) -> None:
        self._store = store
        self.attempts = 0

    def add_outcome_counts(self, counts: list[object]) -> None:
        self.attempts += 1
        if self.attempts == 1:
            raise kg.StoreError("the store is unreachable")
        self._store.add_outcome_counts(counts)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_counts_the_store_refused_are_stored_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RefusesOnce(open_store(f"sqlite:///{tmp_path / 'store.db'}"))
    guard, _ = make_guard(tmp_path, store=store)  # type: ignore[arg-type]
    try:
        traffic(guard, {"f": 0.5, "m": 0.5}, 10)
        guard.disparity.flush()
        if store.attempts < 2:  # the refused write was the one this flush asked for
            guard.disparity.flush()
        assert store.attempts >= 2
        assert "storing disparity counts failed" in caplog.text
        [sex] = guard.disparity.disparities("pricing").values()
        assert [(d.group, d.decisions) for d in sex] == [("f", 10), ("m", 10)]
    finally:
        guard.close()
        store.close()


def test_decisions_past_the_pending_limit_are_not_counted_and_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kzai_guard.disparity, "PENDING_LIMIT", 4)
    release = threading.Event()
    resolving = threading.Event()

    def slow(subject: str) -> dict[str, str]:
        resolving.set()
        release.wait(30)
        return sex_of(subject)

    guard, _ = make_guard(tmp_path)
    guard.disparity._resolver = slow  # the resolver the guard was given, made slow
    try:
        decide(guard, "f-0", True)
        assert resolving.wait(30)  # the writer holds the first; the queue is empty
        for i in range(1, 10):
            decide(guard, f"f-{i}", True)  # 4 wait, 5 are left out
        release.set()
        guard.disparity.flush()
        [sex] = guard.disparity.disparities("pricing").values()
        assert [(d.group, d.decisions) for d in sex] == [("f", 5)]
        assert "5 decisions were not counted for disparity" in caplog.text
    finally:
        release.set()
        guard.close()
