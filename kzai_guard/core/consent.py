"""Consents and objections, and when they count (KZ-PD 7, 8; ISO/IEC TS 27560 in spirit)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "CollectionMethod",
    "Consent",
    "Objection",
    "WithdrawalRestriction",
    "consent_is_valid",
    "objection_applies",
    "withdrawal_restricted",
]


class CollectionMethod(enum.StrEnum):
    """How the consent was collected, in a form that can be confirmed later (KZ-PD 8)."""

    WEB_FORM = "web-form"
    MOBILE_APP = "mobile-app"
    DIGITAL_SIGNATURE = "digital-signature"
    PAPER = "paper"
    RECORDED_CALL = "recorded-call"
    API = "api"


@dataclass(frozen=True, slots=True)
class WithdrawalRestriction:
    """Why, and until when, a consent cannot be withdrawn (KZ-PD 8).

    ``ground`` names the law or the unfulfilled obligation that forbids the withdrawal, in words
    the person can be told (``"loan agreement No. 77-1 is outstanding"``); ``until`` is when it
    ends (timezone-aware UTC).
    """

    ground: str
    until: datetime


@dataclass(frozen=True, slots=True)
class Consent:
    """One consent record: who agreed to what, under which notice, when, until when.

    ``expires_at`` ties the term to the purpose; ``withdrawn_at`` is set once withdrawn;
    ``withdrawal_restriction``, when set, forbids withdrawing it until its ``until``. All times
    are timezone-aware UTC.
    """

    id: str
    subject: str
    purpose: str
    notice_version: str
    notice_digest: str | None
    method: CollectionMethod
    granted_at: datetime
    expires_at: datetime | None = None
    withdrawn_at: datetime | None = None
    withdrawal_restriction: WithdrawalRestriction | None = None


@dataclass(frozen=True, slots=True)
class Objection:
    """An objection to automated decisions: to one decision type, or to all (``policy`` None)."""

    id: str
    subject: str
    policy: str | None
    recorded_at: datetime
    withdrawn_at: datetime | None = None
    channel: str | None = None


def consent_is_valid(consent: Consent | None, *, notice_version: str | None, at: datetime) -> bool:
    """True when ``consent`` exists, is in force at ``at`` and covers ``notice_version``."""
    if consent is None or consent.withdrawn_at is not None:
        return False
    if consent.granted_at > at:
        return False
    if consent.expires_at is not None and consent.expires_at <= at:
        return False
    return notice_version is None or consent.notice_version == notice_version


def withdrawal_restricted(consent: Consent, at: datetime) -> bool:
    """True when ``consent`` is in force and a law or obligation forbids withdrawal at ``at``."""
    restriction = consent.withdrawal_restriction
    return consent.withdrawn_at is None and restriction is not None and at < restriction.until


def objection_applies(objection: Objection | None, policy: str) -> bool:
    """True when ``objection`` is in force and covers decisions of ``policy``."""
    if objection is None or objection.withdrawn_at is not None:
        return False
    return objection.policy is None or objection.policy == policy
