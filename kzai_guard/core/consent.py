"""Consents and objections, and when they count (KZ-PD 7, 8; ISO/IEC TS 27560 in spirit)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = ["CollectionMethod", "Consent", "Objection", "consent_is_valid", "objection_applies"]


class CollectionMethod(enum.StrEnum):
    """How the consent was collected, in a form that can be confirmed later (KZ-PD 8)."""

    WEB_FORM = "web-form"
    MOBILE_APP = "mobile-app"
    DIGITAL_SIGNATURE = "digital-signature"
    PAPER = "paper"
    RECORDED_CALL = "recorded-call"
    API = "api"


@dataclass(frozen=True, slots=True)
class Consent:
    """One consent record: who agreed to what, under which notice, when, until when.

    ``expires_at`` ties the term to the purpose; ``withdrawn_at`` is set once withdrawn. All
    times are timezone-aware UTC.
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


def objection_applies(objection: Objection | None, policy: str) -> bool:
    """True when ``objection`` is in force and covers decisions of ``policy``."""
    if objection is None or objection.withdrawn_at is not None:
        return False
    return objection.policy is None or objection.policy == policy
