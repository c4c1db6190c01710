"""Legal profiles: which law's rules the guard applies.

- ``kz``: KZ-AI + KZ-PD. A solely automated significant decision needs consent or a statutory
  basis; Kazakhstan knows no contract-necessity exception.
- ``eu``: GDPR Art. 22 + the AI Act. Contract necessity is accepted as well.
- ``strictest``: both at once, for cross-border services: a decision is allowed only where both
  profiles allow it.
"""

from __future__ import annotations

import enum

from kzai_guard.core.vocabulary import BasisKind

__all__ = ["Profile", "accepted_bases"]


class Profile(enum.StrEnum):
    """The legal profile a guard enforces."""

    KZ = "kz"
    EU = "eu"
    STRICTEST = "strictest"

    @property
    def components(self) -> tuple[Profile, ...]:
        """The single-jurisdiction profiles this one is made of."""
        if self is Profile.STRICTEST:
            return (Profile.KZ, Profile.EU)
        return (self,)


_ACCEPTED: dict[Profile, frozenset[BasisKind]] = {
    Profile.KZ: frozenset({BasisKind.CONSENT, BasisKind.STATUTORY}),
    Profile.EU: frozenset({BasisKind.CONSENT, BasisKind.STATUTORY, BasisKind.CONTRACT}),
}


def accepted_bases(profile: Profile) -> frozenset[BasisKind]:
    """The legal bases for solely automated significant decisions this profile accepts."""
    if profile is Profile.STRICTEST:
        return _ACCEPTED[Profile.KZ] & _ACCEPTED[Profile.EU]
    return _ACCEPTED[profile]
