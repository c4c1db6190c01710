"""Files that hold keys, raw identifiers or sealed data: readable by their owner only.

Whatever the process's umask, such a file is made mode 0600 and a directory made for it 0700.
A directory that already exists is left as it is (it may be the working directory); a file that
already exists is narrowed to 0600.

SQLite makes a database's ``-wal``, ``-shm`` and ``-journal`` files with the mode of the
database file itself, so :func:`private_sqlite` creates the database file 0600 before SQLite
opens it, and narrows any of those files that an earlier run left wider.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["FILE_MODE", "DIRECTORY_MODE", "private_directory", "private_file", "private_sqlite"]

FILE_MODE = 0o600
"""The mode of a private file."""
DIRECTORY_MODE = 0o700
"""The mode of a directory made for private files."""
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
"""The suffixes of the files SQLite keeps beside a database."""


def private_directory(path: str | Path) -> Path:
    """Make ``path`` (and missing parents) mode 0700; an existing directory is left alone."""
    directory = Path(path)
    missing = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    for made in missing:
        # mkdir's mode is masked by the umask; chmod is not
        with contextlib.suppress(FileNotFoundError):
            os.chmod(made, DIRECTORY_MODE)
    return directory


def private_file(path: str | Path) -> Path:
    """Create ``path`` empty if absent, and make it mode 0600 either way."""
    target = Path(path)
    private_directory(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return target


def private_sqlite(path: str | Path) -> Path:
    """Prepare a SQLite database file so that it and its side files are mode 0600."""
    target = private_file(path)
    for suffix in SQLITE_SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{target}{suffix}", FILE_MODE)
    return target
