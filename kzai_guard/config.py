"""Policies and guard settings from a TOML file, validated at start-up.

::

    [guard]
    profile = "kz"
    store = "sqlite:///kzai-guard.db"
    audit = "kzai-audit"
    audit_signing_key = "/etc/kzai-guard/audit.key"   # made by kzai-guard keygen
    subject_header = "X-Subject-Id"
    contact = "support@example.kz"

    [[policy]]
    name = "loan_approval"
    purpose = "credit-scoring"
    domain = "credit"
    significance = "legal-effect"
    autonomy = "high"
    risk = "high"
"""

from __future__ import annotations

import enum
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kzai_guard.audit.keys import Signer
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.core.transfers import Destination
from kzai_guard.errors import ConfigurationError
from kzai_guard.subjects import from_header

__all__ = ["load_config", "load_destinations"]

_GUARD_KEYS = {
    "profile",
    "store",
    "audit",
    "durability",
    "audit_signing_key",
    "subject_header",
    "routes_prefix",
    "problem_base",
    "objection_header_name",
    "review_deadline_days",
    "reviews_prefix",
    "review_console",
    "review_lease_minutes",
    "reviewer_subject_role",
    "how_to_object",
    "human_contact",
    "contact",
    "poll_interval",
    "stale_after",
    "cache_limit",
    "reviewer_challenge",
    "deadline_warning_days",
    "deadline_check_seconds",
    "deadline_webhook_url",
    "deadline_webhook_secret",
}

_TEXT_KEYS = {
    "store": '"sqlite:///kzai-guard.db"',
    "audit": '"kzai-audit" (a directory)',
    "subject_header": '"X-Subject-Id"',
    "audit_signing_key": '"/etc/kzai-guard/audit.key" (made by kzai-guard keygen)',
}


def load_config(path: str | Path) -> tuple[list[DecisionPolicy], dict[str, Any]]:
    """The policies and the ``Guard`` keyword arguments that the file at ``path`` declares."""
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{source}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{source}: not UTF-8 text, as TOML must be: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML: {exc}") from exc
    unknown_tables = set(data) - {"guard", "policy", "destination"}
    if unknown_tables:
        raise ConfigurationError(
            f"{source}: unknown table(s) {sorted(unknown_tables)}; use [guard], [[policy]] "
            "and [[destination]]"
        )
    if not isinstance(data.get("guard", {}), dict):
        raise ConfigurationError(f"{source}: guard must be a table: write [guard] above its keys")
    guard = dict(data.get("guard", {}))
    unknown = set(guard) - _GUARD_KEYS
    if unknown:
        raise ConfigurationError(
            f"{source}: [guard] has unknown key(s) {sorted(unknown)}; known: {sorted(_GUARD_KEYS)}"
        )
    for key, example in _TEXT_KEYS.items():
        if key in guard and (not isinstance(guard[key], str) or not guard[key]):
            raise ConfigurationError(f"{source}: [guard] {key} must be text, such as {example}")
    if guard.get("durability", "sync") not in ("async", "sync"):
        raise ConfigurationError(f'{source}: [guard] durability must be "async" or "sync"')
    if "subject_header" in guard:
        try:
            guard["subject"] = from_header(guard.pop("subject_header"))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{source}: [guard] subject_header: {exc}") from None
    if "audit_signing_key" in guard:
        # a relative path is read from the file's own directory
        signing_key = source.parent / guard.pop("audit_signing_key")
        guard["audit_signer"] = Signer.from_file(signing_key)
    raw_policies = data.get("policy", [])
    if not isinstance(raw_policies, list) or not raw_policies:
        raise ConfigurationError(f"{source}: declare at least one [[policy]] table")
    policies = [_policy(source, index, raw) for index, raw in enumerate(raw_policies)]
    return policies, guard


def _policy(source: Path, index: int, raw: Any) -> DecisionPolicy:
    if not isinstance(raw, dict):
        raise ConfigurationError(
            f"{source}: policy #{index + 1} is not a table; declare each policy as [[policy]]"
        )
    name = raw.get("name", f"#{index + 1}")
    try:
        return DecisionPolicy.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc'])}': {err['msg']}{_fix(err)}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"{source}: policy {name!r}: {details}") from exc


def _fix(error: Any) -> str:
    """What to do about one validation error of a policy table, where pydantic does not say."""
    field = error["loc"][0] if error["loc"] else None
    if error["type"] == "extra_forbidden":
        return f" (remove it, or check its spelling; a policy's fields: {', '.join(_FIELDS)})"
    if error["type"] == "missing" and isinstance(field, str):
        values = _choices(field)
        return f" (add {field} = {values})" if values else f" (add {field})"
    return ""


def _choices(field: str) -> str | None:
    """The allowed values of an enumerated policy field, quoted as TOML writes them."""
    annotation = DecisionPolicy.model_fields[field].annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        *others, last = (f'"{member.value}"' for member in annotation)
        return f"{', '.join(others)} or {last}" if others else last
    return None


_FIELDS = tuple(DecisionPolicy.model_fields)


def load_destinations(path: str | Path) -> list[Destination]:
    """The ``[[destination]]`` tables of the file at ``path``: where the audit trail is sent
    (SIEM destinations, exporters), each with its ``name`` and ``country`` (ISO 3166 alpha-2).

    ::

        [[destination]]
        name = "splunk-hec"
        country = "KZ"
    """
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8")).get("destination", [])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{source}: cannot read: {exc}") from None
    if not isinstance(raw, list):
        raise ConfigurationError(f"{source}: declare each destination as [[destination]]")
    out: list[Destination] = []
    for index, table in enumerate(raw):
        try:
            out.append(Destination.model_validate(table))
        except ValidationError as exc:
            raise ConfigurationError(
                f"{source}: destination #{index + 1}: {exc.errors()[0]['msg']} "
                f"(field {'.'.join(map(str, exc.errors()[0]['loc']))}; country is an ISO 3166 "
                'alpha-2 code such as "KZ")'
            ) from exc
    return out
