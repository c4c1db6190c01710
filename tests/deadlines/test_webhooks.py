"""Deadline notifications reach a real receiver on loopback at least once, signed: while it is
down they wait with growing backoff, across a crash too; repeats keep their id."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kzai_guard as kg
from kzai_guard.webhook_signature import sign_webhook
from tests.deadlines.processes import Watcher
from tests.deadlines.receiver import SECRET, Receiver, free_port
from tests.samples import GATEWAY_SUBJECT, LOAN

OPENED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATE = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
"""Friday: tickets opened on Monday are overdue."""


class Clock:
    def __init__(self) -> None:
        self.now = OPENED

    def __call__(self) -> datetime:
        return self.now


def guard_on(store: str, port: int, clock: Clock) -> kg.Guard:
    return kg.Guard(
        [LOAN],
        store=store,
        audit=kg.MemorySink(),
        pseudonym_key=b"kzai-guard-test-pseudonym-key-32b",
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
        clock=clock,
        deadline_check_seconds=None,
        deadline_webhook_url=f"http://127.0.0.1:{port}/hooks/deadlines",
        deadline_webhook_secret=SECRET,
    )


def open_tickets(guard: kg.Guard, count: int) -> list[kg.ReviewTicket]:
    return [
        guard.reviews.open(
            decision_id=f"d-{n}", policy="loan_approval", subject=f"A-{n}", reason="objection"
        )
        for n in range(count)
    ]


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kzg.db'}"


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


def test_notifications_wait_for_a_receiver_that_is_down_with_doubling_backoff_then_all_arrive(
    store: str, port: int
) -> None:
    clock = Clock()
    guard = guard_on(store, port, clock)
    tickets = open_tickets(guard, 7)  # more than one batch of the sender
    clock.now = LATE
    findings = guard.deadlines.sweep()

    down = guard.deadlines.deliver()
    waits = {m.next_attempt_at - LATE for m in guard.store.outbox()}  # type: ignore[attr-defined]
    receiver = Receiver(port, lose_first=True)
    try:
        too_early = guard.deadlines.deliver()
        received_too_early = list(receiver.received)
        clock.now = LATE + timedelta(seconds=10)
        answer_lost = guard.deadlines.deliver()
        second_waits = {m.next_attempt_at - clock.now for m in guard.store.outbox()}  # type: ignore[attr-defined]
        clock.now += timedelta(seconds=20)
        delivered = guard.deadlines.deliver()
        after = guard.deadlines.deliver()
    finally:
        receiver.close()
    outbox = guard.store.outbox()  # type: ignore[attr-defined]
    guard.close()

    assert (down, waits, too_early, received_too_early) == (0, {timedelta(seconds=10)}, 0, [])
    assert (answer_lost, second_waits, delivered, after) == (0, {timedelta(seconds=20)}, 7, 0)
    ids = [headers["webhook-id"] for headers, _ in receiver.received]
    assert sorted(ids) == sorted(f.id for f in findings for _ in range(2))
    assert {m.id: (m.attempts, m.delivered_at) for m in outbox} == {
        f.id: (2, clock.now) for f in findings
    }
    bodies = [kg.verify_webhook(SECRET, h, body) for h, body in receiver.received]
    assert {b["id"]: b["review_id"] for b in bodies} == {f.id: f.review_id for f in findings}
    assert {b["review_id"] for b in bodies} == {t.id for t in tickets}
    assert {(b["type"], b["policy"], b["deadline"]) for b in bodies} == {
        ("review.overdue", "loan_approval", "2026-03-05T19:00:00+00:00")
    }
    assert all("subject" not in b and "A-0" not in str(b) for b in bodies)


def test_notifications_found_by_a_process_killed_before_delivering_are_sent_after_restart(
    store: str, port: int
) -> None:
    clock = Clock()
    guard = guard_on(store, port, clock)
    open_tickets(guard, 4)
    guard.close()
    watcher = Watcher(store, LATE.isoformat(), f"http://127.0.0.1:{port}/hooks/deadlines", "hang")
    watcher.go()
    assert watcher.readline() == "swept"
    watcher.process.send_signal(signal.SIGKILL)
    assert watcher.finish() == -signal.SIGKILL

    clock.now = LATE + timedelta(minutes=5)
    restarted = guard_on(store, port, clock)
    receiver = Receiver(port)
    try:
        delivered = restarted.deadlines.deliver()
    finally:
        receiver.close()
    findings = restarted.store.deadline_findings()  # type: ignore[attr-defined]
    restarted.close()

    assert delivered == len(findings) == 4
    assert sorted(h["webhook-id"] for h, _ in receiver.received) == sorted(f.id for f in findings)


json_objects = st.dictionaries(
    st.text(max_size=8),
    st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=20), st.none()),
    max_size=5,
)


@given(
    payload=json_objects, notification_id=st.text(min_size=1, max_size=30).filter(str.isprintable)
)
def test_a_signed_notification_verifies_to_its_body(
    payload: dict[str, object], notification_id: str
) -> None:
    body = orjson.dumps(payload)
    headers = sign_webhook(SECRET, notification_id, body, 1_780_000_000)

    assert kg.verify_webhook(SECRET, headers, body, now=1_780_000_000) == payload


@given(payload=json_objects, flip=st.integers(min_value=0))
def test_a_tampered_body_fails_verification(payload: dict[str, object], flip: int) -> None:
    body = orjson.dumps(payload)
    headers = sign_webhook(SECRET, "n-1", body, 1_780_000_000)
    tampered = bytearray(body)
    tampered[flip % len(body)] ^= 0x01

    with pytest.raises(kg.WebhookVerificationError, match="no webhook-signature matches"):
        kg.verify_webhook(SECRET, headers, bytes(tampered), now=1_780_000_000)


def test_another_secret_an_old_timestamp_or_a_missing_header_fails_verification() -> None:
    body = b'{"id":"n-1"}'
    headers = sign_webhook(SECRET, "n-1", body, 1_780_000_000)
    other = "whsec_" + "b3RoZXItc2VjcmV0LW9mLWF0LWxlYXN0LTI0LWJ5dGVz"

    with pytest.raises(kg.WebhookVerificationError, match="no webhook-signature matches"):
        kg.verify_webhook(other, headers, body, now=1_780_000_000)
    with pytest.raises(kg.WebhookVerificationError, match="more than 300s"):
        kg.verify_webhook(SECRET, headers, body, now=1_780_000_301)
    with pytest.raises(kg.WebhookVerificationError, match="no webhook-id header"):
        kg.verify_webhook(
            SECRET,
            {k: v for k, v in headers.items() if k != "webhook-id"},
            body,
            now=1_780_000_000,
        )
    assert kg.verify_webhook(
        SECRET, {k.upper(): v for k, v in headers.items()}, body, now=1_780_000_300
    ) == {"id": "n-1"}


def test_a_webhook_without_a_secret_or_with_a_short_one_is_refused_at_start_up() -> None:
    base = dict(audit=kg.MemorySink(), store="memory://", contact="c", subject=GATEWAY_SUBJECT)
    with pytest.raises(kg.ConfigurationError, match="go together"):
        kg.Guard([LOAN], deadline_webhook_url="https://hooks.example.kz/x", **base)
    with pytest.raises(kg.ConfigurationError, match="at least 24 bytes"):
        kg.Guard(
            [LOAN],
            deadline_webhook_url="https://hooks.example.kz/x",
            deadline_webhook_secret="short",
            **base,
        )
