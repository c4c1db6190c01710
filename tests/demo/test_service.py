"""The demo loan service answers a refused consent withdrawal with its grounds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.demo.service import NOTICE_VERSION, build_service


def test_a_restricted_withdrawal_answers_409_with_the_grounds_and_the_date(
    tmp_path: Path,
) -> None:
    app, guard = build_service(tmp_path)
    until = datetime(2099, 1, 1, tzinfo=UTC)
    guard.consents.grant(
        "KZ-1",
        "credit-scoring",
        NOTICE_VERSION,
        withdrawal_restriction=kg.WithdrawalRestriction("loan 77-1 is outstanding", until),
    )
    with TestClient(app) as client:
        response = client.delete("/consents/KZ-1/credit-scoring")
        still_valid = guard.consents.is_valid("KZ-1", "credit-scoring", NOTICE_VERSION)
    assert (response.status_code, response.json()) == (
        409,
        {
            "withdrawn": 0,
            "grounds": ["loan 77-1 is outstanding"],
            "possible_from": "2099-01-01T00:00:00+00:00",
        },
    )
    assert still_valid is True
