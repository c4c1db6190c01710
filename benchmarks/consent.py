"""Section 5a: consent lookups through the guard, on the memory and the SQLite store.

Four lookups of ``guard.consents.is_valid(subject, purpose)``: a hit (the subject holds a valid
consent), a miss (a subject with no consent, asked again and again), a cold miss (a different
unknown subject every time, so the store is asked), and a lookup after the consent was
withdrawn. Each stands beside a plain dict lookup of the same key, interleaved with it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import apps
from benchmarks.budget import Budget
from benchmarks.measure import Figure, Sample, per_op_us, rotated, unavailable

SECTION = "consent"
LOOKUPS = ("hit", "miss", "cold miss", "after withdrawal")
STORES = ("memory", "sqlite")


def run(budget: Budget) -> list[Figure]:
    why = apps.guard_missing()
    if why:
        return [
            unavailable(SECTION, f"{store}: {lookup}", "us/op", why)
            for store in STORES
            for lookup in LOOKUPS
        ]
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="kzai-bench-consent-") as tmp:
        for store in STORES:
            url = "memory://" if store == "memory" else f"sqlite:///{Path(tmp) / 'store.db'}"
            figures += _store(budget, store, url)
    return figures


def _store(budget: Budget, store: str, url: str) -> list[Figure]:
    guard = apps.make_guard(store=url)
    consents = guard.consents
    purpose = apps.PURPOSE
    consents.grant(subject="subject-hit", purpose=purpose, notice_version="1")
    consents.grant(subject="subject-gone", purpose=purpose, notice_version="1")
    consents.withdraw(subject="subject-gone", purpose=purpose)
    table = {("subject-hit", purpose): True}
    ops = budget.ops
    cold_ops = max(20, ops // 20)
    cold_subjects = iter(f"subject-cold-{i:09d}" for i in range(1 << 40))

    def lookup(subject: str) -> Callable[[int], None]:
        is_valid = consents.is_valid

        def body(n: int) -> None:
            for _ in range(n):
                is_valid(subject, purpose)

        return body

    def cold(n: int) -> None:
        is_valid = consents.is_valid
        for _ in range(n):
            is_valid(next(cold_subjects), purpose)

    def plain(subject: str) -> Callable[[int], None]:
        def body(n: int) -> None:
            get = table.get
            for _ in range(n):
                get((subject, purpose), False)

        return body

    expected = {"hit": True, "miss": False, "after withdrawal": False}
    subjects = {"hit": "subject-hit", "miss": "subject-none", "after withdrawal": "subject-gone"}
    for name, subject in subjects.items():
        if consents.is_valid(subject, purpose) is not expected[name]:
            raise RuntimeError(f"{store} store: the {name} lookup answered the wrong way")

    figures: list[Figure] = []
    for name in LOOKUPS:
        n = cold_ops if name == "cold miss" else ops
        subject_run: Callable[[int], Any] = cold if name == "cold miss" else lookup(subjects[name])
        base_run = plain(subjects.get(name, "subject-none"))
        samples = rotated(
            {"base": _timer(base_run, n), "subj": _timer(subject_run, n)}, budget.rounds
        )
        figures.append(
            Figure(
                SECTION,
                f"{store}: {name}",
                "us/op",
                "consents.is_valid",
                Sample.of(samples["subj"]),
                "dict lookup",
                Sample.of(samples["base"]),
                note="a new unknown subject per lookup" if name == "cold miss" else "",
            )
        )
    guard_close = getattr(guard, "close", None)
    if callable(guard_close):
        guard_close()
    return figures


def _timer(body: Callable[[int], Any], n: int) -> Callable[[], float]:
    return lambda: per_op_us(body, n)
