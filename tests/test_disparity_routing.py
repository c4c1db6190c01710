"""Routing for disparity shared through the store: set in one process, applied in every one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kzai_guard as kg
from tests.postgres import fresh_database
from tests.samples import EXPLANATION, GATEWAY_SUBJECT
from tests.test_disparity_monitor import PRICING, sex_of

ROOT = Path(__file__).resolve().parent.parent
ROUTED = PRICING.model_copy(
    update={
        "monitoring": kg.DisparityMonitoring(
            grounds=frozenset({kg.ProtectedGround.SEX}),
            action=kg.DisparityAction.ROUTE,
            min_sample=50,
        )
    }
)


def make_guard(store: str) -> tuple[kg.Guard, kg.MemorySink]:
    sink = kg.MemorySink()
    guard = kg.Guard(
        [ROUTED],
        store=store,
        audit=sink,
        pseudonym_key=b"k" * 32,
        contact="fairness@example.kz",
        subject=GATEWAY_SUBJECT,
        groups=sex_of,
    )
    return guard, sink


def decide(guard: kg.Guard, subject: str, favourable: bool) -> str:
    """One decision; ``"ran"``, or the reason of the route that stopped it."""

    @guard.decision("pricing")
    def price() -> None:
        kg.explain(EXPLANATION)
        kg.mark_outcome(favourable=favourable)

    with kg.decision_context(subject):
        try:
            price()
        except kg.HumanReviewRequired as exc:
            assert exc.ticket is not None
            return exc.ticket.reason
    return "ran"


COUNTING_PROCESS = """
import json, sys, time
from tests.test_disparity_routing import decide, make_guard

guard, _ = make_guard(sys.argv[1])
offset, per_group = int(sys.argv[2]), int(sys.argv[3])
ran = {}
for i in range(offset, offset + per_group):
    for group, rate in (("f", 0.2), ("m", 0.8)):
        favourable = int((i + 1) * rate) > int(i * rate)
        if decide(guard, f"{group}-{i}", favourable) == "ran":
            tally = ran.setdefault(group, [0, 0])
            tally[0] += 1
            tally[1] += favourable
guard.disparity.flush()
# Routing is set by whichever process judged the counts of both; wait to see it here.
deadline = time.monotonic() + 60
while not guard.switches.is_routed("pricing") and time.monotonic() < deadline:
    time.sleep(0.05)
after = decide(guard, "m-999999", True)
guard.close()
print(json.dumps({"ran": ran, "after": after}))
"""


def test_two_processes_add_up_their_counts_and_both_route_once_crossed() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with fresh_database() as url:
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", COUNTING_PROCESS, url, str(offset), "40"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for offset in (0, 40)
        ]
        outputs = [p.communicate(timeout=180)[0] for p in processes]
        assert [p.returncode for p in processes] == [0, 0]
        reports = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
        guard, _ = make_guard(url)
        try:
            [sex] = guard.disparity.disparities("pricing").values()
            routings = guard.store.routings()
        finally:
            guard.close()
    expected: dict[str, list[int]] = {}
    for report in reports:
        for group, (ran, favourable) in report["ran"].items():
            tally = expected.setdefault(group, [0, 0])
            tally[0] += ran
            tally[1] += favourable
    assert [(d.group, d.decisions, d.favourable) for d in sex] == [
        (group, *expected[group]) for group in ("f", "m")
    ]
    assert [report["after"] for report in reports] == ["disparity", "disparity"]
    [routing] = routings
    assert (routing.policy, routing.routed, routing.changed_by) == (
        "pricing",
        True,
        "disparity-monitor",
    )
    assert routing.reason is not None and routing.reason.startswith("sex=f: selection rate")


def test_a_route_cleared_in_one_guard_is_cleared_in_another_on_the_same_store(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    here, _ = make_guard(store)
    there, _ = make_guard(store)
    try:
        here.switches.route("pricing", by="officer@example.kz", reason="checking")
        there.facts.refresh()  # what its watcher does at its next poll
        assert decide(there, "m-1", True) == "disparity"
        there.switches.clear_route("pricing", by="officer@example.kz")
        here.facts.refresh()
        assert decide(here, "m-2", True) == "ran"
    finally:
        here.close()
        there.close()


def planted(guard: kg.Guard, start: int, per_group: int) -> None:
    """``per_group`` decisions for each of f (20 % favourable) and m (80 %)."""
    for i in range(start, start + per_group):
        for group, rate in (("f", 0.2), ("m", 0.8)):
            decide(guard, f"{group}-{i}", int((i + 1) * rate) > int(i * rate))


def test_a_route_an_officer_cleared_is_not_set_again_by_a_process_started_later(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    first, _ = make_guard(store)
    try:
        planted(first, 0, 60)
        first.disparity.flush()
        assert first.switches.is_routed("pricing")
        first.switches.clear_route("pricing", by="officer@example.kz", reason="checked")
    finally:
        first.close()
    later, sink = make_guard(store)
    try:
        planted(later, 60, 20)  # the same crossing: the groups stay flagged
        later.disparity.flush()
        [sex] = later.disparity.disparities("pricing").values()
        assert [d.group for d in sex if d.flagged] == ["f"]
        assert not later.switches.is_routed("pricing")
        assert sink.of_kind(kg.EventKind.ROUTING_STARTED) == []
        assert sink.of_kind(kg.EventKind.DISPARITY_DETECTED) == []
    finally:
        later.close()
