"""A guard built before ``os.fork()`` (as under ``gunicorn --preload``) works in the child, with
threads and connections of its own, and the parent keeps working."""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import kzai_guard as kg
from kzai_guard.stores.url import open_store
from tests.postgres import fresh_database
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN

GIVE_UP_S = 15.0


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kzg.db'}"
        return
    with fresh_database() as url:
        yield url


def decider(guard: kg.Guard) -> Callable[[str], tuple[str, str]]:
    """A loan decision: its outcome (``allow`` or the problem's slug) and its decision id."""

    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    def decide(subject: str) -> tuple[str, str]:
        with kg.decision_context(subject) as context:
            try:
                score()
            except kg.DecisionRefused as refused:
                return refused.problem.slug, context.decision_id or ""
            return "allow", context.decision_id or ""

    return decide


def until_refused(decide: Callable[[str], tuple[str, str]], subject: str) -> str:
    give_up = time.monotonic() + GIVE_UP_S
    outcome, _ = decide(subject)
    while outcome == "allow" and time.monotonic() < give_up:
        time.sleep(0.01)
        outcome, _ = decide(subject)
    return outcome


def in_child(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork; run ``work`` in the child and return what it returned (or raise what it raised)."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads is risky: the guard's own
        # threads are what this test is about.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            try:
                answer: dict[str, Any] = {"result": work()}
            except BaseException as exc:
                answer = {"error": repr(exc)}
            os.write(write_end, json.dumps(answer).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        answer = json.loads(reader.read() or b'{"error": "the child wrote nothing"}')
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "error" not in answer, answer["error"]
    result: dict[str, Any] = answer["result"]
    return result


def test_a_guard_built_before_a_fork_decides_in_the_child_and_in_the_parent(
    store_url: str,
) -> None:
    guard = kg.Guard(
        [LOAN],
        store=store_url,
        audit=kg.MemorySink(),
        subject=GATEWAY_SUBJECT,
        pseudonym_key=b"k" * 32,
        contact="credit@example.kz",
        poll_interval=0.05,
    )
    decide = decider(guard)
    for subject in ("A-1", "B-1"):
        guard.consents.grant(subject, "credit-scoring", "v1")
        assert decide(subject)[0] == "allow"  # cached in the parent, so in the child too
    connection = guard.store._conn  # type: ignore[attr-defined]

    def child() -> dict[str, Any]:
        granted, granted_id = decide("A-1")
        withdrawn_elsewhere = until_refused(decide, "B-1")
        guard.consents.grant("C-1", "credit-scoring", "v1")
        guard.explanations.flush()
        return {"granted": [granted, granted_id], "withdrawn": withdrawn_elsewhere}

    guard.consents.withdraw("B-1", "credit-scoring")
    seen = in_child(child)
    in_parent = [decide("A-1")[0], decide("B-1")[0], until_allowed(decide, "C-1")]
    parent_id = decide("A-1")[1]
    guard.explanations.flush()
    same_connection = guard.store._conn is connection  # type: ignore[attr-defined]
    guard.close()

    assert seen["granted"][0] == "allow"
    assert seen["withdrawn"] == "no-legal-basis"
    assert in_parent == ["allow", "no-legal-basis", "allow"]
    assert same_connection
    store = open_store(store_url)
    assert store.get_explanation(seen["granted"][1]) is not None
    assert store.get_explanation(parent_id) is not None
    store.close()


def until_allowed(decide: Callable[[str], tuple[str, str]], subject: str) -> str:
    give_up = time.monotonic() + GIVE_UP_S
    outcome, _ = decide(subject)
    while outcome != "allow" and time.monotonic() < give_up:
        time.sleep(0.01)
        outcome, _ = decide(subject)
    return outcome
