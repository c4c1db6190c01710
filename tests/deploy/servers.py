"""Real servers running the deployment test app: uvicorn and gunicorn with several workers.

A :class:`Server` starts one server as its own process group (its own session), on a free port
of 127.0.0.1, in a working directory of its own, waits until it answers and runs the number of
workers it was asked for, finds its worker processes in ``/proc``, and stops it: cleanly with
SIGTERM, or with SIGKILL to one worker or to the whole group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

__all__ = ["ROOT", "SHAPES", "Server", "ServerFailed", "free_port", "group_members", "process_env"]

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.deploy.app:app"
SHAPES = ("uvicorn", "gunicorn", "gunicorn-preload")
"""The server shapes: ``uvicorn --workers N``; gunicorn with uvicorn workers, without and with
``--preload`` (the app, and so its guard, imported once in the master before the fork)."""

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
STEADY_S = 1.0


class ServerFailed(RuntimeError):
    """The server did not start, or did not stop, as it should; the message ends with its log."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def command(shape: str, port: int, workers: int) -> list[str]:
    """The command line that starts ``shape`` with ``workers`` workers on ``port``."""
    if shape == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", APP,
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "warning",
        ]  # fmt: skip
    if shape in ("gunicorn", "gunicorn-preload"):
        preload = ["--preload"] if shape == "gunicorn-preload" else []
        return [
            sys.executable, "-m", "gunicorn", APP, *preload,
            "-k", "uvicorn.workers.UvicornWorker", "-w", str(workers),
            "-b", f"127.0.0.1:{port}", "--graceful-timeout", "20", "--log-level", "warning",
        ]  # fmt: skip
    raise ValueError(f"unknown server shape {shape!r}; known: {SHAPES}")


def process_env(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with ``env`` over it and the repository on the import path."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **env, "PYTHONPATH": path}


def _stat(pid: int) -> tuple[int, int] | None:
    """``(parent pid, process group)`` of a live process, None if it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2])


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    return [pid for pid in _pids() if (stat := _stat(pid)) is not None and stat[1] == pgid]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Server:
    """One server process group running the test app; see the module docstring."""

    def __init__(
        self, shape: str, workdir: Path, env: Mapping[str, str], *, workers: int = 3
    ) -> None:
        if workers < 2:
            raise ValueError("run at least two workers: with one, uvicorn serves in its master")
        self.shape = shape
        self.workdir = workdir
        self.workers = workers
        self.ready_dir = workdir / "ready"
        self.env = process_env({**env, "KZG_DEPLOY_READY_DIR": str(self.ready_dir)})
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{shape}.log"
        self.ready_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The master's pid (also the process group's id)."""
        if self.process is None:
            raise ServerFailed("the server was not started")
        return self.process.pid

    def start(self) -> Server:
        """Start the server and wait until it answers with all its workers running."""
        self.port = free_port()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command(self.shape, self.port, self.workers),
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the same full set of workers runs for a while, each one marked ready.

        A worker that dies at start and is started again forever never makes the set steady;
        a worker still importing the app has not marked itself ready.
        """
        give_up = time.monotonic() + timeout
        seen: set[int] = set()
        while time.monotonic() < give_up:
            if self.process is None or self.process.poll() is not None:
                raise ServerFailed(f"{self.shape} exited at start{self._log_tail()}")
            workers = self.worker_pids()
            if (
                len(workers) == self.workers
                and workers == seen
                and workers <= self.ready_pids()
                and self._answers()
            ):
                return
            seen = workers
            time.sleep(STEADY_S)
        raise ServerFailed(
            f"{self.shape} did not become ready in {timeout:.0f} s with {self.workers} "
            f"workers (has {len(self.worker_pids())}){self._log_tail()}"
        )

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_pids(self) -> set[int]:
        """The pids of the server's live worker processes (children of the master that serve).

        uvicorn also starts multiprocessing's resource tracker beside its workers; it is not one.
        """
        if self.process is None:
            return set()
        master = self.process.pid
        return {
            pid
            for pid in _pids()
            if (stat := _stat(pid)) is not None
            and stat[0] == master
            and "resource_tracker" not in _cmdline(pid)
        }

    def ready_pids(self) -> set[int]:
        """The pids of the workers that marked themselves ready (the app's lifespan started)."""
        return {int(p.name) for p in self.ready_dir.iterdir()}

    def kill_worker(self, pid: int) -> None:
        """SIGKILL one worker; the master starts another in its place."""
        if pid not in self.worker_pids():
            raise ValueError(f"{pid} is not a worker of this server")
        os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the whole server, master and workers at once, and reap the master."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_S)
        self._wait_group_gone(self.process.pid)

    def stop(self) -> int:
        """Stop cleanly (SIGTERM to the master); its exit status. Raises if it will not stop."""
        if self.process is None:
            raise ServerFailed("the server was not started")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                raise ServerFailed(
                    f"{self.shape} did not stop on SIGTERM{self._log_tail()}"
                ) from None
        self._wait_group_gone(self.process.pid)
        return self.process.returncode

    def close(self) -> None:
        """Make sure nothing of the server is left running (for fixture teardown)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.kill()
            elif group_members(self.process.pid):
                os.killpg(self.process.pid, signal.SIGKILL)

    def _wait_group_gone(self, pgid: int) -> None:
        give_up = time.monotonic() + STOP_TIMEOUT_S
        while group_members(pgid):
            if time.monotonic() > give_up:
                os.killpg(pgid, signal.SIGKILL)
                raise ServerFailed(f"{self.shape}'s workers outlived the master{self._log_tail()}")
            time.sleep(0.05)

    def log(self) -> str:
        """Everything the server printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _log_tail(self, lines: int = 40) -> str:
        tail = "\n".join(self.log().splitlines()[-lines:])
        return f"\n--- {self.log_path} (last {lines} lines) ---\n{tail}"
