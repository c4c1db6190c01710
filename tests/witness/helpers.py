"""Trees, checkpoints and witness processes shared by the witness tests."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from kzai_guard.audit.checkpoint import Checkpoint, SignedCheckpoint
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.merkle import consistency_proof, leaf_hash, node_hash, split_point


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 MTH over leaf *inputs*, written out recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = split_point(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def signed(signer: Signer, origin: str, leaves: Sequence[bytes]) -> SignedCheckpoint:
    """The checkpoint of ``leaves`` signed by ``signer``."""
    return Checkpoint(origin, len(leaves), mth(leaves)).sign([signer])


def proof(leaves: Sequence[bytes], old: int) -> list[bytes]:
    """The consistency proof from ``old`` to ``len(leaves)``."""
    return consistency_proof(old, len(leaves), lambda a, b: mth(leaves[a:b]))


def free_port() -> int:
    """A TCP port free at the time of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(directory: Path, name: str, origin: str, log_key: str) -> Path:
    """A witness key and configuration in ``directory``; returns the config file."""
    from kzai_guard.audit.cosignature import write_cosigner_keypair

    write_cosigner_keypair(directory / "keys", name)
    config = directory / "witness.toml"
    config.write_text(
        'key = "keys/witness.key"\nstate = "state/witness.sqlite3"\n\n'
        f'[[log]]\norigin = "{origin}"\nkeys = ["{log_key}"]\n'
    )
    return config


def start_witness(config: Path, port: int) -> subprocess.Popen[bytes]:
    """``kzai-guard witness serve`` in its own process, once it answers."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kzai_guard.cli",
            "witness",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/0/checkpoint", timeout=1)
        except urllib.error.HTTPError:
            return process
        except OSError:
            if process.poll() is not None:
                message = process.stderr.read().decode() if process.stderr else "died"
                raise RuntimeError(message) from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the witness did not start")
