"""``kzai-guard report`` on a log and a store in PostgreSQL, and the witness status it shows."""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

import kzai_guard as kg
from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.cosignature import Cosigner, WitnessPolicy
from kzai_guard.audit.keys import Keyring, Signer, write_keypair
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.proof import checkpoints
from kzai_guard.audit.witnesses import COSIGNED_FILE
from kzai_guard.cli.main import main
from kzai_guard.report.witnessing import WitnessRow, read_cosignatures, witness_status
from tests.audit.conftest import make_record
from tests.postgres import fresh_database
from tests.samples import EXPLANATION, GATEWAY_SUBJECT

pytest.importorskip("matplotlib")

CONFIG = """
[guard]
profile = "kz"
contact = "fairness@bank.kz"

[[policy]]
name = "loan_approval"
purpose = "credit-scoring"
significance = "legal-effect"
autonomy = "high"
risk = "high"
model = { name = "scorer", version = "1.4" }
"""
W1 = Cosigner.generate("w1.example")
W2 = Cosigner.generate("w2.example")
STRANGER = Cosigner.generate("w3.example")
T1, T2, T3 = 1_760_000_000, 1_760_000_600, 1_760_001_200


def figures_of(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S)
    assert match is not None
    loaded: dict[str, object] = json.loads(match.group(1))
    return loaded


def test_a_report_reads_the_log_and_the_store_from_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kzai-guard.toml"
    config.write_text(CONFIG)
    _, public, signer = write_keypair(tmp_path / "keys", "pg-report")
    with fresh_database() as log_url, fresh_database() as store_url:
        guard = kg.Guard.from_file(
            config,
            store=store_url,
            audit=log_url,
            audit_signer=signer,
            subject=GATEWAY_SUBJECT,
            pseudonym_key=b"r" * 32,
        )
        try:

            @guard.decision("loan_approval")
            def approve() -> None:
                kg.explain(EXPLANATION)

            for i in range(6):
                with kg.decision_context(f"s-{i}"):
                    if i % 3:
                        guard.consents.grant(f"s-{i}", "credit-scoring", "v1")
                        approve()
                    else:
                        with pytest.raises(kg.DecisionBlocked):
                            approve()
            guard.objections.record("s-1")
            with kg.decision_context("s-1"), pytest.raises(kg.HumanReviewRequired):
                approve()
        finally:
            guard.close()
        out = tmp_path / "report.html"
        with psycopg.connect(log_url) as conn:  # the origin this test's log was given
            row = conn.execute("SELECT origin FROM kzg_log_head").fetchone()
        assert row is not None
        args = ["report", log_url, "--config", str(config), "--store", store_url]
        args += ["--origin", row[0]]
        assert main([*args, "--public-key", str(public), "--out", str(out)]) == 0
        capsys.readouterr()
        export = ["export", log_url, "--format", "jsonl", "--public-key", str(public)]
        assert main([*export, "--origin", row[0]]) == 0
        records = [json.loads(line)["record"] for line in capsys.readouterr().out.splitlines()]
    html = out.read_text(encoding="utf-8")
    figures = figures_of(html)
    decisions = [r for r in records if r["kind"] == "decision"]
    assert figures["decisions"] == len(decisions) == 7
    assert figures["by_verdict"] == {"allow": 4, "block": 2, "route": 1}
    assert figures["by_reason"] == sorted(
        [*key, n]
        for key, n in Counter((r["policy"], r["verdict"], r["reason"]) for r in decisions).items()
    )
    # The ticket was found in the store given by URL: pending, not unknown.
    assert figures["reviews"] == {
        "opened": 1,
        "completed": 0,
        "met": 0,
        "missed": 0,
        "pending": 1,
        "unknown": 0,
    }
    assert "Verified: chain and signatures hold" in html


def write_log(directory: Path, signer: Signer, records: int = 30) -> None:
    """``records`` records, a checkpoint every 7 (and the last at close)."""
    log = AuditLog.open(
        directory, signer=signer, checkpoint_every=7, checkpoint_interval_ms=3_600_000
    )
    for i in range(records):
        log.write(make_record(i, policy="loan_approval"))
    log.close()


def cosign(directory: Path, witness: Cosigner, size: int, at: int) -> None:
    """Keep ``witness``'s cosignature of the checkpoint of ``size`` as the log would."""
    note = next(n for n in checkpoints(directory) if n.checkpoint.size == size)
    cosigned = note.with_signatures([witness.cosign(note.checkpoint, at)])
    with (directory / COSIGNED_FILE).open("a") as out:
        out.write(cosigned.note() + "\n")


def forge(directory: Path, witness: Cosigner, size: int) -> None:
    """A line that names ``witness`` but whose signature is not over this checkpoint."""
    note = next(n for n in checkpoints(directory) if n.checkpoint.size == size)
    other = next(n for n in checkpoints(directory) if n.checkpoint.size != size)
    name, kid, signature = witness.cosign(other.checkpoint, T3)
    forged = SignedCheckpoint(note.checkpoint, (*note.signatures, (name, kid, signature)))
    with (directory / COSIGNED_FILE).open("a") as out:
        out.write(forged.note() + "\n")


@pytest.fixture
def witnessed(tmp_path: Path) -> tuple[Path, Path, Keyring]:
    """A log of 30 records whose checkpoints w1, w2 and an unknown witness cosigned."""
    _, public, signer = write_keypair(tmp_path / "keys", "log-key")
    directory = tmp_path / "audit"
    write_log(directory, signer)
    cosign(directory, W1, 14, T1)
    cosign(directory, W1, 28, T2)
    cosign(directory, W2, 21, T1)
    cosign(directory, STRANGER, 28, T3)
    forge(directory, W1, 30)
    return directory, public, Keyring.load([public])


def test_the_status_names_each_witness_with_its_newest_cosigned_size(
    witnessed: tuple[Path, Path, Keyring],
) -> None:
    directory, _, keyring = witnessed
    policy = WitnessPolicy.of([W1.public_key, W2.public_key], 2)
    status = witness_status(read_cosignatures(directory), keyring, 30, policy)
    assert status is not None
    assert status.witnesses == (
        WitnessRow("w1.example", 28, datetime.fromtimestamp(T2, UTC), True, 2),
        WitnessRow("w2.example", 21, datetime.fromtimestamp(T1, UTC), True, 9),
        WitnessRow("w3.example", 28, datetime.fromtimestamp(T3, UTC), False, 2),
    )
    assert (status.log_size, status.quorum, status.quorum_size) == (30, 2, 21)


def test_without_keys_a_forged_line_is_shown_unchecked(
    witnessed: tuple[Path, Path, Keyring],
) -> None:
    directory, _, keyring = witnessed
    status = witness_status(read_cosignatures(directory), keyring, 30)
    assert status is not None
    w1 = status.witnesses[0]
    assert (w1.name, w1.size, w1.checked, w1.behind) == ("w1.example", 30, False, 0)
    assert (status.quorum, status.quorum_size) == (None, None)


def test_a_log_without_cosignatures_has_no_witness_status(tmp_path: Path) -> None:
    _, public, signer = write_keypair(tmp_path / "keys", "log-key")
    write_log(tmp_path / "audit", signer, 10)
    notes = read_cosignatures(tmp_path / "audit")
    assert witness_status(notes, Keyring.load([public]), 10) is None


def run_report(directory: Path, public: Path, tmp_path: Path, *extra: str) -> str:
    config = tmp_path / "kzai-guard.toml"
    if not config.exists():
        config.write_text(CONFIG)
    out = tmp_path / "report.html"
    args = ["report", str(directory), "--config", str(config)]
    args += ["--origin", (directory / "origin").read_text().strip()]  # the log this test made
    args += ["--store", f"sqlite:///{tmp_path / 'store.db'}", "--public-key", str(public)]
    assert main([*args, "--out", str(out), *extra]) == 0
    return out.read_text(encoding="utf-8")


def test_the_integrity_section_shows_the_witnesses_and_the_quorum(
    witnessed: tuple[Path, Path, Keyring], tmp_path: Path
) -> None:
    directory, public, _ = witnessed
    w1, w2 = tmp_path / "w1.pub", tmp_path / "w2.pub"
    w1.write_text(W1.public_key.vkey() + "\n")
    w2.write_text(W2.public_key.vkey() + "\n")
    html = run_report(
        directory, public, tmp_path, "--witness-key", str(w1), "--witness-key", str(w2)
    )
    assert (
        '<tr><td>w1.example</td><td class="n" data-count="witness/w1.example/size">28</td>'
        '<td>2025-10-09 09:03</td><td class="n" data-count="witness/w1.example/behind">2</td>'
        "<td>✓</td></tr>"
    ) in html
    assert (
        '<tr><td>w3.example</td><td class="n" data-count="witness/w3.example/size">28</td>'
        '<td>2025-10-09 09:13</td><td class="n" data-count="witness/w3.example/behind">2</td>'
        "<td>no key given</td></tr>"
    ) in html
    assert (
        'Newest size with the witness quorum (2): <span data-count="witness_quorum_size">21</span>'
        in html
    )


def test_witness_keys_without_cosignatures_say_no_witness_cosigned(tmp_path: Path) -> None:
    _, public, signer = write_keypair(tmp_path / "keys", "log-key")
    write_log(tmp_path / "audit", signer, 10)
    key = tmp_path / "w1.pub"
    key.write_text(W1.public_key.vkey() + "\n")
    html = run_report(tmp_path / "audit", public, tmp_path, "--witness-key", str(key))
    assert "No witness has cosigned a checkpoint." in html
    assert "Checkpoints cosigned by witnesses" in html
    plain = run_report(tmp_path / "audit", public, tmp_path)
    assert "Checkpoints cosigned by witnesses" not in plain


ROUTED_CONFIG = (
    CONFIG
    + """inputs = ["income"]
monitoring = { grounds = ["sex"], action = "route", min_sample = 20 }
"""
)


def test_a_routing_for_disparity_is_counted_and_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kzai-guard.toml"
    config.write_text(ROUTED_CONFIG)
    guard = kg.Guard.from_file(
        config,
        store=f"sqlite:///{tmp_path / 'store.db'}",
        audit=tmp_path / "audit",
        subject=GATEWAY_SUBJECT,
        groups=lambda subject: {"sex": subject[0]},
        pseudonym_key=b"r" * 32,
    )
    try:

        @guard.decision("loan_approval")
        def approve(favourable: bool) -> None:
            kg.explain(EXPLANATION)
            kg.mark_outcome(favourable=favourable)

        for i in range(60):
            for sex, favourable in (("f", i % 10 < 2), ("m", i % 10 < 8)):
                guard.consents.grant(f"{sex}{i}", "credit-scoring", "v1")
                with kg.decision_context(f"{sex}{i}"), contextlib.suppress(kg.HumanReviewRequired):
                    approve(favourable)  # routed once a flush has judged the counts
        guard.disparity.flush()
        assert guard.switches.is_routed("loan_approval")
        with kg.decision_context("m0"), pytest.raises(kg.HumanReviewRequired):
            approve(True)
    finally:
        guard.close()
    key = str(next((tmp_path / "audit" / "keys").glob("*.pub")))
    html = run_report(tmp_path / "audit", Path(key), tmp_path)
    capsys.readouterr()
    origin = (tmp_path / "audit" / "origin").read_text().strip()  # the log this test made
    export = ["export", str(tmp_path / "audit"), "--format", "jsonl", "--public-key", key]
    assert main([*export, "--origin", origin]) == 0
    records = [json.loads(line)["record"] for line in capsys.readouterr().out.splitlines()]
    figures = figures_of(html)
    routed = [r for r in records if r["kind"] == "decision" and r["reason"] == "disparity"]
    assert figures["routings"] == sum(r["kind"] == "routing.started" for r in records) == 1
    assert ["loan_approval", "route", "disparity", len(routed)] in figures["by_reason"]
    assert len(routed) >= 1
    assert 'data-count="routings">1<' in html
    assert re.search(
        r"<td>KZ-AI 6</td><td>policy &#x27;loan_approval&#x27;: its AI decisions are routed to "
        r"humans since \d{4}-\d\d-\d\d \(sex=f: selection rate",
        html,
    )
