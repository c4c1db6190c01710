"""The witness's configuration file (TOML), read and checked once at start-up::

    key = "keys/witness.key"          # private key; its name is read from keys/witness.pub
    state = "state/witness.sqlite3"   # where the cosigned sizes are kept (made 0600)

    [[log]]
    origin = "audit.example.kz/credit"
    keys = ["prod-2026+1a2b3c4d+AW...="]   # vkeys or .pub files of the log's signing keys

Relative paths are relative to the configuration file. Every mistake raises
:class:`~kzai_guard.errors.ConfigurationError` naming the fix.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kzai_guard.audit.cosignature import Cosigner
from kzai_guard.audit.keys import Keyring
from kzai_guard.errors import ConfigurationError

__all__ = ["WitnessConfig", "load_witness_config"]


@dataclass(frozen=True, slots=True)
class WitnessConfig:
    """A loaded witness configuration: its key, its state file and its logs."""

    cosigner: Cosigner
    state: Path
    logs: dict[str, Keyring]


def _path(base: Path, value: Any, what: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f'the witness configuration needs {what} = "PATH"')
    path = Path(value)
    return path if path.is_absolute() else base / path


def load_witness_config(path: str | Path) -> WitnessConfig:
    """Read and check the configuration file at ``path``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read witness configuration {path}: {exc}") from exc
    unknown = set(data) - {"key", "state", "log"}
    if unknown:
        raise ConfigurationError(
            f"unknown witness configuration keys {sorted(unknown)}; use key, state and [[log]]"
        )
    base = path.parent
    cosigner = Cosigner.from_file(_path(base, data.get("key"), "key"))
    state = _path(base, data.get("state"), "state")
    entries = data.get("log", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(
            f"{path} lists no logs: add a [[log]] table with origin = ... and keys = [...]"
        )
    logs: dict[str, Keyring] = {}
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"origin", "keys"}:
            raise ConfigurationError('each [[log]] has exactly origin = "..." and keys = [...]')
        origin, keys = entry["origin"], entry["keys"]
        if not isinstance(origin, str) or not origin or "\n" in origin:
            raise ConfigurationError(f"[[log]] origin {origin!r} is not a one-line origin")
        if origin in logs:
            raise ConfigurationError(f"log origin {origin!r} is listed twice")
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise ConfigurationError(f'log {origin!r} needs keys = ["<vkey or .pub file>"]')
        sources = [k if "+" in k else str(_path(base, k, "keys")) for k in keys]
        logs[origin] = Keyring.load(sources)
    return WitnessConfig(cosigner, state, logs)
