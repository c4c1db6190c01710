"""The default per-subject key store: a SQLite file beside the log, with a reserve of keys.

A key must be durable no later than the first record sealed under it, or that record would be
unreadable after a power failure; and the writer of a durable log should pay one fsync per
group commit, its segment's, not a second one for the keys. So keys are made ahead of need and
committed durably, numbered, in a reserve (table ``reserved_key``). A new subject takes the
next reserved key, and every line sealed under it names the key's number until the assignment
is durable: a crash that takes the assignment away leaves the key in the reserve, and
:meth:`SqliteSubjectKeys.recover` assigns it again from the lines.

Every line names its key by a reference of its own (:func:`~kzai_guard.audit.shredding.
record_ref`), so the store keeps an index from those references to their owners (table
``record_ref``), which erasure empties of the owner's entries. The writer commits each batch's
entries, with the batch's key assignments, before the lines are written: one SQLite commit per
batch, without an fsync (the lines no longer carry reserved keys' numbers, which would tie a
person's records together). A keeper thread, on a connection of its own, commits assignments
left over (four times a second, without an fsync) and refills the reserve before it runs low
(with one); in WAL mode a read never waits for a write. Should the reserve run dry, a new key
is made on the spot and committed durably before its records are written, as other stores do.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import cast

from kzai_guard.errors import ErasureIncomplete
from kzai_guard.forking import remake_after_fork
from kzai_guard.private_files import private_sqlite
from kzai_guard.sqlite_erasure import find_in_files, sqlite_files, truncate_wal

__all__ = ["SqliteSubjectKeys"]

KEY_SIZE = 32
"""Bytes in a subject key (AES-256)."""
_PREFETCH_CHUNK = 500
_RESERVE_CHUNK = 1024
_RESERVE_LOW = 1024
_CACHE_LIMIT = 65_536
_KEEP_INTERVAL_S = 0.25
"""How long the keeper lets assignments gather before it commits them."""


class SqliteSubjectKeys:
    """Keys in a SQLite file (WAL), with ``secure_delete`` on so erasure overwrites the key bytes.

    :meth:`key_for` makes a key on first use: the next one of the reserve, or a fresh one if
    the reserve is empty or the store was made with ``reserve_keys=False``. An ``async`` log
    makes its store so: no caller waits for its disk, and one fsync of the store per batch is
    less work than keeping a reserve. :meth:`commit` (the log calls it before writing the lines
    of a batch) commits fresh keys durably; assignments of reserved keys are left to the keeper
    thread, since the lines name their keys' numbers (:meth:`key_number`) until :meth:`sync` or
    a refill of the reserve has made the assignments durable.

    >>> import tempfile, pathlib
    >>> keys = SqliteSubjectKeys(pathlib.Path(tempfile.mkdtemp()) / "keys.sqlite3")
    >>> len(keys.key_for("sk:0123")) == KEY_SIZE
    True
    >>> keys.erase("sk:0123"); keys.key_for("sk:0123", create=False) is None
    True
    >>> keys.close()
    """

    def __init__(self, path: str | Path, *, reserve_keys: bool = True) -> None:
        self.path = Path(path)
        self._reserve_keys = reserve_keys
        # _lock guards the state in memory and is never held across a database write;
        # _write_lock serialises the writes, all of them on _wdb
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()
        # the keys, and SQLite's -wal and -shm beside them (made with the file's mode), 0600
        private_sqlite(self.path)
        self._wdb = _connect(self.path)
        self._wdb.execute(
            "CREATE TABLE IF NOT EXISTS subject_key (ref TEXT PRIMARY KEY, key BLOB NOT NULL)"
        )
        # AUTOINCREMENT: a number is never handed out twice, even after its key was taken
        self._wdb.execute(
            "CREATE TABLE IF NOT EXISTS reserved_key "
            "(number INTEGER PRIMARY KEY AUTOINCREMENT, key BLOB NOT NULL)"
        )
        self._wdb.execute(
            "CREATE TABLE IF NOT EXISTS record_ref (ref TEXT PRIMARY KEY, owner TEXT NOT NULL)"
            " WITHOUT ROWID"
        )
        self._wdb.execute("CREATE INDEX IF NOT EXISTS record_ref_owner ON record_ref (owner)")
        self._db = _connect(self.path)
        self._cache: dict[str, bytes] = {}
        # keys made since they were last committed (the keeper's included, until its commit ends)
        self._pending: dict[str, bytes] = {}
        # refs in _pending whose key is not from the reserve: committed durably by commit()
        self._fresh: set[str] = set()
        # refs looked up by prefetch() and found absent: key_for() creates them without a query
        self._absent: set[str] = set()
        # refs whose key came from the reserve and whose assignment is not yet durable
        self._numbers: dict[str, int] = {}
        # record references not yet committed, and their owners
        self._remembered: dict[str, str] = {}
        self._reserve: collections.deque[tuple[int, bytes]] | None = None
        self._last_number = 0
        self._due = threading.Condition(self._lock)
        self._work = False
        self._closing = False
        self._keeper: threading.Thread | None = None
        remake_after_fork(self)

    def before_fork(self) -> None:
        """Hold the locks across a fork, so that no SQLite transaction or statement is under
        way on these connections when the child is made: SQLite's in-process lock state is
        shared with the connections a child opens to the same file, and one held at the fork
        would never be released there (every writer now commits a batch's record references)."""
        self._write_lock.acquire()
        self._lock.acquire()

    def after_fork_in_parent(self) -> None:
        """Release what :meth:`before_fork` held."""
        self._lock.release()
        self._write_lock.release()

    def after_fork_in_child(self) -> None:
        """New locks and no keeper thread in the child (the log opens a store of its own)."""
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._due = threading.Condition(self._lock)
        self._work = False
        self._keeper = None

    def key_for(self, ref: str, create: bool = True) -> bytes | None:
        """The key for ``ref``, made on first use when ``create``."""
        key = self._cache.get(ref)
        if key is not None:
            return key
        with self._lock:
            key = self._cache.get(ref) or self._pending.get(ref)
            if key is not None:
                return key
            if ref not in self._absent:
                row = self._db.execute(
                    "SELECT key FROM subject_key WHERE ref = ?", (ref,)
                ).fetchone()
                if row is not None:
                    key = bytes(row[0])
                    self._cache[ref] = key
                    return key
            if not create:
                return None
            self._absent.discard(ref)
            reserve = self._reserved() if self._reserve_keys else None
            if reserve:
                number, key = reserve.popleft()
                self._numbers[ref] = number
                self._wake()
            else:
                key = os.urandom(KEY_SIZE)
                self._fresh.add(ref)
            self._pending[ref] = key
            return key

    def remember(self, refs: Iterable[tuple[str, str]]) -> None:
        """Index ``(record reference, owner)`` pairs; committed by the next :meth:`commit`."""
        with self._lock:
            self._remembered.update(refs)

    def record_key(self, ref: str) -> bytes | None:
        """The key of the record named ``ref``, through the index of record references."""
        with self._lock:
            owner = self._remembered.get(ref)
            if owner is None:
                row = self._db.execute(
                    "SELECT owner FROM record_ref WHERE ref = ?", (ref,)
                ).fetchone()
                if row is None:
                    return None
                owner = str(row[0])
        return self.key_for(owner, create=False)

    def key_number(self, ref: str) -> int | None:
        """The number of the reserved key of ``ref`` while its assignment is not durable."""
        return self._numbers.get(ref)

    def key_numbers(self, refs: Sequence[str]) -> list[int | None]:
        """:meth:`key_number` of each of ``refs``, in order."""
        return list(map(self._numbers.get, refs))

    def keys_for(self, refs: Sequence[str]) -> list[bytes]:
        """:meth:`key_for` of each of ``refs`` (made where absent), in order."""
        found = list(map(self._cache.get, refs))
        if None not in found:
            return cast(list[bytes], found)
        key_for = self.key_for
        return [
            key if key is not None else cast(bytes, key_for(ref))
            for ref, key in zip(refs, found, strict=True)
        ]

    def reserved_key(self, number: int) -> bytes | None:
        """The reserved key numbered ``number``, if it is still reserved.

        A reader in another process finds through it the key of a line written before its
        assignment was committed; once committed, the key is found by its reference.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT key FROM reserved_key WHERE number = ?", (number,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def prefetch(self, refs: Iterable[str]) -> None:
        """Look up the keys of ``refs`` in a few queries, so that :meth:`key_for` needs none."""
        with self._lock:
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()
            self._absent.clear()
            refs = list(refs)
            if all(map(self._cache.__contains__, refs)):
                return
            wanted = [
                r for r in dict.fromkeys(refs) if r not in self._cache and r not in self._pending
            ]
            found = _stored(self._db, wanted)
            for ref in wanted:
                key = found.get(ref)
                if key is None:
                    self._absent.add(ref)
                else:
                    self._cache[ref] = key

    def commit(self) -> bool:
        """Make it safe to write the records sealed under the keys made so far.

        A fresh key (the reserve was empty) is committed durably, with every assignment made
        before it; otherwise the assignments of reserved keys and the record references
        remembered since the last commit are committed without an fsync.
        Returns True if another process sharing the file had committed a key of its own for
        a subject first: that key is kept and this one dropped, so the records sealed since
        the last commit must be sealed again (their subjects' keys are now the stored ones).
        """
        if self._fresh:
            return self._commit(durable=True)
        if self._remembered or self._pending:
            return self._commit(durable=False)
        return False

    def reserve(self, count: int = _RESERVE_CHUNK) -> None:
        """Make ``count`` more keys ahead of need, durably (with every assignment before them)."""
        raw = os.urandom(KEY_SIZE * count)
        keys = [raw[i : i + KEY_SIZE] for i in range(0, len(raw), KEY_SIZE)]
        with self._write_lock:
            with self._lock:
                reserve = self._reserved()
                committed = [r for r in self._numbers if r not in self._pending]
            with _transaction(self._wdb):
                issued = self._wdb.execute(
                    "SELECT max(seq) FROM sqlite_sequence WHERE name = 'reserved_key'"
                ).fetchone()[0]
                first = max(int(issued or 0), self._last_number) + 1
                rows = list(enumerate(keys, first))
                self._wdb.executemany("INSERT INTO reserved_key (number, key) VALUES (?, ?)", rows)
            with self._lock:
                self._last_number = first + count - 1
                reserve.extend(rows)
                # the fsync of that commit made every assignment committed before it durable
                for ref in committed:
                    self._numbers.pop(ref, None)

    def needs_reserve(self) -> bool:
        """Whether the reserve is running low (never, for a store made with
        ``reserve_keys=False``)."""
        if not self._reserve_keys:
            return False
        with self._lock:
            return len(self._reserved()) < _RESERVE_LOW

    def sync(self) -> None:
        """Make every assignment made so far durable (one fsync)."""
        with self._write_lock:
            self._commit(durable=True)
            if self._numbers:
                self.reserve(1)

    def recover(self, assignments: Iterable[tuple[str, int]]) -> None:
        """Redo assignments of reserved keys (``(ref, number)`` read from the log's records).

        An assignment whose reserved key is still there was lost in a crash after its
        records were written; one whose key is gone was durable (and may since have been
        erased, which stays so).
        """
        with self._write_lock, _transaction(self._wdb):
            for ref, number in dict.fromkeys(assignments):
                row = self._wdb.execute(
                    "SELECT key FROM reserved_key WHERE number = ?", (number,)
                ).fetchone()
                if row is None:
                    continue
                self._wdb.execute(
                    "INSERT OR IGNORE INTO subject_key (ref, key) VALUES (?, ?)", (ref, row[0])
                )
                self._wdb.execute("DELETE FROM reserved_key WHERE number = ?", (number,))
        with self._lock:
            self._reserve = None
            self._cache.clear()
            self._absent.clear()

    def erase(self, ref: str) -> None:
        """Delete the key for ``ref`` and the index entries of its records, and verify that
        neither the key's bytes nor ``ref`` are in any file any more.

        The row's bytes are overwritten (``secure_delete``), the WAL is checkpointed and
        truncated (tried again while another connection reads: :func:`truncate_wal`), and then
        the database, its ``-wal`` and ``-shm`` are read to check that the key is in none of
        them. Raises :class:`~kzai_guard.errors.ErasureIncomplete` otherwise; the key
        is deleted either way, and erasing again finishes the job.
        """
        with self._write_lock:
            with self._lock:
                erased = [self._cache.pop(ref, None), self._pending.pop(ref, None)]
                for record in [r for r, owner in self._remembered.items() if owner == ref]:
                    del self._remembered[record]
                self._fresh.discard(ref)
                self._absent.discard(ref)
                number = self._numbers.pop(ref, None)
            with _transaction(self._wdb):
                row = self._wdb.execute(
                    "SELECT key FROM subject_key WHERE ref = ?", (ref,)
                ).fetchone()
                if row is not None:
                    erased.append(bytes(row[0]))
                if number is not None:
                    # a key assigned but not committed must not be handed out again
                    self._wdb.execute("DELETE FROM reserved_key WHERE number = ?", (number,))
                self._wdb.execute("DELETE FROM subject_key WHERE ref = ?", (ref,))
                self._wdb.execute("DELETE FROM record_ref WHERE owner = ?", (ref,))
            truncate_wal(self._wdb, f"erasing the subject key {ref} from {self.path}")
            keys = [key for key in erased if key is not None]
            found = find_in_files(sqlite_files(self.path), [*keys, ref.encode()])
            if found:
                raise ErasureIncomplete(
                    f"the erased subject key {ref} is still in {', '.join(map(str, found))}"
                )

    def forget(self) -> None:
        """Drop the keys cached in memory: another process sharing the file erased one."""
        with self._lock:
            self._cache.clear()
            self._absent.clear()

    def close(self) -> None:
        """Stop the keeper, make every key durable and close the database."""
        with self._lock:
            self._closing = True
            self._due.notify_all()
            keeper = self._keeper
        if keeper is not None:
            keeper.join()
        self.sync()
        with self._write_lock:
            self._db.close()
            self._wdb.close()

    def _commit(self, durable: bool) -> bool:
        """Commit the pending keys in one transaction; with an fsync if ``durable`` or fresh.

        Returns whether a key of another process was there first for one of them."""
        with self._write_lock:
            with self._lock:
                items = list(self._pending.items())
                numbered = [self._numbers[r] for r, _ in items if r in self._numbers]
                remembered = self._remembered.copy()
            if not items and not remembered:
                return False
            durable = durable or len(numbered) < len(items)
            self._wdb.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            try:
                with _transaction(self._wdb):
                    inserted = self._wdb.executemany(
                        "INSERT OR IGNORE INTO subject_key (ref, key) VALUES (?, ?)", items
                    ).rowcount
                    self._wdb.executemany(
                        "DELETE FROM reserved_key WHERE number = ?", [(n,) for n in numbered]
                    )
                    # only for owners with a key: one another process erased since the batch
                    # was sealed gets no entry back (its lines are sealed again, under a new key).
                    # A batch has few owners: they are looked up once, not once per record
                    owners = set(remembered.values())
                    kept = set(_stored(self._wdb, list(owners))) if owners else owners
                    rows: Iterable[tuple[str, str]] = (
                        remembered.items()
                        if len(kept) == len(owners)
                        else [(r, o) for r, o in remembered.items() if o in kept]
                    )
                    self._wdb.executemany(
                        "INSERT OR IGNORE INTO record_ref (ref, owner) VALUES (?, ?)", rows
                    )
                    # a row was there already for some ref: read back which key is stored
                    stored = (
                        {} if inserted == len(items) else _stored(self._wdb, [r for r, _ in items])
                    )
            finally:
                self._wdb.execute("PRAGMA synchronous=FULL")
            replaced = False
            with self._lock:
                if self._remembered == remembered:
                    # the usual case, nothing remembered meanwhile: compared in C, not by a loop
                    self._remembered.clear()
                else:
                    for record, owner in remembered.items():
                        if self._remembered.get(record) == owner:
                            del self._remembered[record]
                for ref, key in items:
                    winner = stored.get(ref, key)
                    if winner != key:
                        # another process committed its key first: every writer uses that one
                        replaced = True
                        self._numbers.pop(ref, None)
                    if self._pending.get(ref) is key:
                        del self._pending[ref]
                        self._cache[ref] = winner
                    self._fresh.discard(ref)
                if durable:
                    for ref in [r for r in self._numbers if r not in self._pending]:
                        del self._numbers[ref]
            return replaced

    def _reserved(self) -> collections.deque[tuple[int, bytes]]:
        """The reserve (loaded on first use); call with ``_lock`` held."""
        if self._reserve is None:
            rows = self._db.execute("SELECT number, key FROM reserved_key ORDER BY number")
            self._reserve = collections.deque((int(n), bytes(k)) for n, k in rows)
            self._last_number = max(self._last_number, self._reserve[-1][0] if self._reserve else 0)
        return self._reserve

    def _wake(self) -> None:
        """Have the keeper commit the new assignment soon; call with ``_lock`` held."""
        if self._work or self._closing:
            return
        self._work = True
        if self._keeper is None:
            self._keeper = threading.Thread(
                target=self._keep, name="kzai-subject-keys", daemon=True
            )
            self._keeper.start()
        else:
            self._due.notify()

    def _keep(self) -> None:
        """The keeper thread: commit assignments, refill the reserve before it runs low."""
        while True:
            with self._lock:
                while not self._work and not self._closing:
                    self._due.wait()
                if self._closing:
                    return
                # let the assignments of the next few batches join this commit
                self._due.wait(_KEEP_INTERVAL_S)
                if self._closing:
                    return
                self._work = False
                low = len(self._reserved()) < _RESERVE_LOW
            try:
                self._commit(durable=False)
                if low:
                    # its fsync makes the assignments just committed durable too
                    self.reserve(_RESERVE_CHUNK)
            except sqlite3.Error:
                # the records name their keys' numbers meanwhile; the next commit, the
                # writer's own (a fresh key) or close() tries again and reports the error
                with self._lock:
                    self._work = True
                    self._due.wait(1.0)


def _stored(db: sqlite3.Connection, refs: list[str]) -> dict[str, bytes]:
    """The committed keys of ``refs`` (those that have one), as ``db`` sees them."""
    found: dict[str, bytes] = {}
    for start in range(0, len(refs), _PREFETCH_CHUNK):
        chunk = refs[start : start + _PREFETCH_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(f"SELECT ref, key FROM subject_key WHERE ref IN ({marks})", chunk)
        found.update((str(ref), bytes(key)) for ref, key in rows)
    return found


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    db.execute("PRAGMA secure_delete=ON")
    # WAL: a commit appends to one file, and readers never wait for it; assignments of
    # reserved keys are committed without an fsync (synchronous=NORMAL, still atomic),
    # everything else with one. erase() checkpoints and truncates the WAL so that an erased
    # key does not outlive its deletion there.
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
