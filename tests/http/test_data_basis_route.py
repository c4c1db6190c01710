"""The data behind a decision over HTTP, on FastAPI and on Starlette: the person gets the values
their policy shows, the existence and reason of the ones it withholds, and nothing once erased;
nobody else gets anything. The audit record holds the digest of exactly what is kept."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.testing import memory_guard
from tests.postgres import fresh_database
from tests.samples import EXPLANATION, GATEWAY_SUBJECT

PERSON = "KZ-880101300123"
OTHER = "KZ-900202400456"
INCOME = 600_000
SCORE = 0.8125
CO_BORROWER_INCOME = 410_000
SECRET_REASON = "The scoring model's output is the bank's trade secret."

LOAN = kg.DecisionPolicy(
    name="loan",
    purpose="credit",
    significance="legal-effect",
    autonomy="high",
    risk="high",
    model=kg.ModelInfo(name="scorer", version="3"),
    data_basis=(
        kg.BasisInput(name="monthly_income", source="request", label="Monthly income"),
        kg.BasisInput(name="employer", source="request"),
        kg.BasisInput(
            name="risk_score", source="derived", redaction="trade_secret", reason=SECRET_REASON
        ),
        kg.BasisInput(name="co_borrower_income", source="request", redaction="third_party"),
    ),
)


def reported() -> dict[str, Any]:
    return {
        "monthly_income": INCOME,
        "risk_score": SCORE,
        "co_borrower_income": CO_BORROWER_INCOME,
    }


def fastapi_app(guard: kg.Guard) -> Any:
    app = FastAPI()
    guard.install(app)

    @app.post("/loans/{applicant}")
    @guard.decision("loan")
    async def decide(applicant: str) -> dict[str, bool]:
        kg.explain(EXPLANATION)
        kg.data_basis(reported())
        return {"approved": True}

    return app


def starlette_app(guard: kg.Guard) -> Any:
    @guard.decision("loan")
    async def decide(request: Request) -> JSONResponse:
        kg.explain(EXPLANATION)
        kg.data_basis(reported())
        return JSONResponse({"approved": True})

    app = Starlette(routes=[Route("/loans/{applicant}", decide, methods=["POST"])])
    guard.install(app)
    return app


@pytest.fixture(params=[fastapi_app, starlette_app], ids=["fastapi", "starlette"])
def service(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[kg.Guard, kg.MemorySink, TestClient]]:
    guard, sink = memory_guard([LOAN], subject=kg.from_header("X-Person"), contact="c")
    build: Callable[[kg.Guard], Any] = request.param
    for person in (PERSON, OTHER):
        guard.consents.grant(person, "credit", "v1")
    with TestClient(build(guard)) as client:
        yield guard, sink, client
    guard.close()


def decide_for(client: TestClient, person: str) -> str:
    answer = client.post(f"/loans/{person}", headers={"X-Person": person})
    assert answer.status_code == 200
    return answer.headers["ai-decision-id"]


def test_the_person_gets_shown_values_and_only_the_reason_for_withheld_ones(
    service: tuple[kg.Guard, kg.MemorySink, TestClient],
) -> None:
    _, _, client = service
    decision_id = decide_for(client, PERSON)

    answer = client.get(f"/ai-decisions/{decision_id}/data", headers={"X-Person": PERSON})

    assert answer.status_code == 200
    body = answer.json()
    assert body["inputs"] == [
        {
            "name": "monthly_income",
            "label": "Monthly income",
            "source": "request",
            "redaction": "shown",
            "reported": True,
            "withheld": False,
            "value": INCOME,
        },
        {
            "name": "employer",
            "label": None,
            "source": "request",
            "redaction": "shown",
            "reported": False,
            "withheld": False,
            "value": None,
        },
        {
            "name": "risk_score",
            "label": None,
            "source": "derived",
            "redaction": "trade_secret",
            "reported": True,
            "withheld": True,
            "reason": SECRET_REASON,
        },
        {
            "name": "co_borrower_income",
            "label": None,
            "source": "request",
            "redaction": "third_party",
            "reported": True,
            "withheld": True,
            "reason": "The value is other people's personal data.",
        },
    ]
    assert (body["decision_id"], body["policy"], body["not_reported"]) == (
        decision_id,
        "loan",
        ["employer"],
    )
    for withheld in (str(SCORE), str(CO_BORROWER_INCOME)):
        assert withheld not in answer.text


def test_the_audit_record_holds_the_digest_of_exactly_what_is_kept(
    service: tuple[kg.Guard, kg.MemorySink, TestClient],
) -> None:
    guard, sink, client = service
    decision_id = decide_for(client, PERSON)
    guard.data_bases.flush()

    kept = guard.store.data_basis_of(decision_id)
    [record] = [r for r in sink.of_kind(kg.EventKind.DECISION) if r.id == decision_id]

    assert kept is not None and kept.decision_id == decision_id
    assert orjson.loads(kept.body)["values"] == reported()
    assert record.data_basis_digest == hashlib.sha256(kept.body).hexdigest() == kept.digest
    assert record.detail == "data basis lacks employer"  # a declared input went unreported


def test_another_persons_decision_is_not_found(
    service: tuple[kg.Guard, kg.MemorySink, TestClient],
) -> None:
    _, _, client = service
    decision_id = decide_for(client, PERSON)

    answer = client.get(f"/ai-decisions/{decision_id}/data", headers={"X-Person": OTHER})

    assert answer.status_code == 404
    assert answer.json()["type"] == "urn:kzai-guard:problem:not-found"
    assert str(INCOME) not in answer.text


@pytest.mark.parametrize("build", [fastapi_app, starlette_app], ids=["fastapi", "starlette"])
def test_after_erasure_the_data_is_gone_and_the_other_person_keeps_theirs(
    build: Callable[[kg.Guard], Any], tmp_path: Path
) -> None:
    guard = kg.Guard(
        [LOAN],
        store=f"sqlite:///{tmp_path / 'kzai-guard.db'}",
        audit=tmp_path / "kzai-audit",
        subject=kg.from_header("X-Person"),
        contact="c",
    )
    for person in (PERSON, OTHER):
        guard.consents.grant(person, "credit", "v1")
    with TestClient(build(guard)) as client:
        erased = decide_for(client, PERSON)
        kept = decide_for(client, OTHER)

        removed = guard.erase_subject(PERSON)

        gone = client.get(f"/ai-decisions/{erased}/data", headers={"X-Person": PERSON})
        still = client.get(f"/ai-decisions/{kept}/data", headers={"X-Person": OTHER})
    guard.close()

    assert removed.data_bases == 1
    assert gone.status_code == 404
    assert (still.status_code, still.json()["inputs"][0]["value"]) == (200, INCOME)


def test_an_undeclared_input_is_refused_where_it_is_reported_and_the_failure_recorded() -> None:
    guard, sink = memory_guard([LOAN], subject=GATEWAY_SUBJECT, contact="c")
    guard.consents.grant(PERSON, "credit", "v1")

    @guard.decision("loan")
    def decide() -> None:
        kg.explain(EXPLANATION)
        kg.data_basis({"monthly_income": INCOME, "postcode": "050000"})

    with kg.decision_context(PERSON), pytest.raises(kg.InvalidDataBasis) as refused:
        decide()

    assert str(refused.value) == (
        "the policy does not declare the input(s) postcode: add them to its data_basis "
        "(declared: monthly_income, employer, risk_score, co_borrower_income)"
    )
    [record] = sink.of_kind(kg.EventKind.DECISION_FAILED)
    assert (record.detail, record.data_basis_digest) == (
        "raised kzai_guard.errors.InvalidDataBasis",
        None,
    )
    guard.close()


def test_a_policy_without_a_data_basis_refuses_reported_values() -> None:
    plain = LOAN.model_copy(update={"data_basis": ()})
    guard, _ = memory_guard([plain], subject=GATEWAY_SUBJECT, contact="c")
    guard.consents.grant(PERSON, "credit", "v1")

    @guard.decision("loan")
    def decide() -> None:
        kg.explain(EXPLANATION)
        kg.data_basis({"monthly_income": INCOME})

    with kg.decision_context(PERSON), pytest.raises(kg.InvalidDataBasis):
        decide()
    guard.close()


def test_another_host_serves_the_data_as_soon_as_a_sync_response_arrives() -> None:
    with fresh_database() as url:
        guards = [
            memory_guard(
                [LOAN],
                store=url,
                subject=kg.from_header("X-Person"),
                contact="c",
                durability="sync",
            )[0]
            for _ in range(2)
        ]
        guards[0].consents.grant(PERSON, "credit", "v1")
        deciding, serving = (TestClient(fastapi_app(guard)) for guard in guards)
        served = []
        for _ in range(20):
            decision_id = decide_for(deciding, PERSON)
            url_of_data = f"/ai-decisions/{decision_id}/data"
            served.append(serving.get(url_of_data, headers={"X-Person": PERSON}).status_code)
        for client in (deciding, serving):
            client.close()
        for guard in guards:
            guard.close()

    assert served == [200] * 20


def test_a_decision_inside_another_keeps_each_ones_data_basis_apart() -> None:
    guard, sink = memory_guard([LOAN], subject=GATEWAY_SUBJECT, contact="c")
    guard.consents.grant(PERSON, "credit", "v1")

    @guard.decision("loan")
    def inner() -> None:
        kg.explain(EXPLANATION)
        kg.data_basis({"monthly_income": 1})

    @guard.decision("loan")
    def outer() -> None:
        kg.explain(EXPLANATION)
        kg.data_basis({"employer": "Kaspi"})
        inner()
        kg.data_basis({"monthly_income": 2})

    with kg.decision_context(PERSON):
        outer()
    guard.data_bases.flush()
    inner_record, outer_record = sink.of_kind(kg.EventKind.DECISION)  # in the order written

    values = {}
    for record in (inner_record, outer_record):
        kept = guard.store.data_basis_of(record.id)
        assert kept is not None and kept.decision_id == record.id
        values[record.id] = orjson.loads(kept.body)["values"]
    assert values == {
        inner_record.id: {"monthly_income": 1},
        outer_record.id: {"employer": "Kaspi", "monthly_income": 2},
    }
    guard.close()


def test_a_value_whose_input_the_policy_no_longer_declares_is_withheld(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'kzai-guard.db'}"
    before, _ = memory_guard([LOAN], store=store, subject=GATEWAY_SUBJECT, contact="c")
    before.consents.grant(PERSON, "credit", "v1")

    @before.decision("loan")
    def decide() -> None:
        kg.explain(EXPLANATION)
        kg.data_basis(reported())

    with kg.decision_context(PERSON) as context:
        decide()
    before.close()
    narrower = LOAN.model_copy(update={"data_basis": LOAN.data_basis[:1]})
    after, _ = memory_guard(
        [narrower], store=store, subject=kg.from_header("X-Person"), contact="c"
    )

    with TestClient(starlette_app(after)) as client:
        answer = client.get(
            f"/ai-decisions/{context.decision_id}/data", headers={"X-Person": PERSON}
        )
    after.close()

    assert [(i["name"], i.get("value"), i["withheld"]) for i in answer.json()["inputs"]] == [
        ("monthly_income", INCOME, False),
        ("co_borrower_income", None, True),
        ("risk_score", None, True),
    ]
    assert str(SCORE) not in answer.text and str(CO_BORROWER_INCOME) not in answer.text
