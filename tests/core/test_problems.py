"""Every problem type the guard can answer with is documented in docs/problems.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from kzai_guard.core.problems import DEFAULT_PROBLEM_BASE, PROBLEM_TYPES, ProblemType

DOC = (Path(__file__).parents[2] / "docs" / "problems.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("problem", PROBLEM_TYPES, ids=lambda p: p.slug)
def test_each_problem_type_has_a_summary_row_a_section_and_an_example(
    problem: ProblemType,
) -> None:
    assert f"| `{problem.slug}` | {problem.status} | {problem.title} |" in DOC
    assert f"\n## `{problem.slug}` ({problem.status})\n" in DOC
    assert f'{{"type":"{DEFAULT_PROBLEM_BASE}{problem.slug}",' in DOC
