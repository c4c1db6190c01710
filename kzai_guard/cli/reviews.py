"""``kzai-guard reviews overdue``: review tickets due soon or past their deadline.

With ``--store URL`` it reads the store and lists the open tickets due soon or overdue (never
the person they are about). With ``--config FILE`` it opens the service's guard from its policy
file (store, audit log, webhook) and looks once as the service does: each ticket newly found in
a state becomes an audit record and a webhook notification, then the due notifications are
sent. Exit 0 when no ticket is overdue, 1 when one is, 2 when the store or file cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from kzai_guard.core.calendar import WorkingCalendar
from kzai_guard.core.deadlines import DeadlineState, deadline_state
from kzai_guard.core.review import ReviewTicket
from kzai_guard.errors import ConfigurationError, StoreError
from kzai_guard.guard import DEFAULT_STORE

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``reviews`` verb and its ``overdue`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "reviews", help="human review tickets: which are due soon or overdue"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    overdue = commands.add_parser(
        "overdue", help="list (or, with --config, record and notify) tickets due soon or overdue"
    )
    overdue.add_argument("--store", help=f"the store's URL (default: {DEFAULT_STORE})")
    overdue.add_argument(
        "--config",
        help="the service's policy file: record each new finding (audit record, webhook) as "
        "the service does",
    )
    overdue.add_argument(
        "--warning-days",
        type=int,
        default=None,
        help="working days before a deadline that count as due soon (default 1, or the "
        "file's deadline_warning_days)",
    )
    overdue.add_argument(
        "--at", type=_aware_time, default=None, help="judge at this ISO 8601 time (default: now)"
    )
    overdue.add_argument("--json", action="store_true", help="print JSON lines")
    overdue.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List or record the tickets due soon or overdue."""
    try:
        found = _record(args) if args.config is not None else _list(args)
    except (ConfigurationError, StoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for ticket, state, new in found:
        print(_line(ticket, state, new, as_json=args.json))
    return 1 if any(state is DeadlineState.OVERDUE for _, state, _ in found) else 0


def _list(args: argparse.Namespace) -> list[tuple[ReviewTicket, DeadlineState, bool | None]]:
    from kzai_guard.stores.url import open_store

    if args.warning_days is not None and args.warning_days < 0:
        raise ConfigurationError("--warning-days must be 0 or more")
    store = open_store(args.store or DEFAULT_STORE)
    try:
        tickets = store.open_reviews()
    finally:
        store.close()
    at = args.at or datetime.now(UTC)
    days = 1 if args.warning_days is None else args.warning_days
    calendar = WorkingCalendar()
    found = [(t, deadline_state(t, at, days, calendar)) for t in tickets]
    listed: list[tuple[ReviewTicket, DeadlineState, bool | None]] = [
        (t, s, None) for t, s in found if s is not None
    ]
    listed.sort(key=lambda entry: (entry[0].deadline, entry[0].id))
    return listed


def _record(args: argparse.Namespace) -> list[tuple[ReviewTicket, DeadlineState, bool | None]]:
    from kzai_guard.config import load_config
    from kzai_guard.guard import Guard

    policies, settings = load_config(args.config)
    settings.setdefault("subject", _nobody)  # no requests are served: nobody is asking
    settings["deadline_check_seconds"] = None
    if args.store is not None:
        settings["store"] = args.store
    if args.warning_days is not None:
        settings["deadline_warning_days"] = args.warning_days
    with Guard(policies, **settings) as guard:
        made = {(f.review_id, f.state) for f in guard.deadlines.sweep(args.at)}
        guard.deadlines.deliver()
        return [
            (d.ticket, d.state, (d.ticket.id, d.state) in made)
            for d in guard.deadlines.due(args.at)
        ]


def _line(ticket: ReviewTicket, state: DeadlineState, new: bool | None, *, as_json: bool) -> str:
    if as_json:
        entry: dict[str, Any] = {
            "review_id": ticket.id,
            "state": state.value,
            "deadline": ticket.deadline.isoformat(),
            "decision_id": ticket.decision_id,
            "policy": ticket.policy,
            "reason": ticket.reason,
            "opened_at": ticket.opened_at.isoformat(),
        }
        if new is not None:
            entry["newly_recorded"] = new
        return orjson.dumps(entry).decode()
    mark = "" if new is None else ("  (new)" if new else "")
    return (
        f"{state.value:<9} {ticket.id}  {ticket.policy}  deadline {ticket.deadline.isoformat()}"
        f"  decision {ticket.decision_id}{mark}"
    )


def _aware_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give the time with its UTC offset")
    return moment


def _nobody(scope: Any) -> None:
    return None
