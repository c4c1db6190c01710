"""Signing and checking webhook notifications, in the Standard Webhooks scheme.

Every notification carries three headers:

- ``webhook-id``: the notification's id, the same on every delivery attempt (drop repeats);
- ``webhook-timestamp``: when this attempt was signed, in Unix seconds;
- ``webhook-signature``: ``v1,`` and the Base64 HMAC-SHA256, under the shared secret, of
  ``{id}.{timestamp}.{body}`` (several space-separated signatures while a secret is rotated).

A secret is bytes, or a string: ``whsec_`` followed by Base64 (the Standard Webhooks form), or
any other text taken as its UTF-8 bytes. A receiver calls :func:`verify_webhook`::

    payload = kg.verify_webhook(SECRET, request.headers, await request.body())
    if payload["id"] in seen: return 204
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import orjson

from kzai_guard.errors import WebhookVerificationError

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "MIN_SECRET_BYTES",
    "secret_bytes",
    "sign_webhook",
    "verify_webhook",
]

DEFAULT_TOLERANCE_S = 300
"""How far a notification's timestamp may be from the receiver's clock (replays beyond it are
refused)."""
MIN_SECRET_BYTES = 24
"""The shortest secret a guard signs with (Standard Webhooks: 24 to 64 bytes)."""
_PREFIX = "whsec_"


def secret_bytes(secret: str | bytes) -> bytes:
    """The key a secret stands for (see the module's description)."""
    if isinstance(secret, bytes):
        return secret
    if secret.startswith(_PREFIX):
        try:
            return base64.b64decode(secret[len(_PREFIX) :], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"a {_PREFIX} secret must be Base64 after its prefix") from exc
    return secret.encode("utf-8")


def sign_webhook(
    secret: str | bytes, notification_id: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The three headers of one delivery of ``body``."""
    return {
        "webhook-id": notification_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1,"
        + _signature(secret_bytes(secret), notification_id, timestamp, body),
    }


def verify_webhook(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The notification's JSON body once its signature checks out under ``secret``.

    ``headers`` is any mapping of the request's headers (names matched without regard to
    case); ``body`` the raw bytes as received. Raises :class:`WebhookVerificationError` when a
    header is missing, the timestamp is more than ``tolerance`` seconds from ``now`` (default:
    this host's clock), or no ``v1`` signature matches.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        notification_id = lowered["webhook-id"]
        stamp = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
    except KeyError as exc:
        raise WebhookVerificationError(f"the notification has no {exc.args[0]} header") from None
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a whole number") from None
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is more than {tolerance}s from this host's clock"
        )
    expected = _signature(secret_bytes(secret), notification_id, timestamp, body)
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            break
    else:
        raise WebhookVerificationError("no webhook-signature matches the body")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookVerificationError("the signed body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the signed body is not a JSON object")
    return payload


def _signature(key: bytes, notification_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{notification_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
