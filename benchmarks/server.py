"""One app variant under uvicorn on 127.0.0.1, as a child process of :mod:`benchmarks.served`.

It binds an ephemeral port, prints ``{"port": ..., "loop": ..., "http": ...}`` on stdout once
the socket is listening, and serves until it is terminated.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys

import orjson

from benchmarks import apps
from benchmarks.machine import pin


def _implementations() -> tuple[str, str]:
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    return loop, http


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--framework", choices=apps.FRAMEWORKS, required=True)
    parser.add_argument(
        "--variant", choices=["bare", "guarded", "least", "basehttp", "pureasgi"], required=True
    )
    parser.add_argument("--otel", choices=["api", "sdk"], default="api")
    parser.add_argument("--core", type=int, default=None)
    args = parser.parse_args()

    import uvicorn

    apps.configure_otel(args.otel)
    built = apps.build(args.framework, args.variant)
    pin(args.core)
    loop, http = _implementations()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    config = uvicorn.Config(
        built.app,
        loop=loop,
        http=http,
        log_level="error",
        access_log=False,
        lifespan="on",
        backlog=1024,
    )
    server = uvicorn.Server(config)
    sys.stdout.write(
        orjson.dumps(
            {"port": sock.getsockname()[1], "loop": loop, "http": http, "audit": built.audit_label}
        ).decode()
        + "\n"
    )
    sys.stdout.flush()
    # uvicorn shuts down gracefully on SIGTERM and then re-raises the signal; exiting through
    # SystemExit instead lets the app's clean-up (audit log, temporary directory) run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run(sockets=[sock])
    finally:
        built.close()


if __name__ == "__main__":
    main()
