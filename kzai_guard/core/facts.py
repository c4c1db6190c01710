"""What is known about one decision request, gathered by the adapters before the rules run."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Facts"]


@dataclass(frozen=True, slots=True)
class Facts:
    """The facts the rules read.

    ``reviewer`` is true only for an authenticated human decision-maker, never for something the
    client asserted. ``objection_signal`` is the request's own objection (an RFC 8941 boolean
    header); ``objection`` a stored one. ``routed`` is true while the policy's decisions are
    routed to humans because its outcomes crossed its disparity thresholds (KZ-AI 6), until an
    officer clears it.
    """

    suspended: bool = False
    reviewer: bool = False
    consent: bool = False
    objection: bool = False
    objection_signal: bool = False
    vulnerable: bool = False
    routed: bool = False
