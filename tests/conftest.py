"""Settings shared by the whole suite.

The machines that run it are shared and noisy, so Hypothesis judges no example by its speed:
a slow draw (the first use of a Unicode strategy builds its tables) or a slow example is not a
failure. What an example asserts is unchanged.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "kzai",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("kzai")
