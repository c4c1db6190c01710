"""HTTP transports: Splunk HEC and a generic webhook.

Standard library only (:mod:`http.client`): one persistent connection, a timeout on every
request, TLS through an :class:`ssl.SSLContext`. A batch is one ``POST``; a 2xx answer is the
receiver's acknowledgement. 408, 429 and 5xx answers and network errors are retried by the
caller; any other answer is a permanent :class:`~kzai_guard.siem.TransportError` (a bad token or
a rejected payload does not get better by sending it again).
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import orjson

from kzai_guard.errors import ConfigurationError
from kzai_guard.siem.transports._base import TransportError

__all__ = ["HEC_EVENT_PATH", "HecTransport", "HttpTransport"]

HEC_EVENT_PATH = "/services/collector/event"
"""The Splunk HEC endpoint for JSON event objects."""

_RETRYABLE = frozenset({408, 425, 429})


class HttpTransport:
    """``POST`` each batch to ``url`` as newline-delimited messages (a generic webhook).

    ``headers`` are sent with every request (for example an ``Authorization`` header).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/x-ndjson",
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"{url!r} is not an http:// or https:// URL")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": content_type, **(headers or {})}
        self._tls = tls if tls is not None else ssl.create_default_context()
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def send(self, messages: Sequence[bytes]) -> None:
        """``POST`` the batch; returns once the receiver answered 2xx."""
        self.post(b"".join(m + b"\n" for m in messages))

    def post(self, body: bytes) -> bytes:
        """``POST`` ``body`` and return the response body of a 2xx answer."""
        conn = self._connection()
        try:
            conn.request("POST", self._path, body=body, headers=self._headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError(f"POST {self.url}: {exc!r}") from exc
        if response.will_close:
            self.close()
        status = response.status
        if 200 <= status < 300:
            return data
        detail = data[:200].decode("utf-8", "replace")
        permanent = status < 500 and status not in _RETRYABLE
        raise TransportError(f"POST {self.url}: HTTP {status} {detail}", permanent=permanent)

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._tls
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._conn


class HecTransport(HttpTransport):
    """Splunk HTTP Event Collector: ``POST /services/collector/event``, batched.

    ``url`` is the collector's base URL (``https://splunk.example:8088``); a URL with a path is
    used as it is. The token goes in ``Authorization: Splunk <token>``; ``channel`` sets
    ``X-Splunk-Request-Channel`` (needed when the token has indexer acknowledgement on).
    A batch is the event objects separated by line feeds; the answer must be HEC code 0.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        channel: str | None = None,
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not token or any(c in token for c in "\r\n"):
            raise ConfigurationError("the Splunk HEC token is empty or contains a line break")
        parts = urlsplit(url)
        if parts.path in ("", "/"):
            url = url.rstrip("/") + HEC_EVENT_PATH
        headers = {"Authorization": f"Splunk {token}"}
        if channel is not None:
            headers["X-Splunk-Request-Channel"] = channel
        super().__init__(
            url, headers=headers, content_type="application/json", tls=tls, timeout=timeout
        )

    def send(self, messages: Sequence[bytes]) -> None:
        """``POST`` the batch; returns once HEC answered ``{"code": 0}``."""
        data = self.post(b"\n".join(messages))
        try:
            answer = orjson.loads(data) if data else {"code": 0}
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or answer.get("code", 0) != 0:
            raise TransportError(f"POST {self.url}: unexpected HEC answer {data[:200]!r}")
