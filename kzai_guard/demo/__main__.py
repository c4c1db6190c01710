"""``python -m kzai_guard.demo``: run the demo service on loopback and walk through the law.

1. The applicant signs in: the bank's login gives a signed token, and the service knows who asks.
2. Someone else sends the applicant's id in an ``X-Subject-Id`` header to consent, object and
   read for them: every route answers 401, since a header names nobody.
3. A decision without consent is blocked (403, no-legal-basis).
4. With consent it is made, disclosed and explained (200, AI-Disclosure, Link to the explanation).
5. The person objects: the next decision goes to a human (202, review ticket); a credit officer
   claims it on the reviewer's API, reads the case and decides; the person sees the outcome.
6. The person withdraws consent: the next decision is blocked again.

Then a witness (C2SP tlog-witness, run here on loopback as another team would run it
elsewhere) cosigns the log's newest checkpoint, and the signed audit log is verified with the
log's public key and the witness's cosignature. Finally the compliance report of the run is
written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import kzai_guard as kg
from kzai_guard.demo.service import DEMO_OFFICER_TOKEN, build_service

APPLICANT = "KZ-880101300123"
APPLICATION = {
    "monthly_income": 600_000,
    "monthly_debt": 50_000,
    "amount": 2_400_000,
    "term_months": 24,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kzai_guard.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path("kzai-demo"), help="where the store and log go"
    )
    parser.add_argument("--keep", action="store_true", help="keep the previous run's data")
    args = parser.parse_args(argv)
    if args.workdir.exists() and not args.keep:
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True, exist_ok=True)

    app, guard, tokens = build_service(args.workdir)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    print(f"Demo Bank loan service on {base}, store and audit log in {args.workdir}/\n")
    try:
        _step(1, "The applicant signs in; the bank's login gives a signed token")
        token = tokens.issue(APPLICANT)
        signed_in = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=signed_in) as client:
            _show(client.get("/me"))
            with httpx.Client(base_url=base, headers={"X-Subject-Id": APPLICANT}) as forger:
                _forge(forger)
            _walk(client, guard)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        guard.close()
    code = _verify(args.workdir)
    _report(args.workdir)
    return code


def _forge(forger: httpx.Client) -> None:
    _step(2, "Someone else names the applicant in an X-Subject-Id header, without the token")
    _show(forger.post(f"/consents/{APPLICANT}/credit-scoring", json={}))
    _show(forger.post(f"/loans/{APPLICANT}/decision", json=APPLICATION))
    _show(forger.delete("/ai-decisions/objections"))


def _walk(client: httpx.Client, guard: kg.Guard) -> None:
    decide = f"/loans/{APPLICANT}/decision"

    _step(3, "A decision with no consent on file")
    _show(client.post(decide, json=APPLICATION))

    _step(4, "The applicant consents on the bank's consent screen; the decision runs")
    _show(client.post(f"/consents/{APPLICANT}/credit-scoring", json={}))
    allowed = client.post(decide, json=APPLICATION)
    _show(allowed, headers=("ai-disclosure", "ai-decision-id", "link"))
    link = allowed.headers["link"].split(";")[0].strip("<>")
    print("   The applicant follows the Link to the explanation, in Kazakh:")
    _show(client.get(link, params={"lang": "kk"}), indent="   ")
    print("   and asks for the data the decision rested on (the score is withheld, with why):")
    decision_id = allowed.headers["ai-decision-id"]
    _show(client.get(f"/ai-decisions/{decision_id}/data"), indent="   ")

    _step(5, "The applicant objects to automated decisions; the next one goes to a person")
    _show(client.post("/ai-decisions/objections", json={}))
    routed = client.post(decide, json=APPLICATION)
    _show(routed, headers=("location",))
    review_id = routed.json()["review_id"]
    officer = {"Authorization": f"Bearer {DEMO_OFFICER_TOKEN}"}
    print("   A credit officer, signed in to the bank, claims the ticket and reads the case:")
    tickets = f"/ai-reviews/tickets/{review_id}"
    _show(client.post(f"{tickets}/claim", json={}, headers=officer), indent="   ")
    case = client.get(tickets, headers=officer)
    print(f"      -> GET {tickets}: {case.status_code}; the applicant appears as", end=" ")
    print(f"{case.json()['subject']['pseudonym']}")
    decided = client.post(
        f"{tickets}/decision",
        json={"outcome": "approved", "reason": "Income and debts checked against the documents."},
        headers=officer,
    )
    _show(decided, indent="   ")
    print("   The applicant checks the ticket:")
    _show(client.get(routed.headers["location"]), indent="   ")

    _step(6, "The applicant withdraws the objection and the consent; the next decision")
    client.delete("/ai-decisions/objections")
    _show(client.delete(f"/consents/{APPLICANT}/credit-scoring"))
    _show(client.post(decide, json=APPLICATION))


def _verify(workdir: Path) -> int:
    from kzai_guard.cli.main import main as cli

    log = workdir / "kzai-audit"
    public_key = sorted((log / "keys").glob("*.pub"))[-1]
    witness_key = _witness(workdir, log, public_key)
    # the operator notes the origin once, when the service makes its log, and hands the auditor
    # the key bound to it: the auditor never takes the origin from the log being checked
    origin = (log / "origin").read_text().strip()
    bound_key = workdir / "audit-log.pub"
    bound_key.write_text(f"{origin} {public_key.read_text().split()[-1]}\n", encoding="utf-8")
    _step(8, "An auditor verifies the log with its public key and the witness's cosignature")
    args = ["verify", str(log), "--public-key", str(bound_key)]
    args += ["--witness-key", str(witness_key), "--witnesses", "1"]
    print("   $ kzai-guard " + " ".join(args))
    return cli(args)


def _witness(workdir: Path, log: Path, public_key: Path) -> Path:
    """Run a witness on loopback and have it cosign the log's newest checkpoint."""
    from kzai_guard.audit.cosignature import write_cosigner_keypair
    from kzai_guard.audit.keys import Keyring
    from kzai_guard.audit.lookup import newest_checkpoint
    from kzai_guard.audit.witnesses import WitnessEndpoint, Witnesses
    from kzai_guard.witness.app import witness_app
    from kzai_guard.witness.store import WitnessStore

    _step(7, "A witness run by another team cosigns the log's newest checkpoint")
    keys = workdir / "witness"
    cosigner = write_cosigner_keypair(keys, "witness.demo.invalid/w1")
    note = newest_checkpoint(log)
    if note is None:
        raise SystemExit("the demo log has no checkpoint")
    store = WitnessStore(keys / "state.sqlite3")
    logs = {note.checkpoint.origin: Keyring.load([public_key])}
    port = _free_port()
    app = witness_app(cosigner, logs, store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    witnesses = Witnesses([WitnessEndpoint.of(f"http://127.0.0.1:{port}", cosigner.public_key)])
    try:
        witnesses.start(log)
        witnesses.submit(note)
        cosigned = witnesses.wait(note.checkpoint.size, timeout=30)
    finally:
        witnesses.close()
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
    print(
        f"   witness {cosigner.name} at http://127.0.0.1:{port}: size {note.checkpoint.size} "
        + ("cosigned" if cosigned else "NOT cosigned")
    )
    return keys / "witness.pub"


def _report(workdir: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from kzai_guard.audit.cosignature import WitnessPolicy
    from kzai_guard.audit.keys import Keyring
    from kzai_guard.demo.service import LOAN_APPROVAL
    from kzai_guard.report.build import build_report

    log = workdir / "kzai-audit"
    now = datetime.now(UTC)
    html, _ = build_report(
        log,
        [LOAN_APPROVAL],
        [],
        store_url=f"sqlite:///{workdir / 'kzai-guard.db'}",
        keyring=Keyring.load(sorted((log / "keys").glob("*.pub"))),
        since=now - timedelta(days=1),
        until=now + timedelta(minutes=1),
        language=kg.Language.EN,
        now=now,
        origin=(log / "origin").read_text(encoding="utf-8").strip(),  # the log the demo made
        witnesses=WitnessPolicy.of([workdir / "witness" / "witness.pub"], 1),
    )
    path = workdir / "compliance-report.html"
    path.write_text(html, encoding="utf-8")
    _step(9, "The compliance officer's report of the run")
    print(f"   {path}")


def _step(number: int, title: str) -> None:
    print(f"\n{number}. {title}")


def _show(response: httpx.Response, headers: tuple[str, ...] = (), indent: str = "") -> None:
    request = response.request
    print(f"{indent}   -> {request.method} {request.url.path}: {response.status_code}")
    for name in headers:
        if name in response.headers:
            print(f"{indent}      {name}: {response.headers[name]}")
    body: Any = response.json() if response.content else None
    text = json.dumps(body, ensure_ascii=False, indent=2)
    print("\n".join(f"{indent}      {line}" for line in text.splitlines()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
