"""Delivery of the store's webhook outbox: signed, retried with backoff, at least once.

A message leaves the outbox only when its receiver answered 2xx. Each attempt takes the due
messages with a lease (no other process sends them meanwhile), posts each one signed
(:mod:`kzai_guard.webhook_signature`) and notes the outcome; a failure is tried again after a
wait that doubles from :data:`FIRST_RETRY_S` up to :data:`LONGEST_RETRY_S`. A message may reach
its receiver more than once (an answer lost on the way, a crash between sending and noting): it
keeps its ``webhook-id`` on every attempt, so the receiver drops repeats.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta

from kzai_guard.core.freshness import reconnect_delay
from kzai_guard.stores.deadline_findings import DeadlineStore, OutboxMessage
from kzai_guard.webhook_signature import sign_webhook

__all__ = ["FIRST_RETRY_S", "LONGEST_RETRY_S", "SEND_TIMEOUT_S", "WebhookSender"]

FIRST_RETRY_S = 10.0
"""The wait after a message's first failed attempt."""
LONGEST_RETRY_S = 3600.0
"""The longest wait between two attempts."""
SEND_TIMEOUT_S = 10.0
"""How long one attempt may take."""
_LEASE = timedelta(seconds=6 * SEND_TIMEOUT_S)
_BATCH = 5
"""Messages taken at once: their worst case (5 timeouts) fits within the lease."""
_USER_AGENT = "kzai-guard-webhooks/1"
_log = logging.getLogger("kzai_guard")


class WebhookSender:
    """Sends the outbox of ``store`` to ``url``, signed with ``secret``; times are ``now()``'s
    (the guard's clock), the signature's timestamp this host's wall clock."""

    def __init__(
        self,
        store: DeadlineStore,
        url: str,
        secret: str | bytes,
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._url = url
        self._secret = secret
        self._now = now

    def deliver_due(self) -> int:
        """Send every message due now; returns how many the receiver acknowledged."""
        delivered = 0
        while True:
            at = self._now()
            batch = self._store.take_due_messages(at=at, lease_until=at + _LEASE, limit=_BATCH)
            for message in batch:
                delivered += self._attempt(message)
            if len(batch) < _BATCH:
                return delivered

    def _attempt(self, message: OutboxMessage) -> int:
        error = self._post(message)
        if error is None:
            self._store.message_delivered(message.id, self._now())
            return 1
        attempts = message.attempts + 1
        wait = reconnect_delay(attempts, FIRST_RETRY_S, LONGEST_RETRY_S)
        self._store.message_failed(
            message.id,
            attempts=attempts,
            next_attempt_at=self._now() + timedelta(seconds=wait),
            error=error,
        )
        if attempts == 1:
            _log.warning("kzai_guard: a webhook notification failed; retrying: %s", error)
        return 0

    def _post(self, message: OutboxMessage) -> str | None:
        """None when the receiver acknowledged ``message``, else what went wrong."""
        headers = sign_webhook(self._secret, message.id, message.body, int(time.time()))
        request = urllib.request.Request(
            self._url,
            data=message.body,
            method="POST",
            headers={
                **headers,
                "content-type": "application/json",
                "user-agent": _USER_AGENT,
            },
        )
        try:
            with _OPENER.open(request, timeout=SEND_TIMEOUT_S) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            return f"the receiver answered {exc.code}"
        except (OSError, ValueError) as exc:
            return f"the receiver could not be reached: {exc}"
        return None if 200 <= status < 300 else f"the receiver answered {status}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed attempt: following it would turn the POST into a GET."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)
