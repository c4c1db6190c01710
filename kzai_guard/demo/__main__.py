"""``python -m kzai_guard.demo``: run the demo service on loopback and walk through the law.

1. The applicant signs in: the bank's login gives a signed token, and the service knows who asks.
2. Someone else sends the applicant's id in an ``X-Subject-Id`` header to consent, object and
   read for them: every route answers 401, since a header names nobody.
3. A decision without consent is blocked (403, no-legal-basis).
4. With consent it is made, disclosed and explained (200, AI-Disclosure, Link to the explanation).
5. The person objects: the next decision goes to a human (202, review ticket), who completes it.
6. The person withdraws consent: the next decision is blocked again.

Finally the signed audit log is verified.
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
from kzai_guard.demo.service import build_service

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
    return _verify(args.workdir)


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

    _step(5, "The applicant objects to automated decisions; the next one goes to a person")
    _show(client.post("/ai-decisions/objections", json={}))
    routed = client.post(decide, json=APPLICATION)
    _show(routed, headers=("location",))
    review_id = routed.json()["review_id"]
    guard.reviews.complete(
        review_id, reviewer=kg.Reviewer(id="credit-officer-12"), outcome=kg.ReviewOutcome.APPROVED
    )
    print("   A credit officer completes the review; the applicant checks the ticket:")
    _show(client.get(routed.headers["location"]), indent="   ")

    _step(6, "The applicant withdraws the objection and the consent; the next decision")
    client.delete("/ai-decisions/objections")
    _show(client.delete(f"/consents/{APPLICANT}/credit-scoring"))
    _show(client.post(decide, json=APPLICATION))


def _verify(workdir: Path) -> int:
    from kzai_guard.cli.main import main as cli

    log = workdir / "kzai-audit"
    public_key = sorted((log / "keys").glob("*.pub"))[-1]
    _step(7, "An auditor verifies the signed audit log with the public key alone")
    print(f"   $ kzai-guard verify {log} --public-key {public_key}")
    return cli(["verify", str(log), "--public-key", str(public_key)])


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
