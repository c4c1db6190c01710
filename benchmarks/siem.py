"""Section 5b: SIEM encoding throughput, per format, beside a plain orjson dump of the record.

Each encoder (``kzai_guard.siem.<format>``, the class whose name ends in ``Encoder``) renders
the same verified log entries to bytes; the baseline, interleaved with it, is the least any
encoder must do: ``orjson.dumps(record.as_dict())``. Target: CEF at least 100,000 events/s.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import orjson

from benchmarks.budget import Budget
from benchmarks.measure import Figure, Sample, Target, per_op_us, rotated, unavailable
from benchmarks.records import records

SECTION = "siem"
FORMATS = ("cef", "leef", "syslog", "ocsf", "ecs", "hec", "jsonl")
CEF_RATE = Target(100_000, "min", text=">= 100,000 events/s")
POOL = 1_000


def encoder(fmt: str) -> Any:
    """An encoder for ``fmt``, its events carrying an origin; raises LookupError if none."""
    try:
        module = importlib.import_module(f"kzai_guard.siem.{fmt}")
    except ImportError as exc:
        raise LookupError(f"kzai_guard.siem.{fmt} cannot be imported ({exc})") from exc
    classes = [
        obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and name.endswith("Encoder")
        and obj.__module__ == module.__name__
        and hasattr(obj, "encode")
    ]
    if not classes:
        raise LookupError(f"kzai_guard.siem.{fmt} has no encoder class")
    from kzai_guard.siem.settings import EncoderSettings

    encoder_class: Any = classes[0]
    settings = EncoderSettings(hostname="bench-host.example.kz", origin="bench.example.kz/audit")
    return encoder_class(settings)


def _events() -> list[Any]:
    from kzai_guard.siem._event import SiemEvent

    return [SiemEvent(r, i, f"{i:064x}") for i, r in enumerate(records(POOL))]


def run(budget: Budget) -> list[Figure]:
    try:
        events = _events()
    except ImportError as exc:
        return [
            unavailable(
                SECTION,
                f"{fmt} encoding",
                "events/s",
                str(exc),
                target=CEF_RATE if fmt == "cef" else None,
            )
            for fmt in FORMATS
        ]
    plain = [e.record for e in events]
    ops = budget.ops

    def loop_of(fn: Callable[[Any], object], items: list[Any]) -> Callable[[], float]:
        def body(n: int) -> None:
            size = len(items)
            for i in range(n):
                fn(items[i % size])

        return lambda: 1e6 / per_op_us(body, ops)

    def dump(record: Any) -> bytes:
        return orjson.dumps(record.as_dict())

    figures: list[Figure] = []
    for fmt in FORMATS:
        target = CEF_RATE if fmt == "cef" else None
        try:
            enc = encoder(fmt)
            enc.encode(events[0])
        except Exception as exc:
            figures.append(
                unavailable(
                    SECTION,
                    f"{fmt} encoding",
                    "events/s",
                    f"{type(exc).__name__}: {exc}",
                    target=target,
                )
            )
            continue
        rates = rotated(
            {"base": loop_of(dump, plain), "enc": loop_of(enc.encode, events)}, budget.rounds
        )
        size = sum(len(enc.encode(e)) for e in events[:100]) // 100
        figures.append(
            Figure(
                SECTION,
                f"{fmt} encoding",
                "events/s",
                type(enc).__name__,
                Sample.of(rates["enc"]),
                "orjson.dumps(record)",
                Sample.of(rates["base"]),
                target,
                f"~{size} bytes per event",
                extra={"bytes": size},
            )
        )
    return figures
