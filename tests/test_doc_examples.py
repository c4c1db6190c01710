"""What docs/ shows as real output is what the code writes (see ``tests/doc_examples.py``), and
the facts the SIEM and CLI pages state about levels, lengths and exit statuses hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kzai_guard as kg
from kzai_guard.cli.main import main as cli
from kzai_guard.siem import Level
from kzai_guard.siem.jsonl import LEVEL_NAMES
from tests.doc_examples import PRODUCERS, ROOT, examples, pages

MARKED = [
    (page.relative_to(ROOT).as_posix(), name, block)
    for page in pages()
    for name, block in examples(page.read_text(encoding="utf-8"))
]


def test_every_producer_has_its_example_in_the_docs() -> None:
    assert sorted(name for _, name, _ in MARKED) == sorted(PRODUCERS)


@pytest.mark.parametrize(("page", "name", "block"), MARKED, ids=[m[1] for m in MARKED])
def test_a_real_output_example_is_what_the_code_writes(page: str, name: str, block: str) -> None:
    assert block == PRODUCERS[name]() + "\n", (
        f"{page}: the {name} example is not what the code writes; run python -m tests.doc_examples"
    )


def test_the_examples_show_values_the_guard_writes() -> None:
    text = "".join(block for _, _, block in MARKED)
    for invented in ("kz-ai-2025", "psn_", '"significance": "significant"', "credit.scoring"):
        assert invented not in text
    assert '"verdict": "block"' in text and '"basis"' not in text  # a block has no basis


@pytest.mark.parametrize("page", ["docs/siem/jsonl.md", "docs/siem/hec.md"])
def test_the_level_tables_name_the_levels_as_written(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` +\|[^\n]*\| `(\w+)` +\|$", text, re.M))
    assert rows == {level.name: LEVEL_NAMES[level] for level in Level}


def test_the_syslog_page_gives_the_longest_msgid() -> None:
    longest = max(kg.EventKind, key=lambda kind: len(kind.value))
    text = (ROOT / "docs/siem/syslog.md").read_text(encoding="utf-8")
    assert f"at most {len(longest.value)} characters, `{longest.value}`" in text
    assert len(longest.value) <= 32  # RFC 5424's limit


@pytest.mark.parametrize("verb", ["export", "ship"])
def test_a_usage_error_exits_2_as_the_shipping_page_says(
    verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli([verb, "--no-such-option"])
    assert stopped.value.code == 2
    capsys.readouterr()
    text = (ROOT / "docs/siem/shipping.md").read_text(encoding="utf-8")
    assert text.count("2 on a command-line usage error") == 2


def test_check_applies_the_model_and_contact_rule_as_the_policies_page_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kzai-guard.toml"
    path.write_text(
        '[[policy]]\nname = "loan_approval"\npurpose = "credit-scoring"\n'
        'significance = "legal-effect"\nautonomy = "high"\nrisk = "high"\n',
        encoding="utf-8",
    )
    assert cli(["check", str(path)]) == 2
    assert "error:" in capsys.readouterr().err
    text = (ROOT / "docs/policies.md").read_text(encoding="utf-8")
    assert "`kzai-guard check` applies the rule on" in text
