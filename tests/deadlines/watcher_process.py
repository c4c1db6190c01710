"""A service process that looks for deadlines once, as another worker or host would.

``python -m tests.deadlines.watcher_process STORE_URL AT WEBHOOK_URL MODE``: a guard on the
store judging at ``AT`` (ISO 8601), notifying ``WEBHOOK_URL`` (``-`` for none). It prints
``ready``, waits for a line on stdin, then:

- ``sweep``: looks three times, prints the ids of the deadline audit records it wrote (JSON);
- ``hang``: looks once, tries to deliver, prints ``swept`` and waits to be killed.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime

import orjson

import kzai_guard as kg
from tests.deadlines.receiver import SECRET
from tests.samples import GATEWAY_SUBJECT, LOAN

KINDS = (kg.EventKind.REVIEW_DUE_SOON, kg.EventKind.REVIEW_OVERDUE)


def main(url: str, at: str, webhook: str, mode: str) -> None:
    moment = datetime.fromisoformat(at)
    sink = kg.MemorySink()
    hook = (
        {}
        if webhook == "-"
        else {"deadline_webhook_url": webhook, "deadline_webhook_secret": SECRET}
    )
    guard = kg.Guard(
        [LOAN],
        store=url,
        audit=sink,
        pseudonym_key=b"kzai-guard-test-pseudonym-key-32b",
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
        clock=lambda: moment,
        deadline_check_seconds=None,
        **hook,
    )
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "sweep":
        for _ in range(3):
            guard.deadlines.sweep()
        ids = [r.id for r in sink.records if r.kind in KINDS]
        print(orjson.dumps(ids).decode(), flush=True)
        guard.close()
        return
    guard.deadlines.sweep()
    guard.deadlines.deliver()
    print("swept", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main(*sys.argv[1:5])
