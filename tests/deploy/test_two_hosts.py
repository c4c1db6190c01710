"""Two hosts sharing PostgreSQL for store and log; one host's connection is cut and restored.

Host A (uvicorn, two workers) reaches the database directly; host B (gunicorn, two workers, in
its own working directory) through a TCP proxy the test controls. While B is cut off it may not
trust its cached facts beyond the bound (``stale_after``): it refuses significant decisions
with a 503 problem, and never allows one on a consent that A withdrew once B's facts were older
than the bound. (Before that, B may lawfully act on what it last read: the bound is the
promise.) Once the link is back, B catches up by itself. Both hosts write one log, which
verifies with the public key alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.client import Answer, Client, Load
from tests.deploy.deployment import Deployment
from tests.deploy.proxy import CutMode, TcpProxy

pytestmark = pytest.mark.slow

STALE_AFTER_S = 5.0
"""The guard's default bound on the age of its facts (``stale_after``)."""
POLL_S = 0.25
"""The guard's default ``poll_interval``: how often each process reads the change feed."""
REFUSED_WITHIN_S = STALE_AFTER_S + 5.0
CAUGHT_UP_WITHIN_S = 30.0
WATCH_S = 2.0
REFUSALS = {
    "urn:kzai-guard:problem:facts-unavailable",
    "urn:kzai-guard:problem:audit-unavailable",
}


def until(
    client: Client, applicant: str, wanted: Callable[[Answer], bool], seconds: float
) -> list[Answer]:
    """Decisions about ``applicant`` one after another until one is ``wanted`` (or time is up)."""
    give_up = time.monotonic() + seconds
    answers = [client.decide(applicant)]
    while not wanted(answers[-1]) and time.monotonic() < give_up:
        time.sleep(0.1)
        answers.append(client.decide(applicant))
    return answers


def story(answers: list[Answer]) -> str:
    """What each answer was, a line each, for a failure's message."""
    return "\n".join(f"{a.sent:.2f} {a.status} {a.problem} pid {a.pid}" for a in answers)


def refused(answer: Answer) -> bool:
    return answer.status == 503 and answer.problem in REFUSALS


def allowed_ids(answers: list[Answer]) -> set[str]:
    return {a.decision_id for a in answers if a.status == 200 and a.decision_id}


@pytest.mark.parametrize("cut", ["reset", "blackhole"])
def test_a_host_cut_from_postgresql_refuses_then_catches_up_and_the_log_stays_one(
    pg_database: str, tmp_path: Path, cut: CutMode
) -> None:
    withdrawn, granted, unseen = (f"A-{uuid.uuid4().hex[:8]}" for _ in range(3))
    with TcpProxy("127.0.0.1", 5432) as proxy:
        proxied = pg_database.replace("127.0.0.1/", f"127.0.0.1:{proxy.port}/")
        deployment = Deployment(tmp_path, store=pg_database, audit=pg_database)
        host_a = deployment.server("uvicorn", name="host-a", workers=2)
        host_b = deployment.server(
            "gunicorn", name="host-b", workers=2, store=proxied, audit=proxied
        )
        try:
            host_a.start()
            host_b.start()
            # a decision that takes longer than the bound to answer is not refused within it
            a = deployment.client(host_a)
            b = deployment.client(host_b, timeout=REFUSED_WITHIN_S)
            a.grant(withdrawn)
            a.grant(granted)
            seen = [*until(b, withdrawn, lambda x: x.status == 200, 5.0)]
            seen += until(b, granted, lambda x: x.status == 200, 5.0)
            assert [x.status for x in seen[-1:]] == [200]

            proxy.cut(cut)
            cut_at = time.monotonic()
            cut_off = until(b, withdrawn, refused, REFUSED_WITHIN_S)
            # B may lawfully act on facts up to stale_after old: withdraw once that has passed
            # since B last read them (before the cut), so that any later allow is a breach
            time.sleep(max(0.0, cut_at + STALE_AFTER_S + POLL_S - time.monotonic()))
            a.withdraw(withdrawn)
            with Load([deployment.client(host_b) for _ in range(4)], lambda _: withdrawn) as load:
                time.sleep(WATCH_S)
            never_seen = b.decide(unseen)
            on_a = [a.decide(granted) for _ in range(5)]
            proxy.restore()
            caught_up = until(b, withdrawn, lambda x: x.status == 403, CAUGHT_UP_WITHIN_S)
            back = until(b, granted, lambda x: x.status == 200, CAUGHT_UP_WITHIN_S)

            assert refused(cut_off[-1]), story(cut_off)
            assert {x.status for x in cut_off} <= {200, 503}
            assert load.answers and all(refused(x) for x in load.answers)
            assert refused(never_seen)
            assert {x.status for x in on_a} == {200}
            assert caught_up[-1].problem == "urn:kzai-guard:problem:no-legal-basis"
            assert 200 not in {x.status for x in caught_up}, story(caught_up)
            assert back[-1].status == 200
            assert host_a.stop() == 0
            assert host_b.stop() == 0
        finally:
            host_a.close()
            host_b.close()

    verified = deployment.verify()
    trail = deployment.trail()

    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert trail.duplicated() == []
    answered = allowed_ids([*seen, *cut_off, *load.answers, *on_a, *caught_up, *back])
    assert set(trail.allowed_decisions()) == answered


@pytest.mark.parametrize("shape", ["uvicorn", "gunicorn"])
def test_a_worker_restarted_while_the_database_is_cut_off_leaves_the_host_serving(
    pg_database: str, tmp_path: Path, shape: str
) -> None:
    applicant = f"A-{uuid.uuid4().hex[:8]}"
    with TcpProxy("127.0.0.1", 5432) as proxy:
        proxied = pg_database.replace("127.0.0.1/", f"127.0.0.1:{proxy.port}/")
        deployment = Deployment(tmp_path, store=proxied, audit=proxied)
        host = deployment.server(shape, name="host", workers=2)
        try:
            host.start()
            client = deployment.client(host)
            client.grant(applicant)
            proxy.cut("reset")
            host.kill_worker(min(host.worker_pids()))
            during = until(client, applicant, refused, REFUSED_WITHIN_S)
            proxy.restore()
            host.wait_ready(CAUGHT_UP_WITHIN_S)
            after = until(client, applicant, lambda x: x.status == 200, CAUGHT_UP_WITHIN_S)

            assert refused(during[-1]), story(during)
            assert after[-1].status == 200, story(after)
            assert host.stop() == 0
        finally:
            host.close()
