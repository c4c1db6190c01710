"""A TCP proxy on loopback that a test can cut, to break a database connection for real."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class TcpProxy:
    """Forwards every connection made to :attr:`port` to ``target``.

    :meth:`cut_at` arms a one-shot cut: the first client packet containing the marker is
    forwarded (or not) and then both sides of that connection are closed, so the client never
    gets the answer. :meth:`block` closes every connection and refuses new ones until
    :meth:`unblock`.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._marker: bytes | None = None
        self._forward = False
        self._blocked = False
        self._stopped = False
        self.cuts = 0
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopped = True
        self._listener.close()
        self.block()

    def cut_at(self, marker: bytes, *, forward: bool) -> None:
        """Cut the connection that next sends ``marker`` (after forwarding it if ``forward``)."""
        with self._lock:
            self._marker, self._forward = marker, forward

    def block(self) -> None:
        """Close every connection and refuse new ones."""
        with self._lock:
            self._blocked = True
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _close(*pair)

    def unblock(self) -> None:
        """Accept and forward connections again."""
        with self._lock:
            self._blocked = False

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                blocked = self._blocked
            if blocked:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                _close(source, sink)
                return
            cut = False
            if upstream:
                with self._lock:
                    if self._marker is not None and self._marker in data:
                        cut, forward = True, self._forward
                        self._marker = None
                        self.cuts += 1
            try:
                if not cut or forward:
                    sink.sendall(data)
            except OSError:
                _close(source, sink)
                return
            if cut:
                _close(source, sink)
                return


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
