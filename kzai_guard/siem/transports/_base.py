"""What every transport promises, its error, and the retry schedule."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from kzai_guard.errors import KzaiGuardError

__all__ = ["Backoff", "Transport", "TransportError"]


class TransportError(KzaiGuardError):
    """Raised when a batch could not be delivered.

    ``permanent`` is true when sending the same batch again cannot succeed without a change of
    configuration (a rejected token, an unknown index, a payload too large); the shipper stops
    with the message instead of retrying.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(Protocol):
    """Sends batches of encoded messages to one receiver.

    :meth:`send` returns only once the receiver has the whole batch (as far as the protocol can
    tell); otherwise it raises :class:`TransportError` and the caller may send the batch again.
    One attempt per call: retries are the caller's.
    """

    def send(self, messages: Sequence[bytes]) -> None:
        """Deliver ``messages`` in order, or raise :class:`TransportError`."""
        ...

    def close(self) -> None:
        """Release the connection or file; a later :meth:`send` reopens it."""
        ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter, bounded.

    The n-th delay (from 0) is drawn uniformly from ``[d/2, d]`` with
    ``d = min(maximum, initial * multiplier**n)``: retries spread out, and never wait longer
    than ``maximum``.

    >>> delays = Backoff(initial=1.0, maximum=4.0).delays()
    >>> [0.5 <= next(delays) <= 1.0, 1.0 <= next(delays) <= 2.0, 2.0 <= next(delays) <= 4.0]
    [True, True, True]
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or self.multiplier < 1:
            raise ValueError("Backoff needs 0 < initial <= maximum and multiplier >= 1")

    def delays(self) -> Iterator[float]:
        """An endless sequence of delays in seconds."""
        ceiling = self.initial
        while True:
            yield random.uniform(ceiling / 2, ceiling)
            ceiling = min(self.maximum, ceiling * self.multiplier)
