"""The instruction figures are held to the hot path's targets: the guarded decision with the
signed log, serving thread and background threads apart (no callgrind run: the counts are
given)."""

from __future__ import annotations

from benchmarks import instructions

COUNTS = {
    "bare": (100_000.0, 0.0),
    "least": (120_000.0, 0.0),
    "guarded-null": (150_000.0, 30_000.0),
    "guarded": (160_001.0, 39_000.0),
    "middleware": (110_000.0, 0.0),
    "decorator": (115_000.0, 0.0),
    "begin": (130_000.0, 0.0),
    "finish": (140_000.0, 0.0),
    "gate": (150_000.0, 0.0),
}


def _by_name() -> dict[str, instructions.Figure]:
    return {f.name: f for f in instructions.figures(COUNTS, [1_000, 3_000])}


def test_the_guarded_serving_thread_is_held_to_60k_added() -> None:
    figure = _by_name()[
        "callgrind starlette: guarded decision, serving thread, instructions per request"
    ]
    assert (figure.delta, figure.status) == (60_001.0, "MISS")


def test_the_guarded_background_threads_are_held_to_40k_added() -> None:
    figure = _by_name()[
        "callgrind starlette: guarded decision, background threads, instructions per request"
    ]
    assert (figure.delta, figure.status) == (39_000.0, "PASS")


def test_each_part_is_its_layer_beside_the_layer_below() -> None:
    parts = {
        f.subject_label: (f.baseline_label, f.delta)
        for f in instructions.figures(COUNTS, [1_000, 3_000])
        if f.name.startswith("starlette part")
    }
    assert parts == {
        "middleware": ("bare", 10_000.0),
        "decorator": ("middleware", 5_000.0),
        "begin": ("decorator", 15_000.0),
        "finish": ("decorator", 25_000.0),
        "guarded-null": ("gate", 0.0),
        "guarded": ("guarded-null", 10_001.0),
    }
