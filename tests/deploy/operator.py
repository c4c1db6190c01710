"""An operator script beside the running service: it imports the service's own module.

``python -m tests.deploy.operator ACTION ARGUMENT`` with the service's environment:

- ``object SUBJECT``: record the subject's objection (their decisions go to a human);
- ``grant SUBJECT``: record the subject's consent;
- ``complete REVIEW_ID``: a reviewer approves the review ticket.

It prints ``done`` and closes the guard, so its records are in the service's log when it exits.
"""

from __future__ import annotations

import sys

import kzai_guard as kg
from tests.deploy.app import PURPOSE, guard


def main(action: str, argument: str) -> None:
    """Carry out one operator action through the service's guard."""
    try:
        if action == "object":
            guard.objections.record(argument)
        elif action == "grant":
            guard.consents.grant(argument, PURPOSE, "2026-01")
        elif action == "complete":
            guard.reviews.complete(
                argument, reviewer=kg.Reviewer(id="officer-7"), outcome="approved"
            )
        else:
            raise SystemExit(f"unknown action {action!r}: use object, grant or complete")
    finally:
        guard.close()
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
