"""One deployment of the test app: its configuration, its servers, operator scripts, its log.

A :class:`Deployment` holds what every process of the service shares (store URL, audit log,
signing key, operator token) and starts servers and operator scripts with it, each in a working
directory of its own. The log is read back the way an auditor reads it: with the ``kzai-guard``
command and the public key alone.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kzai_guard.audit.keys import write_keypair
from tests.deploy.client import Client
from tests.deploy.servers import Server, process_env

__all__ = ["Deployment", "Trail"]

COMMAND_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Trail:
    """The records of the log, as ``kzai-guard export --format jsonl`` wrote them."""

    records: list[dict[str, Any]]

    def ids(self, kind: str, **match: str) -> list[str]:
        """The ids of the records of ``kind`` whose fields equal ``match``, in log order."""
        return [
            r["id"]
            for r in self.records
            if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())
        ]

    def allowed_decisions(self) -> list[str]:
        """The ids of the allowed-decision records."""
        return self.ids("decision", verdict="allow")

    def duplicated(self) -> list[str]:
        """Record ids that occur more than once."""
        return [i for i, n in Counter(r["id"] for r in self.records).items() if n > 1]


@dataclass
class Deployment:
    """A service's shared configuration; see the module docstring."""

    root: Path
    store: str
    audit: str
    key: Path = field(init=False)
    public_key: Path = field(init=False)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.key, self.public_key, _ = write_keypair(self.root / "keys", "deploy-test")

    @classmethod
    def on_one_host(cls, root: Path) -> Deployment:
        """The README's embedded default: a SQLite store and an audit directory under ``root``."""
        return cls(root, f"sqlite:///{root / 'kzai-guard.db'}", str(root / "kzai-audit"))

    def env(self, *, store: str | None = None, audit: str | None = None) -> dict[str, str]:
        """The environment of one process of the service (``store``/``audit`` override)."""
        return {
            "KZG_DEPLOY_STORE": store or self.store,
            "KZG_DEPLOY_AUDIT": audit or self.audit,
            "KZG_DEPLOY_SIGNER": str(self.key),
            "KZG_DEPLOY_OPERATOR_TOKEN": self.token,
        }

    def server(
        self, shape: str, *, name: str | None = None, workers: int = 3, **env: str
    ) -> Server:
        """A server of ``shape`` (not yet started) in the working directory ``root/name``."""
        return Server(shape, self.root / (name or shape), self.env(**env), workers=workers)

    def client(self, server: Server, **options: float) -> Client:
        """An HTTP client of ``server`` holding the operator token (``timeout=`` seconds)."""
        return Client(server.url, self.token, **options)

    def operator(self, action: str, argument: str, *, name: str = "operator", **env: str) -> None:
        """Run the operator script once, in its own working directory; raise if it fails."""
        workdir = self.root / name
        workdir.mkdir(exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "tests.deploy.operator", action, argument],
            cwd=workdir,
            env=process_env(self.env(**env)),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        if done.returncode != 0 or done.stdout.strip() != "done":
            raise RuntimeError(
                f"operator {action} {argument} exited {done.returncode}: {done.stderr[-4000:]}"
            )

    def kzai_guard(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run the ``kzai-guard`` command on this deployment's log with its public key."""
        return subprocess.run(
            [sys.executable, "-m", "kzai_guard.cli", arguments[0], self.audit, *arguments[1:],
             "--public-key", str(self.public_key)],
            cwd=self.root,
            env=process_env({}),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )  # fmt: skip

    def verify(self) -> subprocess.CompletedProcess[str]:
        """``kzai-guard verify`` with the public key and the origin the operator noted."""
        return self.kzai_guard("verify", "--origin", self.origin())

    def origin(self) -> str:
        """The log's origin, as the operator notes it once the service has made the log (the
        auditor is told it, never reads it from the log being checked)."""
        if self.audit.startswith("postgresql://"):
            import psycopg

            with psycopg.connect(self.audit) as conn:
                row = conn.execute("SELECT origin FROM kzg_log_head").fetchone()
            if row is None:
                raise RuntimeError(f"{self.audit} holds no log yet")
            return str(row[0])
        return Path(self.audit, "origin").read_text("utf-8").strip()

    def trail(self) -> Trail:
        """Every record of the log, read with ``kzai-guard export --format jsonl``."""
        done = self.kzai_guard("export", "--format", "jsonl", "--origin", self.origin())
        if done.returncode != 0:
            raise RuntimeError(f"kzai-guard export exited {done.returncode}: {done.stderr}")
        return Trail([json.loads(line)["record"] for line in done.stdout.splitlines() if line])
