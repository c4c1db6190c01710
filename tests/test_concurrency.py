"""Withdrawals take effect on the very next decision, however decisions and writes interleave."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.stores.base import Store, SwitchState
from kzai_guard.stores.url import open_store
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN

CARD = LOAN.model_copy(update={"name": "card_limit"})
SUBJECT = "A-1"
ROUNDS = 20
_AHEAD = 300
WORKERS = 3


@dataclass
class Timeline:
    """A total order of events: a shared counter read just before or just after each one."""

    clock: Iterator[int] = field(default_factory=itertools.count)
    decisions: list[tuple[int, int, bool]] = field(default_factory=list)
    withdrawn: list[int] = field(default_factory=list)
    granting: list[int] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def tick(self) -> int:
        return next(self.clock)

    def record(self, started: int, allowed: bool) -> None:
        self.decisions.append((started, self.tick(), allowed))

    def violations(self) -> list[tuple[int, int, int]]:
        """Allowed decisions that ran wholly between a withdrawal's return and the next grant."""
        found = []
        for started, ended, allowed in self.decisions:
            last_withdrawal = max((w for w in self.withdrawn if w < started), default=None)
            if last_withdrawal is None:
                continue
            regranted = any(last_withdrawal < g < ended for g in self.granting)
            if allowed and not regranted:
                found.append((last_withdrawal, started, ended))
        return found


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'kzg.db'}"


@pytest.fixture
def guard(store_url: str) -> Iterator[kg.Guard]:
    guard = kg.Guard(
        [LOAN],
        store=store_url,
        audit=kg.MemorySink(),
        pseudonym_key=b"x" * 32,
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
    )
    yield guard
    guard.close()


def withdraw_and_regrant(guard: kg.Guard, timeline: Timeline) -> None:
    try:
        for _ in range(ROUNDS):
            time.sleep(0.003)
            guard.consents.withdraw(SUBJECT, "credit-scoring")
            timeline.withdrawn.append(timeline.tick())
            time.sleep(0.003)
            timeline.granting.append(timeline.tick())
            guard.consents.grant(SUBJECT, "credit-scoring", "v1")
    finally:
        timeline.done.set()


def assert_withdrawals_held(timeline: Timeline) -> None:
    assert timeline.violations() == []
    outcomes = {allowed for _, _, allowed in timeline.decisions}
    assert outcomes == {True, False}
    assert len(timeline.withdrawn) == ROUNDS


def test_threaded_sync_decisions_never_rely_on_a_withdrawn_consent(guard: kg.Guard) -> None:
    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    timeline = Timeline()
    guard.consents.grant(SUBJECT, "credit-scoring", "v1")
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while not timeline.done.is_set():
                with kg.decision_context(SUBJECT):
                    started = timeline.tick()
                    try:
                        score()
                    except kg.DecisionBlocked as exc:
                        assert exc.problem.slug == "no-legal-basis"
                        timeline.record(started, False)
                    else:
                        timeline.record(started, True)
                time.sleep(0)
        except BaseException as exc:
            errors.append(exc)
            timeline.done.set()

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    withdraw_and_regrant(guard, timeline)
    for thread in threads:
        thread.join()

    assert errors == []
    assert_withdrawals_held(timeline)


def test_async_decisions_never_rely_on_a_withdrawn_consent(guard: kg.Guard) -> None:
    @guard.decision("loan_approval")
    async def score() -> str:
        await asyncio.sleep(0)
        kg.explain(EXPLANATION)
        return "approved"

    timeline = Timeline()
    guard.consents.grant(SUBJECT, "credit-scoring", "v1")

    async def task() -> None:
        while not timeline.done.is_set():
            with kg.decision_context(SUBJECT):
                started = timeline.tick()
                try:
                    await score()
                except kg.DecisionBlocked:
                    timeline.record(started, False)
                else:
                    timeline.record(started, True)
            # Back to back, to interleave tightly with the withdrawals, but never more than a
            # few hundred decisions ahead of the controller thread, which must get its turns.
            steps = len(timeline.withdrawn) + len(timeline.granting) + 1
            ahead = len(timeline.decisions) > _AHEAD * steps
            await asyncio.sleep(0.001 if ahead else 0)

    async def run() -> None:
        await asyncio.gather(*(task() for _ in range(8)))

    controller = threading.Thread(target=withdraw_and_regrant, args=(guard, timeline))
    controller.start()
    try:
        asyncio.run(run())
    finally:
        timeline.done.set()
        controller.join()

    assert_withdrawals_held(timeline)


def test_http_decisions_never_rely_on_a_withdrawn_consent(guard: kg.Guard) -> None:
    app = FastAPI()
    guard.install(app)

    @app.post("/loans")
    @guard.decision("loan_approval")
    async def decide() -> dict[str, bool]:
        kg.explain(EXPLANATION)
        return {"approved": True}

    timeline = Timeline()
    guard.consents.grant(SUBJECT, "credit-scoring", "v1")
    statuses: set[int] = set()
    errors: list[BaseException] = []

    with TestClient(app) as client:

        def worker() -> None:
            try:
                while not timeline.done.is_set():
                    started = timeline.tick()
                    response = client.post("/loans", headers={"X-Subject-Id": SUBJECT})
                    statuses.add(response.status_code)
                    timeline.record(started, response.status_code == 200)
            except BaseException as exc:
                errors.append(exc)
                timeline.done.set()

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for thread in threads:
            thread.start()
        withdraw_and_regrant(guard, timeline)
        for thread in threads:
            thread.join()

    assert errors == []
    assert statuses == {200, 403}
    assert_withdrawals_held(timeline)


# -- the fact cache's invalidation protocol, interleaved by hand -------------------------------


class PausableStore:
    """A store whose reads, on one chosen thread, stop at a chosen point until released."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.thread: int | None = None
        self.point: str | None = None
        self.reached = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def arm(self, point: str) -> None:
        self.point = point
        self.reached.clear()
        self.release.clear()

    def pause_here(self) -> None:
        self.thread = threading.get_ident()

    def _checkpoint(self, point: str) -> None:
        if threading.get_ident() == self.thread and point == self.point:
            self.reached.set()
            if not self.release.wait(10):
                raise TimeoutError("never released")

    def consents_of(self, subject: str) -> list[kg.Consent]:
        self._checkpoint("before-consents")
        found: list[kg.Consent] = self._inner.consents_of(subject)
        self._checkpoint("after-consents")
        return found

    def objections_of(self, subject: str) -> list[kg.Objection]:
        self._checkpoint("before-objections")
        found: list[kg.Objection] = self._inner.objections_of(subject)
        self._checkpoint("after-objections")
        return found

    def switches(self) -> list[SwitchState]:
        self._checkpoint("before-switches")
        found: list[SwitchState] = self._inner.switches()
        self._checkpoint("after-switches")
        return found


def in_thread(store: PausableStore, action: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        store.pause_here()
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def paused() -> Iterator[tuple[kg.Guard, PausableStore]]:
    inner = open_store("memory://")
    store = PausableStore(inner)
    guard = kg.Guard(
        [LOAN, CARD],
        store=store,  # type: ignore[arg-type]
        audit=kg.MemorySink(),
        pseudonym_key=b"x" * 32,
        contact="credit@example.kz",
        poll_interval=1.0,
        subject=GATEWAY_SUBJECT,
    )
    guard.facts.stop()
    yield guard, store
    guard.close()
    inner.close()


OPERATIONS = ("grant", "withdraw-consent", "object", "withdraw-objection")
LOAD_POINTS = ("before-consents", "after-consents", "before-objections", "after-objections")


def expected_outcome(consent: bool, objection: bool) -> str:
    if objection:
        return "route"
    return "allow" if consent else "block"


def test_a_load_straddling_a_write_never_leaves_stale_facts_cached(
    paused: tuple[kg.Guard, PausableStore],
) -> None:
    guard, store = paused

    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    def outcome() -> str:
        with kg.decision_context(SUBJECT):
            try:
                score()
            except kg.HumanReviewRequired:
                return "route"
            except kg.DecisionBlocked:
                return "block"
        return "allow"

    model = {"consent": False, "objection": False}
    writes: dict[str, Callable[[], object]] = {
        "grant": lambda: guard.consents.grant(SUBJECT, "credit-scoring", "v1"),
        "withdraw-consent": lambda: guard.consents.withdraw(SUBJECT, "credit-scoring"),
        "object": lambda: guard.objections.record(SUBJECT),
        "withdraw-objection": lambda: guard.objections.withdraw(SUBJECT),
    }
    effects = {
        "grant": ("consent", True),
        "withdraw-consent": ("consent", False),
        "object": ("objection", True),
        "withdraw-objection": ("objection", False),
    }

    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(
        st.lists(st.tuples(st.sampled_from(OPERATIONS), st.sampled_from(LOAD_POINTS)), max_size=8)
    )
    def interleave(steps: list[tuple[str, str]]) -> None:
        for operation, point in steps:
            guard.facts.forget(SUBJECT)
            store.arm(point)
            loader = in_thread(store, lambda: guard.facts.state(SUBJECT))
            assert store.reached.wait(5)
            writes[operation]()
            key, value = effects[operation]
            model[key] = value
            want = expected_outcome(model["consent"], model["objection"])
            assert outcome() == want
            store.release.set()
            loader.join(5)
            assert not loader.is_alive()
            assert outcome() == want
            state = guard.facts.state(SUBJECT)
            assert (
                state.consent_valid("credit-scoring", None, datetime.now(UTC)) is model["consent"]
            )
            assert state.objected("loan_approval") is model["objection"]

    interleave()


def test_suspension_holds_after_suspend_returns_while_the_watcher_reloads_switches(
    paused: tuple[kg.Guard, PausableStore],
) -> None:
    guard, store = paused

    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    guard.consents.grant(SUBJECT, "credit-scoring", "v1")
    store.set_switch(SwitchState("card_limit", False, datetime.now(UTC), "ops", None))
    store.arm("after-switches")
    refresher = in_thread(store, guard.facts.refresh)
    assert store.reached.wait(5)

    guard.switches.suspend("loan_approval", by="ops@example.kz", reason="model drift")
    store.release.set()
    refresher.join(5)

    assert guard.switches.is_suspended("loan_approval")
    with kg.decision_context(SUBJECT), pytest.raises(kg.DecisionBlocked) as caught:
        score()
    assert caught.value.problem.slug == "suspended"


def test_withdrawal_holds_after_withdraw_returns_while_the_watcher_refreshes(
    paused: tuple[kg.Guard, PausableStore],
) -> None:
    guard, store = paused

    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    guard.consents.grant(SUBJECT, "credit-scoring", "v1")
    guard.facts.forget(SUBJECT)
    store.arm("after-objections")
    loader = in_thread(store, lambda: guard.facts.state(SUBJECT))
    assert store.reached.wait(5)
    refresher = threading.Thread(target=guard.facts.refresh)
    refresher.start()
    refresher.join(5)

    guard.consents.withdraw(SUBJECT, "credit-scoring")
    store.release.set()
    loader.join(5)
    guard.facts.refresh()

    with kg.decision_context(SUBJECT), pytest.raises(kg.DecisionBlocked) as caught:
        score()
    assert caught.value.problem.slug == "no-legal-basis"
