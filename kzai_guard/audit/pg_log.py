"""Opening an audit log kept in PostgreSQL: ``AuditLog.open("postgresql://...")``.

The log is the same :class:`~kzai_guard.audit.sequencer.Sequencer` as on disk, over a
:class:`~kzai_guard.audit.pg_storage.PostgresLogStorage`; the subject keys default to a
:class:`~kzai_guard.audit.pg_subject_keys.PostgresSubjectKeys` in the same database, so that
every replica seals with the same keys and an erasure on one reaches all. Witnesses, if given,
are fed by one process of all (:mod:`kzai_guard.audit.pg_witnesses`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from kzai_guard.audit.keys import Keyring, PublicKey, Signer
from kzai_guard.audit.leaf import DEFAULT_FORMAT
from kzai_guard.audit.pg_storage import PostgresLogStorage, redact_url
from kzai_guard.audit.sequencer import Durability, Sequencer
from kzai_guard.audit.shredding import SubjectKeys
from kzai_guard.audit.witnesses import Witnesses
from kzai_guard.errors import ConfigurationError

if TYPE_CHECKING:
    from kzai_guard.audit.pg_subject_keys import PostgresSubjectKeys

__all__ = ["open_postgres_log"]

Log = TypeVar("Log", bound=Sequencer)


def open_postgres_log(
    cls: type[Log],
    url: str,
    *,
    signer: Signer | None,
    durability: Durability,
    checkpoint_every: int,
    checkpoint_interval_ms: int,
    subject_keys: SubjectKeys | None,
    seal_personal_fields: bool,
    origin: str | None,
    queue_limit: int,
    put_timeout: float,
    previous_keys: Iterable[PublicKey] = (),
    witnesses: Witnesses | None = None,
    log_format: int = DEFAULT_FORMAT,
) -> Log:
    """Open (creating its tables if needed) the log in the database at ``url``.

    A signer is required: the database is no place for a demo key that anyone who can write
    it could use. Raises :class:`~kzai_guard.errors.AuditLogError` if the database cannot be
    used, or holds what no writer of it can vouch for (:mod:`kzai_guard.audit.pg_adoption`;
    the newest checkpoint must be signed by ``signer`` or one of ``previous_keys``).
    """
    if signer is None:
        raise ConfigurationError(
            "an audit log in PostgreSQL needs a checkpoint key: pass signer= "
            "(audit_signer= to Guard), e.g. Signer.from_file() of a key made with "
            "`kzai-guard keygen`"
        )
    storage = PostgresLogStorage(url, origin=origin, log_format=log_format)
    reopen: Callable[[], SubjectKeys] | None = None
    made: PostgresSubjectKeys | None = None
    try:
        if subject_keys is None and seal_personal_fields:
            from kzai_guard.audit.pg_subject_keys import PostgresSubjectKeys

            def reopen() -> SubjectKeys:
                return PostgresSubjectKeys(url, commit_with_log=True)

            subject_keys = made = PostgresSubjectKeys(url, commit_with_log=True)
        log = cls(
            storage,
            name=redact_url(url),
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
        if witnesses is not None:
            from kzai_guard.audit.pg_witnesses import start_postgres_witnesses

            start_postgres_witnesses(witnesses, url)
        # as on disk: cover what is there with a checkpoint, without starting a thread here
        # (a guard built before a fork starts its writer in the process that writes)
        storage.vouch_with(lambda: log.signer, Keyring(previous_keys), checkpoint_every)
        with storage.sequence() as appending:
            storage.judge(appending)
            log._see(appending)
            log._sign(appending)
            storage.mark_writing(appending)
        newest = log.last_checkpoint
        if witnesses is not None and newest is not None:
            witnesses.submit(newest)
    except BaseException:
        if witnesses is not None:
            witnesses.close()
        storage.close()
        if made is not None:
            with contextlib.suppress(Exception):
                made.close()
        raise
    return log
