"""The witness as an ASGI application (Starlette): ``POST /add-checkpoint`` and the monitor's
``GET /<sha256 hex of origin>/checkpoint``, as C2SP ``tlog-witness`` defines them.

The request body is read up to :data:`MAX_BODY` bytes; the decision is
:func:`kzai_guard.witness.state.judge`, run with the state file's transaction held
(:meth:`kzai_guard.witness.store.WitnessStore.decide`) in a worker thread so the event loop
never waits on the disk.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.cosignature import Cosigner
from kzai_guard.audit.keys import Keyring
from kzai_guard.witness.protocol import parse_add_checkpoint
from kzai_guard.witness.state import Answer, judge
from kzai_guard.witness.store import WitnessStore

__all__ = ["MAX_BODY", "witness_app"]

MAX_BODY = 64 * 1024
"""The largest request body accepted (a checkpoint and 63 hashes need a few kilobytes)."""


def witness_app(
    cosigner: Cosigner,
    logs: Mapping[str, Keyring],
    store: WitnessStore,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The witness's ASGI app: cosigns checkpoints of ``logs`` (origin -> trusted log keys)."""
    known = dict(logs)
    by_hash = {hashlib.sha256(origin.encode()).hexdigest(): origin for origin in known}

    def decide(body: bytes) -> Answer:
        try:
            request = parse_add_checkpoint(body)
            origin = SignedCheckpoint.parse(request.note).checkpoint.origin
        except ValueError as exc:
            return Answer(400, f"{exc}\n")
        if origin not in known:
            return Answer(404, f"unknown log origin {origin!r}\n")
        now = int(clock())
        return store.decide(origin, lambda current: judge(request, known, current, cosigner, now))

    async def add_checkpoint(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return Response("request too large\n", 413, media_type="text/plain")
        answer = await run_in_threadpool(decide, bytes(body))
        return Response(answer.body, answer.status, headers={"content-type": answer.content_type})

    async def checkpoint(request: Request) -> Response:
        origin = by_hash.get(request.path_params["origin_hash"])
        state = None if origin is None else await run_in_threadpool(store.get, origin)
        if state is None:
            return Response("no checkpoint cosigned for this log\n", 404, media_type="text/plain")
        return Response(state.note, headers={"content-type": "text/plain; charset=utf-8"})

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/{origin_hash}/checkpoint", checkpoint, methods=["GET"]),
        ]
    )
