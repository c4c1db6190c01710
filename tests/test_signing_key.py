"""A guard whose audit log is signed with the demo key says so at start-up; a policy file can
name the signing key (``audit_signing_key``)."""

from __future__ import annotations

from pathlib import Path

import pytest

import kzai_guard as kg
from kzai_guard.audit.keys import Signer, write_keypair
from kzai_guard.cli.main import main as cli
from tests.samples import GATEWAY_SUBJECT, LOAN


def demo_key_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "signed with the demo key" in r.getMessage()]


def open_guard(directory: Path, **options: object) -> kg.Guard:
    return kg.Guard(
        [LOAN],
        store="memory://",
        audit=directory / "kzai-audit",
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
        pseudonym_key=b"k" * 32,
        **options,  # type: ignore[arg-type]
    )


def test_a_guard_without_a_signer_warns_that_the_demo_key_signs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="kzai_guard"):
        open_guard(tmp_path).close()
    [warning] = demo_key_warnings(caplog)
    assert str(tmp_path / "kzai-audit") in warning
    assert "Guard(audit_signer=Signer.from_file(...))" in warning


def test_a_guard_given_the_demo_key_itself_warns_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    open_guard(tmp_path).close()
    [demo_key] = (tmp_path / "kzai-audit" / "keys").glob("*.key")
    caplog.clear()
    with caplog.at_level("WARNING", logger="kzai_guard"):
        open_guard(tmp_path, audit_signer=Signer.from_file(demo_key)).close()
    assert len(demo_key_warnings(caplog)) == 1


def test_a_guard_given_its_own_key_does_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private, _, _ = write_keypair(tmp_path / "secrets", "bank-audit")
    with caplog.at_level("WARNING", logger="kzai_guard"):
        open_guard(tmp_path, audit_signer=Signer.from_file(private)).close()
    assert demo_key_warnings(caplog) == []


def test_a_policy_files_signing_key_signs_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, public, _ = write_keypair(tmp_path / "secrets", "bank-audit")
    path = tmp_path / "kzai-guard.toml"
    path.write_text(
        '[guard]\nstore = "memory://"\naudit = "log"\ncontact = "c"\n'
        'subject_header = "X-Subject-Id"\naudit_signing_key = "secrets/bank-audit.key"\n\n'
        '[[policy]]\nname = "p"\nsignificance = "none"\nautonomy = "high"\nrisk = "minimal"\n',
        encoding="utf-8",
    )
    with caplog.at_level("WARNING", logger="kzai_guard"):
        guard = kg.Guard.from_file(path, audit=tmp_path / "log")
        guard.consents.grant("KZ-1", "p-purpose", "v1")
        guard.close()
    assert demo_key_warnings(caplog) == []
    origin = (tmp_path / "log" / "origin").read_text().strip()  # the log this test made
    assert (
        cli(["verify", str(tmp_path / "log"), "--public-key", str(public), "--origin", origin]) == 0
    )
