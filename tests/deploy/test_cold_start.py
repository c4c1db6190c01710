"""Eight processes of the service starting at once on an empty PostgreSQL database all start.

Each process imports the service's module, building its guard with the store and the audit log
both in the one database (so both schemas are created by whichever process comes first),
records a consent and exits cleanly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.deploy.deployment import Deployment
from tests.deploy.servers import process_env

PROCESSES = 8
TIMEOUT_S = 120


def test_eight_processes_starting_at_once_on_an_empty_database_all_start(
    pg_database: str, tmp_path: Path
) -> None:
    deployment = Deployment(tmp_path, store=pg_database, audit=pg_database)
    commands = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.deploy.operator", "grant", f"A-{n}"],
            cwd=tmp_path,
            env=process_env(deployment.env()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]

    results = [(*p.communicate(timeout=TIMEOUT_S), p.returncode) for p in commands]

    failed = [(code, err[-2000:]) for _, err, code in results if code != 0]
    assert failed == []
    assert [out.strip() for out, _, _ in results] == ["done"] * PROCESSES
    assert len(deployment.trail().ids("consent.granted")) == PROCESSES
