"""``kzai-guard check``: start-up rules and pre-compliance findings of a policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kzai_guard.audit.keys import write_keypair
from kzai_guard.cli.main import main

VALID = """
[guard]
profile = "kz"
contact = "privacy@bank.kz"
audit_signing_key = "audit.key"

[[policy]]
name = "loan_approval"
purpose = "credit-scoring"
significance = "legal-effect"
autonomy = "high"
risk = "high"
risk_reviewed_on = "2026-03-01"
model = { name = "scorer", version = "1.4" }
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "kzai-guard.toml"
    path.write_text(text)
    if not (tmp_path / "audit.key").exists():
        write_keypair(tmp_path, "audit")
    return str(path)


def test_a_sound_file_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", write(tmp_path, VALID), "--today", "2026-11-26"]) == 0
    assert capsys.readouterr().out == "1 policies checked (kz profile), 0 findings\n"


def test_a_stale_risk_review_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", write(tmp_path, VALID), "--today", "2027-03-02"]) == 1
    out = capsys.readouterr().out
    assert "risk review of 2026-03-01 is over 365 days old" in out


def test_a_prohibited_capability_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = VALID + 'capabilities = ["social-scoring"]\n'
    assert main(["check", write(tmp_path, text)]) == 2
    assert "'social-scoring' is prohibited unless a law provides for it" in capsys.readouterr().err


def test_a_significant_automated_policy_without_a_basis_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = VALID.replace('purpose = "credit-scoring"\n', "")
    assert main(["check", write(tmp_path, text)]) == 2
    assert "needs a legal basis" in capsys.readouterr().err


def test_a_policy_whose_explanations_lack_a_contact_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = VALID.replace('contact = "privacy@bank.kz"\n', "")
    assert main(["check", write(tmp_path, text)]) == 2
    assert "owe an explanation with a contact" in capsys.readouterr().err


def test_transfers_outside_kazakhstan_are_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    destinations = """
[[destination]]
name = "siem-almaty"
country = "KZ"

[[destination]]
name = "splunk-cloud"
country = "US"

[[destination]]
name = "archive"
"""
    path = write(tmp_path, VALID + destinations)
    assert main(["check", path, "--today", "2026-11-26"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "finding: destination 'splunk-cloud' sends audit data to US, outside Kazakhstan: a "
        "cross-border transfer, lawful only to an adequate state or with consent (KZ-PD 16)",
        "finding: destination 'archive' declares no country; set 'country' (ISO 3166 alpha-2) "
        "so that transfers can be judged (KZ-PD 12(2))",
        "1 policies checked (kz profile), 2 findings",
    ]


def test_a_bad_country_code_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, VALID + '\n[[destination]]\nname = "x"\ncountry = "Germany"\n')
    assert main(["check", path]) == 2
    assert "destination #1" in capsys.readouterr().err


def test_a_protected_input_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID + 'inputs = ["income", "sex"]\nmonitoring = { grounds = ["sex"] }\n'
    assert main(["check", write(tmp_path, text)]) == 2
    assert "protected attribute(s) 'sex'" in capsys.readouterr().err


def test_an_audit_log_signed_with_the_demo_key_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_signed = VALID.replace('audit_signing_key = "audit.key"\n', "")
    assert main(["check", write(tmp_path, demo_signed), "--today", "2026-11-26"]) == 1
    out = capsys.readouterr().out
    assert "finding: [guard]: the audit log 'kzai-audit' would be signed with the demo key" in out
    assert "set audit_signing_key" in out


def test_an_unreadable_signing_key_stops_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = VALID.replace('"audit.key"', '"nowhere.key"')
    assert main(["check", write(tmp_path, missing), "--today", "2026-11-26"]) == 2
    assert "cannot read private key" in capsys.readouterr().err
