"""Every test the documentation names exists, so the legal mapping cannot point at nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
REFERENCES = sorted(
    {
        (document.name, path, name)
        for document in DOCUMENTS
        for path, name in REFERENCE.findall(document.read_text(encoding="utf-8"))
    }
)


def test_the_documentation_names_tests() -> None:
    assert any(document == "legal-mapping.md" for document, _, _ in REFERENCES)


@pytest.mark.parametrize(("document", "path", "name"), REFERENCES)
def test_a_test_named_in_the_documentation_exists(document: str, path: str, name: str) -> None:
    source = ROOT / path
    assert source.is_file(), f"{document} names {path}, which does not exist"
    defined = re.search(rf"^(async )?def {name}\(", source.read_text(encoding="utf-8"), re.M)
    assert defined, f"{document} names {path}::{name}, which is not defined there"
