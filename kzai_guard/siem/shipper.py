"""Reliable shipping of the audit log to a SIEM: at-least-once, in order, resumable.

A :class:`Shipper` follows the log from its cursor with
:func:`kzai_guard.audit.reader.follow` (every line's chain is checked as it is read), groups
events into batches, delivers each batch to a :class:`~kzai_guard.siem.Destination` and saves the
cursor only after the destination acknowledged the batch. So:

- nothing is skipped: a batch that fails is sent again, after a jittered exponential backoff,
  for as long as it takes (a *permanent* failure, such as a rejected token, stops the shipper);
- nothing is lost on a crash or restart: the cursor never runs ahead of an acknowledgement;
  a batch delivered just before a crash may be delivered again, and each event carries a
  stable ``uid`` (``<record id>:<seq>``) and the log's origin for the receiver to drop the
  duplicate (the key across a fleet's logs is ``(origin, seq, line_hash)``);
- only verified records leave: a record is shipped once a checkpoint signed by one of the
  public keys covers it and matches the records read; at a break the records before the last
  good checkpoint are shipped, the cursor stays there, and :meth:`Shipper.run` raises
  :class:`~kzai_guard.audit.reader.ChainBroken` naming the seq. Without public keys the
  shipper refuses to start unless ``unverified=True``, and then every event is marked
  unverified.

Run it in the foreground (:meth:`Shipper.run`, as ``kzai-guard ship`` does) or as a background
thread inside a service (:meth:`Shipper.start` / :meth:`Shipper.stop`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kzai_guard.audit.keys import Keyring, PublicKey
from kzai_guard.audit.reader import ChainBroken, follow, read_verified
from kzai_guard.audit.segments import read_origin
from kzai_guard.errors import ConfigurationError
from kzai_guard.siem._event import SiemEvent
from kzai_guard.siem.cursor import CursorError, CursorFile, Position
from kzai_guard.siem.destination import Destination
from kzai_guard.siem.transports import Backoff, TransportError

__all__ = ["Progress", "Shipper"]

_log = logging.getLogger("kzai_guard.siem")


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of the shipper, handed to the ``on_progress`` callback.

    ``shipped_seq`` is the last acknowledged seq (``None`` before the first); ``shipped`` counts
    the events delivered since start; ``retrying`` holds the last delivery error while the
    current batch is being retried, else ``None``.
    """

    shipped_seq: int | None
    shipped: int
    batch: int
    retrying: str | None = None
    retry_in: float = 0.0


class _End:
    """The log was read to its end (one-pass mode)."""


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


class Shipper:
    """Ships the audit log in ``directory`` to ``destination``, from the cursor on.

    ``cursor`` is the cursor file path (or a :class:`~kzai_guard.siem.CursorFile`).
    ``public_keys`` are the log's checkpoint keys; without them ``unverified=True`` is
    required (else :class:`~kzai_guard.errors.ConfigurationError`). A batch is
    sent when it holds ``batch_size`` events or ``linger`` seconds after its first event.
    ``follow=False`` ships what the log holds and returns (``kzai-guard ship --once``).
    On :meth:`stop` the batch in flight is finished (retried for at most ``shutdown_grace``
    seconds, after which it stays unacknowledged and is sent again on the next start) and the
    cursor saved. ``on_progress`` is called from the shipping thread after every batch and
    every failed attempt; an exception it raises is logged and otherwise ignored.

    Every event carries the log's origin: the shipper reads it from the log (when it is made,
    and again when shipping starts) and hands it to ``destination.for_log``, which raises
    :class:`~kzai_guard.errors.ConfigurationError` if the destination was built for another.
    Given ``origin``, the log the caller expects, every checkpoint must name it and a log
    claiming another stops shipping with :class:`~kzai_guard.audit.reader.ChainBroken`
    before anything is sent.

    Example, inside a service::

        destination = open_destination("tls://siem.example:6514", make_encoder("syslog"))
        shipper = Shipper("/var/lib/app/audit", destination, cursor="/var/lib/app/siem.cursor")
        shipper.start()
        ...
        shipper.stop()
    """

    def __init__(
        self,
        directory: str | Path,
        destination: Destination,
        *,
        cursor: str | Path | CursorFile,
        public_keys: Iterable[str | Path | PublicKey] | Keyring | None = None,
        unverified: bool = False,
        batch_size: int = 500,
        linger: float = 0.2,
        backoff: Backoff | None = None,
        poll_interval: float = 0.2,
        shutdown_grace: float = 5.0,
        follow: bool = True,
        on_progress: Callable[[Progress], None] | None = None,
        origin: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if public_keys is None and not unverified:
            raise ConfigurationError(
                "Shipper needs public_keys (the log's checkpoint keys) so that only records "
                "under a verified signed checkpoint leave; pass unverified=True to ship "
                "chain-checked records marked unverified"
            )
        self._verified = public_keys is not None
        self.directory = Path(directory)
        self.destination = destination
        self.cursor = cursor if isinstance(cursor, CursorFile) else CursorFile(cursor)
        self._public_keys = public_keys
        self._batch_size = batch_size
        self._linger = linger
        self._backoff = backoff or Backoff()
        self._poll_interval = poll_interval
        self._grace = shutdown_grace
        self._follow = follow
        self._on_progress = on_progress
        self._expected_origin = origin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shipped_seq: int | None = None
        self._shipped = 0
        self.error: BaseException | None = None
        """The exception that ended a background shipper (see :meth:`start`), else ``None``."""
        self.origin: str | None = None
        """The origin of the log, which every event carries (``None``: the log has none)."""
        claimed = read_origin(self.directory)
        if claimed is not None:  # a log not made yet is named when shipping starts
            self._name_events(origin or claimed)

    @property
    def shipped_seq(self) -> int | None:
        """The last seq the destination acknowledged (from the cursor at start)."""
        return self._shipped_seq

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Ship in a daemon thread until :meth:`stop`; a fatal error lands in :attr:`error`."""
        if self.running:
            raise RuntimeError("the shipper is already running")
        self._stop.clear()
        self.error = None
        self._thread = threading.Thread(target=self._run_background, name="kzai-siem-shipper")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Finish the batch in flight, save the cursor and end; waits up to ``timeout``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def request_stop(self) -> None:
        """Ask :meth:`run` to end after the batch in flight (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> None:
        """Ship in the calling thread until :meth:`request_stop` (or the end, one-pass).

        Raises :class:`~kzai_guard.audit.reader.ChainBroken` at a chain break (after shipping
        every record before it), :class:`~kzai_guard.siem.TransportError` on a permanent
        delivery failure, :class:`~kzai_guard.siem.CursorError` when the cursor does not
        match the log and :class:`~kzai_guard.errors.ConfigurationError` when the destination
        was built for another log's origin.
        """
        if not self.cursor.path.parent.is_dir():
            raise CursorError(f"the cursor's directory {self.cursor.path.parent} does not exist")
        claimed = read_origin(self.directory)
        expected = self._expected_origin
        if expected is not None and claimed is not None and claimed != expected:
            raise ChainBroken(
                0, f"the log in {self.directory} is {claimed!r}, not the expected {expected!r}"
            )
        self._name_events(expected or claimed)
        position = self.cursor.load()
        if position is not None:
            self._check_resume(position)
            self._shipped_seq = position.seq
        items: queue.Queue[SiemEvent | _End | _Failure] = queue.Queue(self._batch_size * 4)
        reader = threading.Thread(
            target=self._read,
            args=(items, None if position is None else position.seq),
            name="kzai-siem-reader",
            daemon=True,
        )
        reader.start()
        try:
            self._ship(items)
        finally:
            self._stop.set()
            reader.join(5.0)
            self.destination.close()

    def _name_events(self, origin: str | None) -> None:
        self.destination = self.destination.for_log(origin)
        self.origin = origin

    def _run_background(self) -> None:
        try:
            self.run()
        except BaseException as exc:
            self.error = exc
            _log.error("SIEM shipping stopped: %s", exc)

    def _check_resume(self, position: Position) -> None:
        entries = read_verified(
            self.directory,
            after_seq=position.seq - 1,
            public_keys=self._public_keys,
            origin=self._expected_origin,
        )
        try:
            first = next(iter(entries), None)
        finally:
            close = getattr(entries, "close", None)
            if close is not None:
                close()
        if first is None:
            raise CursorError(
                f"the cursor {self.cursor.path} is at seq {position.seq} but the log in "
                f"{self.directory} holds no such record; is it the right log?"
            )
        if first.seq == position.seq and first.line_hash != position.line_hash:
            raise CursorError(
                f"the record at seq {position.seq} in {self.directory} is not the one the cursor "
                f"{self.cursor.path} acknowledged; is it the right log?"
            )

    def _read(self, items: queue.Queue[SiemEvent | _End | _Failure], after: int | None) -> None:
        try:
            if self._follow:
                entries = follow(
                    self.directory,
                    after_seq=after,
                    public_keys=self._public_keys,
                    poll_interval=self._poll_interval,
                    stop=self._stop,
                    origin=self._expected_origin,
                )
            else:
                entries = read_verified(
                    self.directory,
                    after_seq=after,
                    public_keys=self._public_keys,
                    origin=self._expected_origin,
                )
            for entry in entries:
                if not self._put(items, SiemEvent.from_entry(entry, verified=self._verified)):
                    return
            self._put(items, _End())
        except BaseException as exc:
            self._put(items, _Failure(exc))

    def _put(self, items: queue.Queue[SiemEvent | _End | _Failure], item: object) -> bool:
        while True:
            try:
                items.put(item, timeout=0.1)  # type: ignore[arg-type]
                return True
            except queue.Full:
                if self._stop.is_set():
                    return False

    def _ship(self, items: queue.Queue[SiemEvent | _End | _Failure]) -> None:
        while True:
            batch, last = self._collect(items)
            if batch:
                if not self._deliver(batch):
                    return
                end = batch[-1]
                self.cursor.save(Position(end.seq, end.uid, end.line_hash))
                self._shipped_seq = end.seq
                self._shipped += len(batch)
                self._report(Progress(self._shipped_seq, self._shipped, len(batch)))
            if isinstance(last, _Failure):
                raise last.error
            if isinstance(last, _End) or (last is None and self._stop.is_set()):
                return

    def _collect(
        self, items: queue.Queue[SiemEvent | _End | _Failure]
    ) -> tuple[list[SiemEvent], _End | _Failure | None]:
        batch: list[SiemEvent] = []
        deadline: float | None = None
        while len(batch) < self._batch_size:
            if deadline is None:
                wait = 0.1
            else:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
            try:
                item = items.get(timeout=wait)
            except queue.Empty:
                if self._stop.is_set() and (deadline is None or not batch):
                    break
                continue
            if isinstance(item, (_End, _Failure)):
                return batch, item
            batch.append(item)
            if deadline is None:
                deadline = time.monotonic() + self._linger
        return batch, None

    def _deliver(self, batch: list[SiemEvent]) -> bool:
        delays = self._backoff.delays()
        give_up: float | None = None
        while True:
            try:
                self.destination.deliver(batch)
                return True
            except TransportError as exc:
                if exc.permanent:
                    raise
                delay = next(delays)
                now = time.monotonic()
                if self._stop.is_set():
                    give_up = give_up if give_up is not None else now + self._grace
                    if now >= give_up:
                        _log.warning(
                            "stopping with seq %d..%d unacknowledged; they are sent again on "
                            "the next start",
                            batch[0].seq,
                            batch[-1].seq,
                        )
                        return False
                    delay = min(delay, give_up - now)
                _log.warning("SIEM delivery failed (%s); retrying in %.1fs", exc, delay)
                self._report(
                    Progress(self._shipped_seq, self._shipped, len(batch), str(exc), delay)
                )
                if give_up is None:
                    self._stop.wait(delay)
                else:
                    time.sleep(delay)

    def _report(self, progress: Progress) -> None:
        if self._on_progress is None:
            return
        try:
            self._on_progress(progress)
        except Exception:
            _log.exception("the SIEM progress callback failed")
