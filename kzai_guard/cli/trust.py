"""What an auditor trusts, from the command line: the log's origin and the witness policy.

The origin a log is checked against comes from ``--origin``, or from a key bound to it: a
``--public-key`` value (or ``.pub`` file) of the form ``<origin> <vkey>``. It is never taken
from the log directory or the bundle being checked: without either, a command refuses to run
(another host's log signed with the same key would otherwise pass as this one).
"""

from __future__ import annotations

import argparse
import urllib.request
from pathlib import Path

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.cosignature import WitnessPolicy
from kzai_guard.audit.keys import Keyring
from kzai_guard.errors import ConfigurationError

__all__ = [
    "ORIGIN_NEEDED",
    "add_origin_argument",
    "add_witness_arguments",
    "bound_keys",
    "expected_origin",
    "held_checkpoints",
    "witness_policy",
]


ORIGIN_NEEDED = (
    "name the log you mean: give --origin ORIGIN, or a --public-key bound to it as "
    "'<origin> <vkey>' (the log's own claim is never taken)"
)
"""Why a command that checks a checkpoint refuses to run without an expected origin."""


def add_origin_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--origin`` option."""
    parser.add_argument(
        "--origin",
        help="the log's expected origin (checkpoint first line); required unless a "
        "--public-key is given bound to it as '<origin> <vkey>'",
    )


def add_witness_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--witness-key`` and ``--witnesses`` options."""
    parser.add_argument(
        "--witness-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a trusted witness's vkey or .pub file; repeat for each witness",
    )
    parser.add_argument(
        "--witnesses",
        type=int,
        metavar="N",
        help="how many of the --witness-key witnesses must have cosigned (default: all)",
    )


def bound_keys(sources: list[str]) -> tuple[Keyring, str | None]:
    """The keyring of ``--public-key`` values and the origin bound to them, if any.

    A value (or the text of a file) ``<origin> <vkey>`` trusts the key for that origin only.
    """
    keys: list[str | Path] = []
    origins: set[str] = set()
    for source in sources:
        path = Path(source)
        text = source
        if path.is_file():
            data = path.read_bytes()
            if data.lstrip().startswith(b"-----BEGIN"):
                keys.append(path)
                continue
            text = data.decode("utf-8", errors="replace")
        parts = text.split()
        if len(parts) == 2:
            origins.add(parts[0])
            keys.append(parts[1])
        else:
            keys.append(path if path.is_file() else source)
    if len(origins) > 1:
        raise ConfigurationError(
            f"the --public-key values are bound to different origins {sorted(origins)}"
        )
    return Keyring.load(keys), next(iter(origins), None)


def expected_origin(given: str | None, bound: str | None) -> str:
    """The origin the auditor expects: ``--origin``, or the one bound to the ``--public-key``.

    Never the log's own claim (its directory or the bundle being checked). Raises
    :class:`~kzai_guard.errors.ConfigurationError` when neither names one, or when they
    disagree.
    """
    if given is not None and bound is not None and given != bound:
        raise ConfigurationError(f"--origin {given!r} differs from the key's origin {bound!r}")
    origin = given or bound
    if origin is None:
        raise ConfigurationError(ORIGIN_NEEDED)
    return origin


def witness_policy(keys: list[str], quorum: int | None) -> WitnessPolicy | None:
    """The policy from ``--witness-key`` / ``--witnesses``, or ``None`` if no key is given."""
    if not keys:
        if quorum is not None:
            raise ConfigurationError("--witnesses needs at least that many --witness-key options")
        return None
    return WitnessPolicy.of(keys, quorum)


def held_checkpoints(sources: list[str]) -> list[SignedCheckpoint]:
    """The checkpoints (signed notes) of ``--checkpoint`` files or URLs.

    A URL is fetched, e.g. a witness's ``<prefix>/<sha256 hex of origin>/checkpoint``.
    """
    notes: list[SignedCheckpoint] = []
    for source in sources:
        try:
            if source.startswith(("http://", "https://")):
                with urllib.request.urlopen(source, timeout=30) as answer:
                    text = answer.read(65536).decode("utf-8")
            else:
                text = Path(source).read_text("utf-8")
            notes.append(SignedCheckpoint.parse(text))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"--checkpoint {source}: {exc}") from exc
    return notes
