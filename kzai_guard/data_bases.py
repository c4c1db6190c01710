"""The data behind each decision, kept for the person it is about (KZ-AI 16(1)(5), GDPR 15).

A decision whose policy declares ``data_basis`` hands the values its function reported
(``kg.data_basis``) to :class:`DataBases`, which a background thread writes to the store exactly
as explanations are written (:class:`~kzai_guard.explanations.Archive`: batched, off the request
path; with ``durability="sync"`` the decision's response waits until the values are stored).
:func:`keep` builds what is kept: the values with a fresh salt, canonical JSON, its digest for
the audit record and the declared inputs that were not reported. :func:`shown_to_person` is the
body of the person's route: the policy's redaction applied.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kzai_guard.core.data_basis import (
    BasisInput,
    BasisValue,
    basis_digest,
    basis_json,
    declared_inputs,
    missing_inputs,
    person_view,
    read_basis,
)
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.explanations import PENDING_LIMIT, Archive
from kzai_guard.stores.base import Store, StoredDataBasis

__all__ = ["DataBases", "keep", "shown_to_person"]

_SALT_BYTES = 16
_UNDECLARED = "The policy no longer declares this input."


class DataBases(Archive[StoredDataBasis]):
    """The data-basis archive of one guard."""

    def __init__(
        self, store: Store, pending_limit: int = PENDING_LIMIT, *, durable: bool = False
    ) -> None:
        super().__init__(
            store.add_data_bases,
            store.data_basis_of,
            "data bases",
            pending_limit,
            durable=durable,
        )


def keep(
    declared: Mapping[str, BasisInput],
    values: Mapping[str, BasisValue] | None,
    *,
    decision_id: str,
    subject_ref: str,
    policy: str,
    at: datetime,
) -> StoredDataBasis:
    """What is kept of one decision's data basis (``values`` already checked by
    ``kg.data_basis``; ``None`` when the function reported nothing)."""
    reported = values or {}
    body = basis_json(reported, secrets.token_hex(_SALT_BYTES))
    return StoredDataBasis(
        decision_id,
        subject_ref,
        policy,
        at,
        body,
        basis_digest(body),
        missing_inputs(declared, reported),
    )


def shown_to_person(kept: StoredDataBasis, policy: DecisionPolicy | None) -> dict[str, Any]:
    """The route's body: the decision, the digest the audit record holds, and every input the
    policy declares with its redaction applied. A kept value whose input the policy no longer
    declares (or whose policy the guard no longer declares) is listed as withheld: the rule
    that allowed showing it is gone."""
    declared = declared_inputs(policy.data_basis) if policy is not None else {}
    values = read_basis(kept.body)
    inputs = person_view(declared, values) + [
        {"name": name, "withheld": True, "reason": _UNDECLARED}
        for name in sorted(values)
        if name not in declared
    ]
    return {
        "decision_id": kept.decision_id,
        "policy": kept.policy,
        "recorded_at": kept.created_at.isoformat(),
        "digest": kept.digest,
        "inputs": inputs,
        "not_reported": list(kept.missing),
    }
