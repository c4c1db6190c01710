"""Where audit data goes (KZ-PD 12(2), 16): destinations declare a country; transfers out of
Kazakhstan are listed by ``kzai-guard check`` and the report."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HOME_COUNTRY", "Destination", "transfer_findings"]

HOME_COUNTRY = "KZ"
"""Personal data are stored in Kazakhstan (KZ-PD 12(2))."""


class Destination(BaseModel):
    """A SIEM destination or exporter the audit trail is sent to.

    ``country`` is the ISO 3166-1 alpha-2 code of where the data is stored; ``None`` means it
    was not declared, which is itself a finding.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


def transfer_findings(destinations: list[Destination]) -> list[tuple[str, str]]:
    """``(article, finding)`` for each destination without a country or outside Kazakhstan."""
    out: list[tuple[str, str]] = []
    for destination in destinations:
        if destination.country is None:
            out.append(
                (
                    "KZ-PD 12(2)",
                    f"destination {destination.name!r} declares no country; set 'country' "
                    "(ISO 3166 alpha-2) so that transfers can be judged",
                )
            )
        elif destination.country != HOME_COUNTRY:
            out.append(
                (
                    "KZ-PD 16",
                    f"destination {destination.name!r} sends audit data to "
                    f"{destination.country}, outside Kazakhstan: a cross-border transfer, "
                    "lawful only to an adequate state or with consent",
                )
            )
    return out
