"""``kzai-guard tiles AUDIT_DIR OUT_DIR``: publish the log as C2SP tlog-tiles.

Writes the newest checkpoint (with its cosignatures), the full and partial Merkle tree tiles
and, for a format-2 log, the spec's entry bundles (the records' commitments ``SHA-256(line)``,
never records; a format-1 log gets commitment bundles of leaf hashes instead) under OUT_DIR;
serve OUT_DIR as the log's URL prefix. A pruned log is published from its anchor on (the
spec's minimum index).
Exit status 0 on success; 1 when some tiles of a pruned log cannot exist (an earlier pruning
released their hashes: each is named on stderr, everything else is written); 2 when the log
cannot be published.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kzai_guard.audit.tiles import write_tiles
from kzai_guard.errors import AuditLogError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``tiles`` verb."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "tiles",
        help="publish the log as static C2SP tlog-tiles",
        description="Write checkpoint, tree tiles and commitment bundles into OUT_DIR.",
    )
    parser.add_argument("directory", metavar="AUDIT_DIR")
    parser.add_argument("out", metavar="OUT_DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the tiles; print what was written."""
    try:
        report = write_tiles(args.directory, args.out)
    except (AuditLogError, OSError) as exc:
        print(f"kzai-guard tiles: {exc}", file=sys.stderr)
        return 2
    pruned = f" from minimum index {report.minimum_index}" if report.minimum_index else ""
    print(
        f"published size {report.size}{pruned}: {len(report.written)} files written to {args.out}"
    )
    if report.entries_from is not None and report.entries_from > report.minimum_index:
        print(
            f"entry bundles start at index {report.entries_from}: the bundle before it holds "
            "pruned records"
        )
    for tile in report.withheld:
        print(f"kzai-guard tiles: cannot publish {tile.message()}", file=sys.stderr)
    return 1 if report.withheld else 0
