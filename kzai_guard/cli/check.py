"""``kzai-guard check FILE``: the start-up checks and the pre-compliance findings of a policy file.

Exit 0 when the policies may run and nothing needs attention, 1 when there are findings (such
as a missing or stale risk review, or an audit log that would be signed with the demo key), 2
when the file or a policy is invalid, prohibited, or could not be explained (no model, no
contact): whatever would stop ``Guard.from_file`` from starting.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import Any

from kzai_guard.config import load_config, load_destinations
from kzai_guard.core.checks import check_explanation_sources, check_policy, findings
from kzai_guard.core.profiles import Profile
from kzai_guard.core.transfers import transfer_findings
from kzai_guard.errors import ConfigurationError
from kzai_guard.guard import DEFAULT_AUDIT_DIR

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``check`` verb."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check", help="check a policy file against the law's start-up rules"
    )
    parser.add_argument("file", help="the TOML policy file")
    parser.add_argument(
        "--today", type=date.fromisoformat, default=None, help="the date to judge risk reviews by"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print what is wrong with the policies in ``args.file``."""
    try:
        policies, settings = load_config(args.file)
        destinations = load_destinations(args.file)
        profile = Profile(settings.get("profile", Profile.KZ))
        for policy in policies:
            check_policy(policy, profile)
            check_explanation_sources(policy, settings.get("contact"))
    except (ConfigurationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    today = args.today or date.today()
    found = [finding for policy in policies for finding in findings(policy, today)]
    found += [f"{finding} ({article})" for article, finding in transfer_findings(destinations)]
    found += _signing_findings(settings)
    for finding in found:
        print(f"finding: {finding}")
    print(f"{len(policies)} policies checked ({profile.value} profile), {len(found)} findings")
    return 1 if found else 0


def _signing_findings(settings: dict[str, Any]) -> list[str]:
    """A finding when the audit log would be signed with the demo key kept beside it."""
    audit = settings.get("audit", DEFAULT_AUDIT_DIR)
    if "audit_signer" in settings or not isinstance(audit, str):
        return []
    return [
        f"[guard]: the audit log {audit!r} would be signed with the demo key kept in its keys "
        "directory, which whoever can write the directory can use; set audit_signing_key to a "
        "key kept elsewhere (kzai-guard keygen), or pass audit_signer= to Guard.from_file"
    ]
