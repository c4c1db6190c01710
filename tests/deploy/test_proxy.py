"""The TCP proxy of the two-host tests carries, cuts and restores a PostgreSQL connection."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.deploy.proxy import TcpProxy

URL = "postgresql://127.0.0.1:{port}/test"


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", 5432) as proxy:
        yield proxy


def select_one(connection: psycopg.Connection[tuple[int]]) -> int:
    row = connection.execute("SELECT 1").fetchone()
    assert row == (1,)
    return row[0]


def test_a_reset_breaks_open_connections_and_refuses_new_ones_until_restored(
    proxy: TcpProxy,
) -> None:
    url = URL.format(port=proxy.port)
    with psycopg.connect(url, autocommit=True) as before:
        assert select_one(before) == 1

        proxy.cut("reset")

        with pytest.raises(psycopg.OperationalError):
            select_one(before)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5)
    proxy.restore()
    with psycopg.connect(url, autocommit=True) as after:
        assert select_one(after) == 1


def test_a_blackhole_holds_every_byte_until_restored(proxy: TcpProxy) -> None:
    url = URL.format(port=proxy.port)
    with psycopg.connect(url, autocommit=True) as connection, ThreadPoolExecutor(1) as pool:
        proxy.cut("blackhole")
        pending = pool.submit(select_one, connection)

        assert pending.done() is False
        with pytest.raises(TimeoutError):
            pending.result(0.5)
        proxy.restore()

        assert pending.result(10) == 1
