"""The log's side of C2SP ``tlog-witness``: send each new checkpoint to the witnesses, keep
their cosignatures.

A :class:`Witnesses` object holds the policy (witness URLs with their public keys, and how many
must cosign). Bound to a log (:meth:`Witnesses.start`), it runs one thread per witness; the
writer calls :meth:`Witnesses.submit` after it signs a checkpoint, which only records the note
and wakes the threads, so a witness that is slow or down delays cosigning, never decisions.

Each thread sends the newest checkpoint with a consistency proof from the size the witness last
cosigned (learnt from earlier answers, from the kept cosignatures, or from a 409 answer),
retrying with exponential backoff while the witness cannot be reached. Checkpoints signed while
it was away are not sent one by one: the newest is sent with one proof that covers them all.

Cosignatures are kept in ``AUDIT_DIR/cosigned.checkpoints``: each answer is appended as a note
holding the log's signature and the witness's cosignature line (same layout as a segment's
``.checkpoints`` file). :func:`cosigned_note` gathers, for one checkpoint, every cosignature
kept for it.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kzai_guard.audit.checkpoint import SignedCheckpoint, read_notes
from kzai_guard.audit.cosignature import CosignerKey, WitnessPolicy, load_cosigner_key
from kzai_guard.audit.merkle import consistency_proof
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.errors import ConfigurationError
from kzai_guard.witness.protocol import encode_add_checkpoint, parse_size

__all__ = [
    "COSIGNED_FILE",
    "Feeder",
    "WitnessEndpoint",
    "Witnesses",
    "cosigned_note",
    "read_cosigned",
]

COSIGNED_FILE = "cosigned.checkpoints"
"""The file in the log directory that keeps the witnesses' cosignatures."""

Consistency = Callable[[int, int], Sequence[bytes]]
"""``consistency(old, new)``: the RFC 9162 consistency proof between two sizes of the log."""


class Feeder(Protocol):
    """Who sends, where many processes share one log (:mod:`kzai_guard.audit.pg_witnesses`)."""

    def leading(self) -> bool:
        """Whether this process is the one that sends checkpoints now."""
        ...

    def respawn(self) -> None:
        """In a forked child: start this process's own feeding."""
        ...

    def stop(self) -> None:
        """Stop feeding and let another process lead."""
        ...


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    """One witness: its submission URL prefix and its cosigning key."""

    url: str
    key: CosignerKey

    @classmethod
    def of(cls, url: str, key: str | Path | CosignerKey) -> WitnessEndpoint:
        """An endpoint from a URL and a vkey, a ``.pub`` file or a key object."""
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"witness URL {url!r} must start with http:// or https://")
        return cls(url.rstrip("/"), key if isinstance(key, CosignerKey) else load_cosigner_key(key))


class Witnesses:
    """Witnesses a log sends its checkpoints to, and how many must cosign ("N of these").

    Example::

        witnesses = Witnesses(
            [WitnessEndpoint.of("https://w1.example/", "w1.example+0a1b2c3d+BA..."),
             WitnessEndpoint.of("https://w2.example/", "keys/w2.pub")],
            quorum=1,
        )
        log = AuditLog.open(directory, signer=signer, witnesses=witnesses)
    """

    def __init__(
        self,
        endpoints: Iterable[WitnessEndpoint],
        quorum: int | None = None,
        *,
        timeout_s: float = 10.0,
        retry_s: float = 0.5,
        max_retry_s: float = 60.0,
        close_wait_s: float = 2.0,
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.policy = WitnessPolicy(
            tuple(e.key for e in self.endpoints), len(self.endpoints) if quorum is None else quorum
        )
        if timeout_s <= 0 or retry_s <= 0 or max_retry_s < retry_s or close_wait_s < 0:
            raise ConfigurationError(
                "timeout_s and retry_s must be positive, max_retry_s >= retry_s, close_wait_s >= 0"
            )
        self.close_wait_s = close_wait_s
        """How long :meth:`settle` (called when the log closes) waits at most."""
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._workers: list[_Worker] = []
        self._file_lock = threading.Lock()
        self._path: Path | None = None
        self._keeper: Callable[[SignedCheckpoint], None] = self._keep_in_file
        self._feeder: Feeder | None = None
        self._pid = 0
        self._progress = threading.Condition()

    def start(
        self, directory: str | os.PathLike[str], consistency: Consistency | None = None
    ) -> None:
        """Bind to the log in ``directory`` and start one thread per witness.

        ``consistency(old, new)`` gives proofs; by default they are read from the directory's
        tree files.
        """
        if self._workers:
            raise ConfigurationError("these Witnesses are already bound to a log")
        self._path = Path(directory) / COSIGNED_FILE
        if consistency is None:
            consistency = _tree_consistency(Path(directory))
        self.bind(self._keep_in_file, read_cosigned(Path(directory)), consistency)

    def bind(
        self,
        keep: Callable[[SignedCheckpoint], None],
        kept: Sequence[SignedCheckpoint],
        consistency: Consistency,
        feeder: Feeder | None = None,
    ) -> None:
        """Bind to a log wherever it keeps things, and start one thread per witness.

        ``keep(note)`` stores a cosigned note, ``kept`` are those stored before (each
        witness's newest tells the size it holds), ``consistency(old, new)`` gives proofs.
        ``feeder``, if given, decides which process sends (:meth:`submit` hands a checkpoint
        on only while ``feeder.leading()``) and is stopped with the threads.
        """
        if self._workers:
            raise ConfigurationError("these Witnesses are already bound to a log")
        self._keeper = keep
        self._feeder = feeder
        self._pid = os.getpid()
        for endpoint in self.endpoints:
            held = max(
                (n.checkpoint.size for n in kept if endpoint.key.cosigned(n) is not None),
                default=None,
            )
            worker = _Worker(self, endpoint, consistency, held)
            self._workers.append(worker)
            worker.thread.start()

    def submit(self, signed: SignedCheckpoint) -> None:
        """Hand a newly signed checkpoint to every witness thread; returns at once.

        In a process forked after :meth:`start` (whose threads did not survive the fork),
        the first call starts this process's own threads. With a feeder, only the process
        that leads sends.
        """
        if self._workers and os.getpid() != self._pid:
            self._respawn()
        if self._feeder is not None and not self._feeder.leading():
            return
        self.offer(signed)

    def offer(self, signed: SignedCheckpoint) -> None:
        """Hand ``signed`` to every witness thread of this process (a feeder's call)."""
        for worker in self._workers:
            worker.offer(signed)

    def _respawn(self) -> None:
        if self._feeder is not None:
            self._feeder.respawn()
        self._pid = os.getpid()
        self._file_lock = threading.Lock()
        self._progress = threading.Condition()
        old, self._workers = self._workers, []
        for worker in old:
            fresh = _Worker(self, worker.endpoint, worker.consistency, worker.held)
            fresh.done = worker.done
            self._workers.append(fresh)
            fresh.thread.start()

    def wait(self, size: int, timeout: float | None = None, count: int | None = None) -> bool:
        """Wait until ``count`` witnesses (default: the quorum) have cosigned a checkpoint of
        at least ``size``; True if they have."""
        need = self.policy.quorum if count is None else count
        with self._progress:
            return self._progress.wait_for(
                lambda: sum(w.cosigned_size() >= size for w in self._workers) >= need, timeout
            )

    def status(self) -> dict[str, dict[str, object]]:
        """Per witness URL: the size it last cosigned and the last error, if any."""
        return {
            w.endpoint.url: {"cosigned_size": w.cosigned_size(), "error": w.error}
            for w in self._workers
        }

    def settle(self) -> bool:
        """Give the witnesses up to ``close_wait_s`` to answer for the newest checkpoint
        handed to them: each tries at once (a witness waiting out a backoff after an error
        too), and this returns once each has cosigned it or failed one attempt (a witness
        that is down does not hold the caller for long), or when the time is up. True if
        every witness cosigned it. Called when the log closes, so that its final checkpoint
        is cosigned now rather than at the next open."""
        if not self._workers or os.getpid() != self._pid:
            return False
        size = max((w.offered() for w in self._workers), default=-1)
        if size < 0:
            return True
        for worker in self._workers:
            worker.rush()
        with self._progress:
            self._progress.wait_for(
                lambda: all(w.answered(size) for w in self._workers), self.close_wait_s
            )
        return all(w.cosigned_size() >= size for w in self._workers)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads (a checkpoint not yet cosigned stays uncosigned)."""
        if self._feeder is not None:
            self._feeder.stop()
        for worker in self._workers:
            worker.stop()
        for worker in self._workers:
            worker.thread.join(timeout)

    def _keep(self, note: SignedCheckpoint) -> None:
        self._keeper(note)

    def _keep_in_file(self, note: SignedCheckpoint) -> None:
        if self._path is None:
            raise RuntimeError("not bound to a log")
        data = (note.note() + "\n").encode()
        with self._file_lock:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fdatasync(fd)
            finally:
                os.close(fd)


class _Worker:
    """The thread that keeps one witness up to date."""

    def __init__(
        self,
        owner: Witnesses,
        endpoint: WitnessEndpoint,
        consistency: Consistency,
        held: int | None,
    ) -> None:
        self.owner = owner
        self.endpoint = endpoint
        self.consistency = consistency
        self.held = held  # the size the witness holds, as far as the log knows
        self.done = -1 if held is None else held  # the largest size it cosigned for us
        self.tried = -1  # the largest size an exchange finished for, cosigned or not
        self.hurry = False  # cut the current backoff short: the log is closing
        self.newest: SignedCheckpoint | None = None
        self.error: str | None = None
        self.stopping = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(
            target=self.run, name=f"kzai-guard-witness {endpoint.url}", daemon=True
        )

    def offer(self, signed: SignedCheckpoint) -> None:
        with self.cond:
            if self.newest is None or signed.checkpoint.size >= self.newest.checkpoint.size:
                self.newest = signed
                self.cond.notify_all()

    def cosigned_size(self) -> int:
        with self.cond:
            return self.done

    def offered(self) -> int:
        """The size of the newest checkpoint handed to this witness (-1: none)."""
        with self.cond:
            return -1 if self.newest is None else self.newest.checkpoint.size

    def answered(self, size: int) -> bool:
        """Whether the witness cosigned ``size`` or an exchange for it has finished."""
        with self.cond:
            return self.done >= size or self.tried >= size

    def rush(self) -> None:
        """Try again now rather than at the end of the backoff."""
        with self.cond:
            self.hurry = True
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def run(self) -> None:
        delay = self.owner.retry_s
        while True:
            with self.cond:
                self.cond.wait_for(
                    lambda: (
                        self.stopping
                        or (self.newest is not None and self.newest.checkpoint.size > self.done)
                    )
                )
                if self.stopping:
                    return
                note = self.newest
            if note is None:
                continue
            try:
                finished = self.send(note)
            except Exception as exc:  # a failing witness must never stop the thread
                self.error = f"{type(exc).__name__}: {exc}"
                finished = False
            with self.cond:
                self.tried = max(self.tried, note.checkpoint.size)
            with self.owner._progress:
                self.owner._progress.notify_all()
            if finished:
                delay = self.owner.retry_s
                continue
            with self.cond:
                self.cond.wait_for(lambda: self.stopping or self.hurry, delay)
                self.hurry = False
            delay = min(delay * 2, self.owner.max_retry_s)

    def send(self, note: SignedCheckpoint) -> bool:
        """One exchange; True when the witness cosigned (or a 409 told us its size)."""
        size = note.checkpoint.size
        old = self.held or 0
        if old > size:
            self.error = f"the witness holds size {old}, beyond the log's newest checkpoint {size}"
            return False
        proof = self.consistency(old, size) if 0 < old < size else []
        body = encode_add_checkpoint(old, proof, note.note())
        request = urllib.request.Request(
            self.endpoint.url + "/add-checkpoint", data=body, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.owner.timeout_s) as response:
                answer = response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", errors="replace")
            finally:
                exc.close()
            if exc.code == 409:
                self.held = parse_size(text)
                self.error = None
                return True
            self.error = f"HTTP {exc.code}: {text.strip()[:200]}"
            return False
        except (OSError, urllib.error.URLError) as exc:
            self.error = f"unreachable: {exc}"
            return False
        cosigned = SignedCheckpoint.parse(note.checkpoint.body().decode() + "\n" + answer)
        if self.endpoint.key.cosigned(cosigned) is None:
            self.error = "the answer holds no valid cosignature by the witness's key"
            return False
        mine = [
            s
            for s in cosigned.signatures
            if s[:2] == (self.endpoint.key.name, self.endpoint.key.id)
        ]
        self.owner._keep(note.with_signatures(mine))
        with self.cond:
            self.held = size
            self.done = max(self.done, size)
            self.error = None
        with self.owner._progress:
            self.owner._progress.notify_all()
        return True


def _tree_consistency(directory: Path) -> Consistency:
    def consistency(old: int, new: int) -> Sequence[bytes]:
        tree = TreeFiles(directory)
        try:
            return consistency_proof(old, new, tree.subtree)
        finally:
            tree.close()

    return consistency


def read_cosigned(directory: str | os.PathLike[str]) -> list[SignedCheckpoint]:
    """Every well-formed note kept in the log's ``cosigned.checkpoints`` file."""
    notes = read_notes(Path(directory) / COSIGNED_FILE)
    return [n for n in notes if isinstance(n, SignedCheckpoint)]


def cosigned_note(note: SignedCheckpoint, kept: Iterable[SignedCheckpoint]) -> SignedCheckpoint:
    """``note`` with every kept signature line for the same checkpoint body added."""
    extra = [s for k in kept if k.checkpoint == note.checkpoint for s in k.signatures]
    return note.with_signatures(extra)
