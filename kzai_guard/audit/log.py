"""The signed, tamper-evident audit log on local disk: the production
:class:`~kzai_guard.audit.sink.AuditSink` of one host.

:class:`AuditLog` is the per-process :class:`~kzai_guard.audit.sequencer.Sequencer` over the
directory's :class:`~kzai_guard.audit.file_storage.FileStorage`. Any number of processes of the
host (``uvicorn --workers``, gunicorn workers with or without ``--preload``, an operator
script) open the same directory and write one log: one sequence, one chain, one Merkle tree,
one series of signed checkpoints. Each process batches its own records and appends them under
the directory's file lock; whoever holds the lock signs the checkpoint that is due.

On open, and whenever a writer finds the directory as a crashed writer left it, the files are
repaired: a torn last line is cut off, complete chained lines are adopted, and the tree and head
are rebuilt; a checkpoint is then signed over what was recovered, but only once the files are
shown to hold nothing but what writers wrote (:mod:`kzai_guard.audit.adoption`): a log never
signs over records it did not write.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from kzai_guard.audit.file_storage import FILE_MODE, FileStorage, private_directory
from kzai_guard.audit.keys import Keyring, PublicKey, Signer, write_keypair
from kzai_guard.audit.leaf import DEFAULT_FORMAT
from kzai_guard.audit.pg_log import open_postgres_log
from kzai_guard.audit.pg_storage import is_postgres_url
from kzai_guard.audit.reader import DEFAULT_SUBJECT_KEYS
from kzai_guard.audit.retention import DEFAULT_RETENTION_DAYS
from kzai_guard.audit.sequencer import Durability, Sequencer
from kzai_guard.audit.shredding import SubjectKeys
from kzai_guard.audit.subject_keys import SqliteSubjectKeys
from kzai_guard.audit.witnesses import Witnesses
from kzai_guard.errors import AuditLogError, ConfigurationError

__all__ = ["AuditLog", "Durability"]

DEMO_KEY_DIR = "keys"
DEMO_KEY_NAME = "kzai-guard-demo"


class AuditLog(Sequencer):
    """An append-only, hash-chained, Merkle-tree, checkpoint-signed audit log on local disk.

    Open one with :meth:`open`; every process of the host may open the same directory.

    >>> log = AuditLog.open("/var/lib/app/audit")  # doctest: +SKIP
    >>> log.write(record).result()  # doctest: +SKIP
    >>> log.close()  # doctest: +SKIP
    """

    directory: Path
    """The log directory."""
    _storage: FileStorage

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        signer: Signer | None = None,
        durability: Durability = "sync",
        checkpoint_every: int = 10_000,
        checkpoint_interval_ms: int = 1_000,
        subject_keys: SubjectKeys | None = None,
        seal_personal_fields: bool = True,
        origin: str | None = None,
        queue_limit: int = 8_192,
        put_timeout: float = 5.0,
        segment_max_bytes: int = 64 * 1024 * 1024,
        segment_max_age_s: float = 86_400.0,
        retention_days: float | None = DEFAULT_RETENTION_DAYS,
        witnesses: Witnesses | None = None,
        previous_keys: Iterable[PublicKey] = (),
        log_format: int = DEFAULT_FORMAT,
    ) -> AuditLog:
        """Open (creating if needed) the log in ``directory``, repairing a crashed tail.

        ``directory`` may be a ``postgresql://`` URL: the log then lives in that database
        (:mod:`kzai_guard.audit.pg_storage`), shared by every host, with its subject keys
        there too; ``signer`` is then required, and the segment and retention settings do not
        apply.

        ``durability="sync"`` (the default) resolves each write's future once the record is
        fsynced, in group commits; ``"async"`` returns at once and, on a crash, loses the
        records still queued (up to ``queue_limit``, 8,192 by default: about a tenth of a
        second of the writer's work, and what bounds the memory a backlog takes, about 10 MiB;
        and the last 5 ms the writer lingers to build a batch) and those the operating system
        had not yet written to disk.

        ``signer`` signs checkpoints; without one, a demo key is made on first open in
        ``directory/keys`` (convenient, but anyone who can write the directory can then re-sign
        it: configure a real key in production). ``subject_keys`` holds the per-subject keys of
        the sealed personal fields (default: ``directory/subject-keys.sqlite3``, shared by every
        process of the host; a store passed here must be shared by them too, or erasures in one
        process do not reach the others); ``seal_personal_fields=False`` writes them in clear.
        Segments rotate at ``segment_max_bytes`` or ``segment_max_age_s``; sealed segments
        older than ``retention_days`` (default 183) are pruned at rotation (``None`` keeps
        everything); the anchor of a pruning is signed with ``signer``. ``witnesses``
        (:class:`~kzai_guard.audit.witnesses.Witnesses`, not yet started) are started on the
        directory and get every checkpoint this process signs, the newest one at open included;
        their cosignatures go to ``cosigned.checkpoints`` (for a log in PostgreSQL: one
        process of all sends, the cosignatures go to a table, see
        :mod:`kzai_guard.audit.pg_witnesses`).

        Before it signs anything the log checks that the directory holds only what writers
        wrote (:mod:`kzai_guard.audit.adoption`): the newest checkpoint must be signed by
        ``signer`` or one of ``previous_keys`` (the public keys used before a key change) and
        match the records, and records after it are adopted only as a crash leaves them.
        A new log is made in ``log_format`` (:mod:`kzai_guard.audit.leaf`; default 2, whose
        tree commits to the lines' commitments so it can be published as tlog-tiles); an
        existing log keeps the format it was made in.

        Raises :class:`~kzai_guard.errors.AuditLogError` if the directory cannot be used or
        holds anything else (``kzai-guard repair`` shows what).
        """
        if retention_days is not None and retention_days < DEFAULT_RETENTION_DAYS:
            raise ConfigurationError(
                f"retention_days={retention_days} is below the legal minimum of six months; "
                f"use at least {DEFAULT_RETENTION_DAYS} or None"
            )
        if durability not in ("sync", "async"):
            raise ConfigurationError(f"durability must be 'sync' or 'async', not {durability!r}")
        if is_postgres_url(directory):
            return open_postgres_log(
                cls,
                str(directory),
                signer=signer,
                durability=durability,
                checkpoint_every=checkpoint_every,
                checkpoint_interval_ms=checkpoint_interval_ms,
                subject_keys=subject_keys,
                seal_personal_fields=seal_personal_fields,
                origin=origin,
                queue_limit=queue_limit,
                put_timeout=put_timeout,
                previous_keys=previous_keys,
                witnesses=witnesses,
                log_format=log_format,
            )
        storage = FileStorage.open(
            directory,
            origin=origin,
            segment_max_bytes=segment_max_bytes,
            segment_max_age_s=segment_max_age_s,
            retention_days=retention_days,
            log_format=log_format,
        )
        path = storage.directory
        reopen: Callable[[], SubjectKeys] | None = None
        try:
            if signer is None:
                signer = _demo_signer(path)
            if subject_keys is None and seal_personal_fields:
                keys_path = path / DEFAULT_SUBJECT_KEYS

                def reopen() -> SubjectKeys:
                    # fresh keys are committed durably under the log's lock, before the lines
                    # sealed under them: correct whichever process of the host seals
                    return SqliteSubjectKeys(keys_path, reserve_keys=False)

                subject_keys = reopen()
            log = cls(
                storage,
                name=str(path),
                signer=signer,
                durability=durability,
                checkpoint_every=checkpoint_every,
                checkpoint_interval_ms=checkpoint_interval_ms,
                subject_keys=subject_keys if seal_personal_fields else None,
                reopen_keys=reopen,
                queue_limit=queue_limit,
                put_timeout=put_timeout,
                witnesses=witnesses,
            )
            log.directory = path
            storage.vouch_with(lambda: log.signer, Keyring(previous_keys), checkpoint_every)
            if witnesses is not None:
                witnesses.start(path)
            with storage.sequence() as appending:
                storage.judge()
                log._see(appending)
                log._sign(appending)
                storage.mark_writing()
            newest = log.last_checkpoint
            if witnesses is not None and newest is not None:
                witnesses.submit(newest)
        except BaseException as exc:
            if witnesses is not None:
                witnesses.close()
            storage.close()
            if reopen is not None and isinstance(subject_keys, SqliteSubjectKeys):
                with contextlib.suppress(Exception):
                    subject_keys.close()
            if isinstance(exc, OSError):
                raise AuditLogError(f"cannot open audit log {path}: {exc}") from exc
            raise
        return log

    def __enter__(self) -> AuditLog:
        return self


def _demo_signer(directory: Path) -> Signer:
    """The demo key in ``directory/keys``, made on first use."""
    key_dir = directory / DEMO_KEY_DIR
    keys = sorted(key_dir.glob("*.key")) if key_dir.is_dir() else []
    if keys:
        return Signer.from_file(keys[-1])
    private_directory(key_dir)
    _, public, signer = write_keypair(key_dir, DEMO_KEY_NAME)
    os.chmod(public, FILE_MODE)
    return signer
