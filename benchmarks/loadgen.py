"""A small keep-alive HTTP/1.1 load generator, run as its own process.

It reads one JSON command per line on stdin (``{"port", "path", "headers", "connections",
"duration", "warmup"}``), opens that many keep-alive connections to 127.0.0.1, sends requests
back to back on each for ``warmup + duration`` seconds, and answers one JSON line on stdout:
requests completed in the measured window and during the warm-up, the window's length, and
latency percentiles. A long-lived
process serves every round, so its start-up never falls into a measurement.

Run by :mod:`benchmarks.served`; ``python -m benchmarks.loadgen`` on its own waits for commands.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from benchmarks.machine import pin
from benchmarks.measure import percentile


def _request_bytes(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def _connection(
    port: int,
    request: bytes,
    start_at: float,
    stop_at: float,
    latencies: list[float],
    statuses: dict[int, int],
    warm: list[int],
    interval: float | None = None,
    offset: float = 0.0,
) -> None:
    """Send requests one after another on one keep-alive connection: as fast as answers come,
    or (``interval``) one every ``interval`` seconds from ``offset``, each request's latency
    counted from when it was due, so a slow answer delays the next (no coordinated omission)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    clock = time.perf_counter
    due = clock() + offset
    try:
        while True:
            if interval is not None:
                wait = due - clock()
                if wait > 0:
                    await asyncio.sleep(wait)
            sent = clock() if interval is None else due
            if sent >= stop_at:
                return
            if interval is not None:
                due += interval
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _content_length(head)
            if length:
                await reader.readexactly(length)
            done = clock()
            if sent >= start_at:
                latencies.append(done - sent)
                status = int(head[9:12])
                statuses[status] = statuses.get(status, 0) + 1
            else:
                warm[0] += 1
    finally:
        writer.close()


async def _round(command: dict[str, Any]) -> dict[str, Any]:
    request = _request_bytes(command["path"], command.get("headers", {}))
    warmup = float(command.get("warmup", 0.1))
    duration = float(command["duration"])
    cpu = time.process_time()
    now = time.perf_counter()
    start_at, stop_at = now + warmup, now + warmup + duration
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    warm = [0]
    connections = int(command.get("connections", 8))
    rate = command.get("rate")  # requests per second in all, spread over the connections
    interval = connections / float(rate) if rate else None
    await asyncio.gather(
        *(
            _connection(
                command["port"],
                request,
                start_at,
                stop_at,
                latencies,
                statuses,
                warm,
                interval,
                (interval or 0.0) * i / connections,
            )
            for i in range(connections)
        )
    )
    busy = (time.process_time() - cpu) / (time.perf_counter() - now)
    latencies.sort()
    return {
        "client_busy": busy,
        "requests": len(latencies),
        "warmup_requests": warm[0],
        "seconds": duration,
        "statuses": {str(k): v for k, v in statuses.items()},
        "p50_us": percentile(latencies, 0.5) * 1e6 if latencies else None,
        "p99_us": percentile(latencies, 0.99) * 1e6 if latencies else None,
    }


def _event_loop_factory() -> Any:
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:
        return asyncio.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--core", type=int, default=None, help="pin to this core")
    pin(parser.parse_args().core)
    factory = _event_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                result = runner.run(_round(orjson.loads(line)))
            except Exception as exc:  # reported to the parent, which decides what it means
                result = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(orjson.dumps(result).decode() + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
