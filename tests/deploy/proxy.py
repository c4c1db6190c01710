"""A TCP proxy the test controls, to cut and restore one host's database connection.

It listens on a free port of 127.0.0.1 and forwards every connection to a target address. Its
asyncio loop runs in a thread of the test process. :meth:`TcpProxy.cut` breaks the link in one
of two ways: ``"reset"`` closes every open connection and closes new ones as soon as they are
accepted (the database host refuses); ``"blackhole"`` keeps connections open but carries no
byte in either direction (the network drops packets). :meth:`TcpProxy.restore` forwards again:
after a reset, new connections; after a blackhole, also the bytes held back, as TCP delivers
them once a partition heals.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Literal

__all__ = ["CutMode", "TcpProxy"]

CutMode = Literal["reset", "blackhole"]
_CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; see the module docstring."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._cut: CutMode | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self._server = self._call(self._listen())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def cut(self, mode: CutMode = "reset") -> None:
        """Break the link: no byte passes until :meth:`restore`."""
        self._call(self._set(mode))

    def restore(self) -> None:
        """Forward new connections again."""
        self._call(self._set(None))

    def _call(self, coroutine: object) -> asyncio.Server | None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        return future.result(10)

    async def _listen(self) -> asyncio.Server:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _set(self, mode: CutMode | None) -> None:
        self._cut = mode
        if mode == "reset":
            for writer in list(self._links):
                writer.transport.abort()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._set("reset")  # held pumps end, open links close, new ones are refused
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut == "reset":
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, upstream}
        self._links |= pair
        try:
            await asyncio.gather(self._pump(reader, upstream), self._pump(upstream_reader, writer))
        finally:
            self._links -= pair
            for end in pair:
                end.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(_CHUNK):
                while self._cut == "blackhole":
                    await asyncio.sleep(0.05)
                if self._cut == "reset" or writer.transport.is_closing():
                    return
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
