"""The PostgreSQL store survives its connection: reads are retried on a fresh connection, writes
fail cleanly while the database is out of reach, and any number of processes may create the
schema at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

import kzai_guard as kg
from kzai_guard.errors import StoreError
from kzai_guard.stores.base import Store
from kzai_guard.stores.postgres import PostgresDialect
from kzai_guard.stores.sql import SqlStore
from kzai_guard.stores.url import open_store
from tests.postgres import PG_ADDRESS, fresh_database
from tests.tcp_proxy import CuttableProxy

ROOT = Path(__file__).resolve().parents[2]
GIVE_UP_S = 15.0
T = TypeVar("T")


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def proxy() -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(PG_ADDRESS)
    yield proxy
    proxy.close()


@pytest.fixture
def store(database: str, proxy: CuttableProxy) -> Iterator[Store]:
    """The store on ``database``, reached through ``proxy``."""
    opened = open_store(database.replace("127.0.0.1/", f"127.0.0.1:{proxy.port}/"))
    yield opened
    opened.close()


def consent(subject: str) -> kg.Consent:
    return kg.Consent(
        id=uuid.uuid4().hex,
        subject=subject,
        purpose="credit-scoring",
        notice_version="v1",
        notice_digest=None,
        method=kg.CollectionMethod.WEB_FORM,
        granted_at=datetime.now(UTC),
    )


def eventually(call: Callable[[], T]) -> T:
    """``call()`` once it stops raising StoreError (the store waits before reconnecting)."""
    give_up = time.monotonic() + GIVE_UP_S
    while True:
        try:
            return call()
        except StoreError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.05)


def test_a_read_after_the_connection_broke_is_answered_on_a_fresh_connection(
    proxy: CuttableProxy, store: Store
) -> None:
    store.add_consent(consent("A-1"))
    proxy.cut()
    proxy.restore()

    consents = store.consents_of("A-1")

    assert [c.subject for c in consents] == ["A-1"]


def test_while_cut_every_call_raises_store_error_and_after_restore_the_store_works_again(
    proxy: CuttableProxy, store: Store
) -> None:
    store.add_consent(consent("A-1"))
    proxy.cut()

    with pytest.raises(StoreError):
        store.consents_of("A-1")
    with pytest.raises(StoreError):
        store.add_consent(consent("A-2"))
    with pytest.raises(StoreError):
        store.changes_since(0)
    proxy.restore()
    eventually(lambda: store.add_consent(consent("A-2")))

    assert [c.subject for c in store.consents_of("A-1") + store.consents_of("A-2")] == [
        "A-1",
        "A-2",
    ]
    assert [change.subject for change in store.changes_since(0)] == ["A-1", "A-2"]


def test_a_write_on_a_connection_that_broke_before_it_began_is_made_once_on_a_fresh_one(
    database: str, proxy: CuttableProxy, store: Store
) -> None:
    store.latest_change()
    proxy.cut()
    proxy.restore()

    store.add_consent(consent("A-1"))

    direct = open_store(database)
    assert [c.subject for c in direct.consents_of("A-1")] == ["A-1"]
    assert len(direct.changes_since(0)) == 1
    direct.close()


def test_a_connection_ended_by_the_server_is_replaced(database: str) -> None:
    store = open_store(database)
    assert isinstance(store, SqlStore)
    store.add_consent(consent("A-1"))
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    assert [c.subject for c in store.consents_of("A-1")] == ["A-1"]
    store.close()


START_AT_ONCE = """
import sys, time
from pathlib import Path
import kzai_guard as kg

go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
guard = kg.Guard(
    [kg.DecisionPolicy.model_validate_json(sys.argv[3])],
    store=sys.argv[1],
    audit=kg.MemorySink(),
    subject=kg.from_path_param("applicant_id"),
    contact="credit@example.kz",
)
guard.close()
print("started")
"""


def test_eight_processes_starting_at_once_on_an_empty_database_all_start(
    database: str, tmp_path: Path
) -> None:
    from tests.samples import LOAN

    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", START_AT_ONCE, database, str(go), LOAN.model_dump_json()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(8)
    ]
    time.sleep(2.0)  # let every process import kzai_guard and wait for the signal
    go.touch()
    results = [process.communicate(timeout=120) for process in processes]

    assert [
        (p.returncode, out.strip()) for p, (out, _) in zip(processes, results, strict=True)
    ] == [(0, "started")] * 8, [err for _, err in results if err]
    store = open_store(database)
    assert len(store.secret("pseudonym-key", lambda: b"")) == 32
    store.close()


class EndingDialect(PostgresDialect):
    """PostgreSQL's dialect, but the server ends the session of the first write transaction
    at ``when``: ``"start"`` (nothing sent yet but BEGIN) or ``"commit"`` (all its statements
    sent, the COMMIT not yet answered)."""

    def __init__(self, database: str, when: str) -> None:
        self.database = database
        self.when = when
        self.ended = 0

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        with super().transaction(conn):
            if self.when == "start":
                self._end(conn)
            yield
            if self.when == "commit":
                self._end(conn)

    def _end(self, conn: Any) -> None:
        if self.ended:
            return
        self.ended += 1
        with psycopg.connect(self.database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.pgconn.backend_pid,))


def ending_store(database: str, when: str) -> SqlStore:
    return SqlStore(
        lambda: psycopg.connect(database, autocommit=True), EndingDialect(database, when)
    )


def test_a_write_whose_session_ended_before_it_committed_is_made_once_on_a_new_one(
    database: str,
) -> None:
    store = ending_store(database, "start")

    store.add_consent(consent("A-1"))

    assert [c.subject for c in store.consents_of("A-1")] == ["A-1"]
    assert [change.subject for change in store.changes_since(0)] == ["A-1"]
    store.close()


def test_a_write_whose_session_ended_while_committing_is_reported_not_repeated(
    database: str,
) -> None:
    store = ending_store(database, "commit")

    with pytest.raises(StoreError, match="it may or may not have been stored"):
        store.add_consent(consent("A-1"))
    changes = store.changes_since(0)

    assert changes == []  # the server ended the session before the COMMIT: nothing is there
    store.close()


def test_a_write_waiting_on_a_lock_held_elsewhere_is_refused_not_held() -> None:
    # Another session holds the change feed's lock and stays silent: the store's own session
    # gives up after its lock_timeout (SESSION_BOUNDS) with a StoreError instead of waiting.
    from kzai_guard.stores.base import SwitchState

    with fresh_database() as url:
        store = open_store(url)
        try:
            with psycopg.connect(url) as holder, holder.transaction():
                holder.execute("LOCK TABLE kzg_changes IN ACCESS EXCLUSIVE MODE")
                outcome: list[BaseException | None] = []

                def write() -> None:
                    try:
                        store.set_switch(
                            SwitchState("loan_approval", True, datetime.now(UTC), "ops", None)
                        )
                    except BaseException as exc:  # the outcome is what the test looks at
                        outcome.append(exc)
                    else:
                        outcome.append(None)

                writer = threading.Thread(target=write, daemon=True)
                writer.start()
                writer.join(60)
                refused = list(outcome)
        finally:
            store.close()

    assert len(refused) == 1 and isinstance(refused[0], StoreError), refused
    assert "lock timeout" in str(refused[0])


def test_a_read_on_a_link_gone_silent_fails_after_the_call_limit_instead_of_waiting() -> None:
    from tests.deploy.proxy import TcpProxy

    with fresh_database() as url, TcpProxy(*PG_ADDRESS) as proxy:
        store = open_store(url.replace("127.0.0.1/", f"127.0.0.1:{proxy.port}/"))
        try:
            store._watchdog.limit = 0.5  # type: ignore[attr-defined]
            assert store.consents_of("A-1") == []
            proxy.cut("blackhole")
            outcome: list[BaseException | None] = []

            def read() -> None:
                try:
                    store.consents_of("A-1")
                except BaseException as exc:  # the outcome is what the test looks at
                    outcome.append(exc)
                else:
                    outcome.append(None)

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            reader.join(30)
            proxy.restore()
            failed = list(outcome)
            back = eventually(lambda: store.consents_of("A-1"))
        finally:
            store.close()

    assert len(failed) == 1 and isinstance(failed[0], StoreError), failed
    assert "no answer within 0.5s" in str(failed[0])
    assert back == []
