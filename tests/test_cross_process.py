"""Changes made by another process reach this one's cached facts within one second."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kzai_guard as kg
from tests.postgres import fresh_database
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN

ROOT = Path(__file__).resolve().parent.parent
BOUND_S = 1.0
GIVE_UP_S = 5.0
POLL_S = 0.005

CARD = LOAN.model_copy(update={"name": "card_limit"})
OTHER_PROCESS = f"""
import sys, time
import kzai_guard as kg

LOAN = kg.DecisionPolicy.model_validate_json({LOAN.model_dump_json()!r})
CARD = kg.DecisionPolicy.model_validate_json({CARD.model_dump_json()!r})
guard = kg.Guard(
    [LOAN, CARD],
    store=sys.argv[1],
    audit=kg.MemorySink(),
    pseudonym_key=b"x" * 32,
    contact="credit@example.kz",
    subject=kg.from_header("X-Subject-Id"),
)
print("ready", flush=True)
for line in sys.stdin:
    operation, argument = line.split()
    if operation == "withdraw":
        guard.consents.withdraw(argument, "credit-scoring")
    elif operation == "object":
        guard.objections.record(argument)
    elif operation == "suspend":
        guard.switches.suspend(argument, by="ops@example.kz")
    print("done", time.monotonic_ns(), flush=True)
guard.close()
"""


class OtherProcess:
    """A second OS process with its own guard on the same store, driven line by line."""

    def __init__(self, url: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", OTHER_PROCESS, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.readline() == "ready"

    def readline(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the other process exited with {self.process.wait(30)}")
        return line

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def returned_at(self) -> int:
        word, moment = self.readline().split()
        assert word == "done"
        return int(moment)

    def close(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        code = self.process.wait(30)
        self.process.stdout.close()
        assert code == 0


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('shared') / 'kzg.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture(scope="module")
def guard(store_url: str) -> Iterator[kg.Guard]:
    guard = kg.Guard(
        [LOAN, CARD],
        store=store_url,
        audit=kg.MemorySink(),
        pseudonym_key=b"x" * 32,
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
    )
    yield guard
    guard.close()


@pytest.fixture(scope="module")
def other(store_url: str, guard: kg.Guard) -> Iterator[OtherProcess]:
    process = OtherProcess(store_url)
    yield process
    process.close()


def decider(guard: kg.Guard, policy: str) -> Callable[[str], str]:
    @guard.decision(policy)
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    def outcome(subject: str) -> str:
        with kg.decision_context(subject):
            try:
                score()
            except kg.HumanReviewRequired:
                return "route"
            except kg.DecisionBlocked as exc:
                return exc.problem.slug
        return "allow"

    return outcome


def seconds_until(
    other: OtherProcess, command: str, decide: Callable[[], str], wanted: str
) -> float:
    assert decide() == "allow"
    other.send(command)
    give_up = time.monotonic() + GIVE_UP_S
    outcome = decide()
    while outcome == "allow" and time.monotonic() < give_up:
        time.sleep(POLL_S)
        outcome = decide()
    seen_ns = time.monotonic_ns()
    returned_ns = other.returned_at()
    assert outcome == wanted
    return (seen_ns - returned_ns) / 1e9


def test_consent_withdrawn_by_another_process_blocks_within_one_second(
    guard: kg.Guard, other: OtherProcess
) -> None:
    subject = f"W-{uuid.uuid4().hex[:8]}"
    guard.consents.grant(subject, "credit-scoring", "v1")
    decide = decider(guard, "loan_approval")

    delay = seconds_until(other, f"withdraw {subject}", lambda: decide(subject), "no-legal-basis")

    assert delay < BOUND_S


def test_objection_recorded_by_another_process_routes_within_one_second(
    guard: kg.Guard, other: OtherProcess
) -> None:
    subject = f"O-{uuid.uuid4().hex[:8]}"
    guard.consents.grant(subject, "credit-scoring", "v1")
    decide = decider(guard, "loan_approval")

    delay = seconds_until(other, f"object {subject}", lambda: decide(subject), "route")

    assert delay < BOUND_S


def test_policy_suspended_by_another_process_blocks_within_one_second(
    guard: kg.Guard, other: OtherProcess
) -> None:
    subject = f"S-{uuid.uuid4().hex[:8]}"
    guard.consents.grant(subject, "credit-scoring", "v1")
    decide = decider(guard, "card_limit")

    delay = seconds_until(other, "suspend card_limit", lambda: decide(subject), "suspended")

    assert delay < BOUND_S
    assert guard.switches.is_suspended("card_limit")
    assert not guard.switches.is_suspended("loan_approval")
