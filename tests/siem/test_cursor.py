"""The shipper's cursor file: whatever it holds, a position, nothing, or a ``CursorError``."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kzai_guard.siem.cursor import CursorError, CursorFile, Position
from tests.strategies import json_values

FIXTURES = [HealthCheck.function_scoped_fixture]
JSON_VALUES = json_values()
CURSOR_LIKE = st.fixed_dictionaries(
    {}, optional={"seq": JSON_VALUES, "uid": JSON_VALUES, "line_hash": JSON_VALUES}
)


@settings(max_examples=200, suppress_health_check=FIXTURES)
@given(
    data=st.binary()
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | CURSOR_LIKE.map(lambda v: json.dumps(v).encode())
    | st.just(b'{"seq": 1e400, "uid": "u", "line_hash": "h"}')
)
def test_any_cursor_file_is_a_position_or_a_cursor_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "ship.cursor"
    path.write_bytes(data)
    try:
        position = CursorFile(path).load()
    except CursorError:
        return
    assert isinstance(position, Position) and position.seq >= 0


@settings(max_examples=100, suppress_health_check=FIXTURES)
@given(seq=st.integers(0, 2**63 - 1), uid=st.text(), line_hash=st.text())
def test_a_saved_position_loads_back(tmp_path: Path, seq: int, uid: str, line_hash: str) -> None:
    cursor = CursorFile(tmp_path / "ship.cursor")
    cursor.save(Position(seq, uid, line_hash))
    assert cursor.load() == Position(seq, uid, line_hash)
