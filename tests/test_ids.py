"""Decision and record identifiers: UUIDv7 strings (RFC 9562)."""

from __future__ import annotations

import time
import uuid

from kzai_guard.ids import new_id


def test_an_id_is_a_canonical_uuid_of_version_7_and_the_rfc_variant() -> None:
    for _ in range(1000):
        value = new_id()
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert str(parsed) == value


def test_an_id_carries_the_millisecond_it_was_made_in() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(value).int >> 80 <= after


def test_ids_differ_in_their_random_bits() -> None:
    values = [uuid.UUID(new_id()).int for _ in range(2000)]
    assert len(set(values)) == len(values)
    random_a = {(v >> 64) & 0xFFF for v in values}
    random_b_top = {(v >> 60) & 0x3 for v in values}
    assert len(random_a) > 1000 and random_b_top == {0, 1, 2, 3}
