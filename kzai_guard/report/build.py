"""Gather what the report shows: the verified trail, the store, the policies."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from pathlib import Path

from kzai_guard.audit.cosignature import WitnessPolicy
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.reader import ChainBroken, read_verified
from kzai_guard.audit.record import AuditRecord, EventKind
from kzai_guard.audit.shredding import SubjectKeys
from kzai_guard.audit.verify import verify_log
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.core.review import ReviewTicket
from kzai_guard.core.transfers import Destination
from kzai_guard.core.vocabulary import Language
from kzai_guard.disparity import judge
from kzai_guard.errors import UnknownRecord
from kzai_guard.report.figures import DisparityRow, count
from kzai_guard.report.findings import report_findings
from kzai_guard.report.html import ReportInput, render
from kzai_guard.report.witnessing import read_cosignatures, witness_status
from kzai_guard.stores.url import open_store

__all__ = ["build_report"]


def build_report(
    directory: Path,
    policies: Sequence[DecisionPolicy],
    destinations: Sequence[Destination],
    *,
    store_url: str,
    keyring: Keyring,
    since: datetime,
    until: datetime,
    language: Language,
    now: datetime,
    origin: str,
    witnesses: WitnessPolicy | None = None,
    subject_keys: SubjectKeys | None = None,
) -> tuple[str, bool]:
    """The report's HTML, and whether the trail verified.

    ``directory`` is the audit log, ``store_url`` the store the guard used; the records of
    ``since <= time < until`` are counted, the review deadlines judged at ``now``. ``origin`` is
    the log the auditor means: every checkpoint must name it (never the directory's claim). The
    witnesses' cosignatures kept with the log are shown, checked against ``witnesses``' keys
    when given. ``subject_keys`` unseals the records' sealed fields (review ids among them);
    by default the store in ``directory``.
    """
    verification = verify_log(directory, keyring, allow_unsigned_tail=True, origin=origin)
    cosigned = witness_status(
        read_cosignatures(directory),
        keyring,
        verification.first_seq + verification.records,
        witnesses,
    )
    low, high = since.timestamp() * 1_000_000, until.timestamp() * 1_000_000
    records: list[AuditRecord] = []
    try:
        entries = read_verified(
            directory, public_keys=keyring, origin=origin, subject_keys=subject_keys
        )
        for entry in entries:
            if low <= entry.record.time < high:
                records.append(entry.record)
    except ChainBroken:
        pass  # what came before the break is counted; the verification says where it broke
    store = open_store(store_url)
    try:
        tickets: dict[str, ReviewTicket] = {}
        for record in records:
            if record.kind is EventKind.REVIEW_OPENED and record.review_id is not None:
                with suppress(UnknownRecord):  # not in this store: counted as unknown
                    tickets[record.review_id] = store.get_review(record.review_id)
        rows: list[DisparityRow] = []
        for policy in policies:
            if policy.monitoring is None:
                continue
            counts = store.outcome_counts(since, until, policy.name)
            for ground, groups in judge(counts, policy.monitoring).items():
                rows.extend(DisparityRow(policy.name, ground, d) for d in groups)
        routed = [r for r in store.routings() if r.routed]
    finally:
        store.close()
    figures = count(records, tickets, rows, now)
    findings = report_findings(
        list(policies), figures, list(destinations), verification.ok, now.date(), routed
    )
    html = render(
        ReportInput(
            language=language,
            since=since,
            until=until,
            generated=now,
            policies=policies,
            figures=figures,
            verification=verification,
            findings=findings,
            destinations=destinations,
            witnesses=cosigned,
            witnessed=witnesses is not None,
        )
    )
    return html, verification.ok
