"""Decision and record identifiers: UUIDv7 strings (RFC 9562), from the C twin and from Python."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest

from kzai_guard import ids
from kzai_guard._native import PUREPYTHON_VARIABLE

REQUIRED = os.environ.get("KZAI_GUARD_REQUIRE_NATIVE") == "1"


def _c_new_id() -> str:
    from kzai_guard import _ids

    return _ids.new_id()


def _c_built() -> bool:
    try:
        from kzai_guard import _ids  # noqa: F401
    except ImportError:
        return False
    return True


needs_c = pytest.mark.skipif(
    not _c_built() and not REQUIRED, reason="the C id maker was not built here"
)
MAKERS = [
    pytest.param(ids.python_new_id, id="python"),
    pytest.param(_c_new_id, id="c", marks=needs_c),
]


@pytest.mark.parametrize("make", MAKERS)
def test_an_id_is_a_canonical_uuid_of_version_7_and_the_rfc_variant(
    make: Callable[[], str],
) -> None:
    for _ in range(1000):
        value = make()
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert str(parsed) == value


@pytest.mark.parametrize("make", MAKERS)
def test_an_id_carries_the_millisecond_it_was_made_in(make: Callable[[], str]) -> None:
    for _ in range(200):
        before = time.time_ns() // 1_000_000
        value = make()
        after = time.time_ns() // 1_000_000
        assert before <= uuid.UUID(value).int >> 80 <= after


@pytest.mark.parametrize("make", MAKERS)
def test_ids_differ_in_their_random_bits(make: Callable[[], str]) -> None:
    # more ids than one pool of random bytes holds, so refills are covered
    values = [uuid.UUID(make()).int for _ in range(5000)]
    assert len(set(values)) == len(values)
    random_a = {(v >> 64) & 0xFFF for v in values}
    random_b_top = {(v >> 60) & 0x3 for v in values}
    random_b_low = {v & 0xFF for v in values}
    assert len(random_a) > 2000 and random_b_top == {0, 1, 2, 3} and len(random_b_low) == 256


@pytest.mark.parametrize("make", MAKERS)
def test_a_forked_child_does_not_repeat_its_parents_ids(make: Callable[[], str]) -> None:
    make()  # the parent has random bytes in hand when it forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, ",".join(make() for _ in range(30)).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent = [make() for _ in range(30)]
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode().split(",")
    os.waitpid(pid, 0)
    assert len(child) == 30
    random_bits = {uuid.UUID(v).int & ((1 << 62) - 1) for v in parent}
    assert random_bits.isdisjoint(uuid.UUID(v).int & ((1 << 62) - 1) for v in child)


@needs_c
def test_the_c_twin_makes_the_ids_where_it_was_built() -> None:
    code = "from kzai_guard import _ids, ids\nprint(ids.NATIVE, ids.new_id is _ids.new_id)\n"
    env = {k: v for k, v in os.environ.items() if k != PUREPYTHON_VARIABLE}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "True"]


def test_the_environment_variable_makes_the_ids_in_python() -> None:
    code = "from kzai_guard import ids\nprint(ids.NATIVE, ids.new_id is ids.python_new_id)\n"
    env = {**os.environ, PUREPYTHON_VARIABLE: "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "True"]


@needs_c
def test_the_c_twin_takes_no_arguments() -> None:
    from kzai_guard import _ids

    with pytest.raises(TypeError):
        _ids.new_id(1)  # type: ignore[call-arg]


def test_the_python_twin_takes_its_random_bits_from_the_operating_systems_csprng(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []

    def urandom(size: int) -> bytes:
        asked.append(size)
        return bytes(range(256)) * (size // 256) + bytes(size % 256)

    monkeypatch.setattr(ids, "_urandom", urandom)
    ids._pool.empty()
    try:
        first, second = ids.python_new_id(), ids.python_new_id()
    finally:
        ids._pool.empty()
    assert asked == [4096]
    # bytes 0-9 and 10-19 of the pool, with the version and variant bits set over them
    assert first.replace("-", "")[12:] == "7001" + "8203040506070809"
    assert second.replace("-", "")[12:] == "7a0b" + "8c0d0e0f10111213"
