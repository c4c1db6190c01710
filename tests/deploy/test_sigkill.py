"""SIGKILL under load: a worker, then the whole server, killed while clients send decisions.

Each trial starts a server (the shapes in turn) on the log the previous trial crashed, sends
decisions from several threads, kills one worker with SIGKILL (the master starts another), then
kills master and workers at once. With the default durability a 200 answer is released only
after its record is durable, so every 200 received must have its record in the log, no record
may be written twice, the log must open again (the next server starts) and verify with the
public key alone. ``KZG_DEPLOY_SIGKILL_TRIALS`` sets the number of trials (default 3, one per
server shape).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.deploy.client import Load
from tests.deploy.deployment import Deployment
from tests.deploy.servers import SHAPES, Server

pytestmark = pytest.mark.slow

TRIALS = int(os.environ.get("KZG_DEPLOY_SIGKILL_TRIALS", "3"))
CLIENTS = 4
RESPAWN_S = 60.0
APPLICANT = "A-sigkill"


def wait_for_respawn(server: Server, killed: int) -> None:
    give_up = time.monotonic() + RESPAWN_S
    while time.monotonic() < give_up:
        workers = server.worker_pids()
        if (
            killed not in workers
            and len(workers) == server.workers
            and workers <= server.ready_pids()
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"{server.shape} did not replace worker {killed}:\n{server.log()[-4000:]}")


def crash_trial(deployment: Deployment, shape: str, rng: random.Random) -> set[str]:
    """One trial; the decision ids of the 200 answers it received."""
    server = deployment.server(shape)
    try:
        server.start()
        clients = [deployment.client(server) for _ in range(CLIENTS)]
        clients[0].grant(APPLICANT)
        with Load(clients, lambda _: APPLICANT) as load:
            time.sleep(rng.uniform(0.3, 1.0))
            killed = rng.choice(sorted(server.worker_pids()))
            server.kill_worker(killed)
            wait_for_respawn(server, killed)
            time.sleep(rng.uniform(0.3, 1.0))
            server.kill()
        for client in clients:
            client.close()
    finally:
        server.close()
    assert {a.status for a in load.answers} == {200}, server.log()[-4000:]
    return load.allowed()


def test_sigkill_of_a_worker_and_of_the_whole_server_loses_no_acknowledged_record(
    tmp_path: Path,
) -> None:
    rng = random.Random(20261206)
    deployment = Deployment.on_one_host(tmp_path)
    acknowledged: set[str] = set()
    for trial in range(TRIALS):
        acknowledged |= crash_trial(deployment, SHAPES[trial % len(SHAPES)], rng)
    last = deployment.server("uvicorn", name="after-the-crashes")
    try:
        last.start()
        assert last.stop() == 0
    finally:
        last.close()

    verified = deployment.verify()
    trail = deployment.trail()

    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert trail.duplicated() == []
    assert len(acknowledged) > TRIALS
    assert acknowledged - set(trail.allowed_decisions()) == set()
