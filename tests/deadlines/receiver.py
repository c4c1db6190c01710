"""A webhook receiver on loopback: a real HTTP server that keeps what it was sent."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "whsec_" + "a2FpLWd1YXJkLXRlc3Qtd2ViaG9vay1zZWNyZXQtMzJi"
"""A Standard Webhooks secret (32 bytes)."""


def free_port() -> int:
    """A loopback port nobody listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Receiver:
    """Listens on ``port``; keeps every request's headers and body. With ``lose_first`` it
    answers 503 to the first delivery of each notification id, as if its answer were lost."""

    def __init__(self, port: int, *, lose_first: bool = False) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    seen = any(
                        h.get("webhook-id") == headers.get("webhook-id") for h, _ in received
                    )
                    received.append((headers, body))
                self.send_response(503 if lose_first and not seen else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
