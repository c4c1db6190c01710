"""The tests' HTTP client for the deployment test app, and a small load generator.

Every request goes on a new connection (``Connection: close``) so that the server's workers
share the requests as they share connections.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

__all__ = ["PID_HEADER", "Answer", "Client", "Load"]

PID_HEADER = "x-worker-pid"
"""The response header in which the test app names the process that served the request."""

TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Answer:
    """One response: when it was sent, its status, decision id, problem type and worker."""

    sent: float
    status: int
    decision_id: str | None
    problem: str | None
    pid: int | None
    body: dict[str, object]


class Client:
    """Requests to one server; the operator token opens the consent routes."""

    def __init__(self, url: str, token: str, *, timeout: float = TIMEOUT_S) -> None:
        self.url = url
        self.token = token
        self._http = httpx.Client(base_url=url, timeout=timeout, headers={"Connection": "close"})

    def decide(self, subject: str) -> Answer:
        """Ask for a loan decision about ``subject``."""
        sent = time.monotonic()
        response = self._http.post(f"/loans/{subject}/decision")
        body = response.json() if response.content else {}
        problem = (
            body.get("type")
            if response.headers.get("content-type", "").startswith("application/problem+json")
            else None
        )
        pid = response.headers.get(PID_HEADER)
        return Answer(
            sent=sent,
            status=response.status_code,
            decision_id=response.headers.get("ai-decision-id"),
            problem=problem,
            pid=int(pid) if pid else None,
            body=body,
        )

    def grant(self, subject: str) -> int:
        """Grant ``subject``'s consent through the back-office route; the serving pid."""
        return self._consent("POST", subject, 201)

    def withdraw(self, subject: str) -> int:
        """Withdraw ``subject``'s consent through the back-office route; the serving pid."""
        return self._consent("DELETE", subject, 200)

    def _consent(self, method: str, subject: str, wanted: int) -> int:
        response = self._http.request(
            method, f"/consents/{subject}", headers={"Authorization": f"Bearer {self.token}"}
        )
        if response.status_code != wanted:
            raise RuntimeError(
                f"{method} /consents/{subject}: {response.status_code} {response.text}"
            )
        return int(response.headers[PID_HEADER])

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


class Load:
    """Threads sending decisions until stopped, keeping every answer (and every failure)."""

    def __init__(self, clients: Iterable[Client], subjects: Callable[[int], str]) -> None:
        self.clients = list(clients)
        self.subjects = subjects
        self.answers: list[Answer] = []
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(len(self.clients))

    def __enter__(self) -> Load:
        for number, client in enumerate(self.clients):
            self._pool.submit(self._run, number, client)
        return self

    def _run(self, number: int, client: Client) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                answer = client.decide(self.subjects(number * 1_000_000 + n))
            except httpx.HTTPError as exc:
                with self._lock:
                    self.failures.append(exc)
            else:
                with self._lock:
                    self.answers.append(answer)
            n += 1

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)

    def allowed(self) -> set[str]:
        """The decision ids of the 200 answers so far."""
        with self._lock:
            return {a.decision_id for a in self.answers if a.status == 200 and a.decision_id}
