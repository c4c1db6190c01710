"""Shared strategies and helpers for the SIEM tests."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import strategies as st

from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.record import AuditRecord, EventKind
from kzai_guard.siem import EncoderSettings, SiemEvent

STRING_FIELDS = tuple(
    f.name for f in fields(AuditRecord) if f.name not in ("time", "kind", "latency_us")
)

SETTINGS = EncoderSettings(hostname="api-1.example.kz", product_version="1.0", procid="42")

_NASTY = [
    "|",
    "=",
    "]",
    "[",
    '"',
    "\\",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\x00",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    " ",
    "  ",
    "^",
    "x09",
    "\\=",
    "\\|",
    '\\"',
    "\\]",
    "\\n",
    "=\\",
    "CEF:0|a|b|c|d|e|5|",
    "LEEF:2.0|a|b|c|d|x09|",
    "<13>1 - - - - - -",
    "\n<13>1 - h a - - -",
    'k="v"]',
    " cs1=forged",
    "\tsev=10",
    " act=allow",
    "é",
    "Қазақстан",
    "日本",
    "\U0001f600",
    "\ufeff",
    "\ufffd",
]

hostile_text = st.one_of(
    st.lists(st.one_of(st.sampled_from(_NASTY), st.text(max_size=4)), max_size=12).map("".join),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=500, max_size=3000),
)
"""Strings full of delimiters, escapes, controls, separators and non-ASCII (no surrogates)."""


_ORIGIN_PIECES = [piece for piece in _NASTY if piece.isprintable()] + [
    "kzaiOrigin=x",
    'origin="x"',
    "example.kz/audit",
    "Қазақстан/аудит",
]


def _is_origin(value: str) -> bool:
    return bool(value.strip()) and value.isprintable()


hostile_origins = st.one_of(
    st.lists(st.one_of(st.sampled_from(_ORIGIN_PIECES), st.text(max_size=4)), max_size=8).map(
        "".join
    ),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
).filter(_is_origin)
"""Valid log origins (one printable line) full of ``=``, ``|``, ``]``, quotes, backslashes,
escape sequences, key names and non-ASCII text."""

HOSTILE_ORIGIN = 'svc.example.kz/audit "a=b|c]\\d\\=^ kzaiSeq=1 é Қазақстан 日本 \U0001f600'
"""One fixed hostile origin, for logs made on disk."""


@st.composite
def records(draw: st.DrawFn) -> AuditRecord:
    """Audit records with a hostile value (or ``None``) in every string field."""
    values: dict[str, object] = {}
    for name in STRING_FIELDS:
        if name == "id":
            values[name] = draw(hostile_text)
        else:
            values[name] = draw(st.none() | hostile_text)
    values["verdict"] = draw(st.sampled_from([None, "allow", "block", "route"]) | hostile_text)
    return AuditRecord(
        time=draw(st.integers(0, 4_102_444_800_000_000)),
        kind=draw(st.sampled_from(list(EventKind))),
        latency_us=draw(st.none() | st.integers(0, 10**9)),
        **values,  # type: ignore[arg-type]
    )


@st.composite
def events(draw: st.DrawFn) -> SiemEvent:
    """A hostile record at a random seq, with a hex line hash."""
    seq = draw(st.integers(0, 2**40))
    line_hash = draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    return SiemEvent(draw(records()), seq, line_hash)


@st.composite
def small_events(draw: st.DrawFn) -> SiemEvent:
    """A plausible record with a short hostile reason and id, at a random seq."""
    nasty = st.lists(st.sampled_from(_NASTY), max_size=6).map("".join)
    record = sample_record(
        draw(st.integers(0, 999)), id=draw(nasty) or "r", reason=draw(st.none() | nasty)
    )
    seq = draw(st.integers(0, 2**40))
    return SiemEvent(record, seq, draw(st.text("0123456789abcdef", min_size=64, max_size=64)))


UNSAFE_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def sanitised(value: str, *, keep: str = "", extra: str = "") -> str:
    """The documented rule: unsafe characters (except ``keep``) and ``extra`` become U+FFFD."""
    out = []
    for ch in value:
        if ch in keep:
            out.append(ch)
        elif ch in extra or UNSAFE_RE.match(ch):
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def sample_record(i: int = 0, **overrides: object) -> AuditRecord:
    """A plausible decision record."""
    values: dict[str, object] = {
        "id": f"dec-{i:06d}",
        "time": 1_767_225_600_000_000 + i * 1_000,
        "kind": EventKind.DECISION,
        "policy": "credit.scoring",
        "policy_digest": "sha256:4f2a",
        "subject": f"psn_{i:08x}",
        "purpose": "creditworthiness",
        "profile": "kz-ai-2025",
        "mode": "enforce",
        "significance": "significant",
        "autonomy": "medium",
        "basis": "consent",
        "verdict": ("allow", "block", "route")[i % 3],
        "reason": "consent on file",
        "model": "scorer/1.4",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "latency_us": 1234,
    }
    values.update(overrides)
    return AuditRecord(**values)  # type: ignore[arg-type]


def write_log(
    directory: Path, records: Iterable[AuditRecord], *, origin: str | None = None
) -> None:
    """Append ``records`` to the signed audit log in ``directory`` (created if needed)."""
    log = AuditLog.open(
        directory,
        durability="sync",
        seal_personal_fields=False,
        retention_days=None,
        origin=origin,
    )
    try:
        futures = [log.write(r) for r in records]
        for f in futures:
            if f is not None:
                f.result(timeout=30)
    finally:
        log.close()


def demo_key(directory: Path) -> str:
    """The public key file of the demo key :func:`write_log` signs with."""
    return str(next((directory / "keys").glob("*.pub")))


def key_options(directory: Path) -> list[str]:
    """``--public-key`` and ``--origin`` for the log :func:`write_log` made in ``directory``:
    the demo key and the origin the log was given (what its operator hands the auditor)."""
    origin = (directory / "origin").read_text(encoding="utf-8").strip()
    return ["--public-key", demo_key(directory), "--origin", origin]


@pytest.fixture
def audit_dir(tmp_path: Path) -> Path:
    """An audit log of 30 decision records."""
    directory = tmp_path / "audit"
    write_log(directory, [sample_record(i) for i in range(30)])
    return directory
