"""Atomic writes: a file replaced whole or not at all, and a folder's entries made durable.

:func:`atomic_write` writes beside the target, syncs, then renames over it, so a reader
or a crash sees the old file or the new one, never a mixture. :func:`fsync_directory`
makes a rename itself durable. Checkpoints and saved models both write through here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Syncs ``directory``'s entries (a rename into it) to disk, where the platform allows.

    >>> import tempfile
    >>> fsync_directory(tempfile.mkdtemp())
    """
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Runs ``write(fileobj)`` on a temporary file beside ``path``, then renames it over ``path``.

    The folder is created if missing; on any error the temporary file is removed and
    ``path`` is left as it was.

    >>> import os, tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / 'sub' / 'hello.bin'
    >>> atomic_write(path, lambda f: f.write(b'hi'))
    >>> path.read_bytes(), os.listdir(path.parent)
    (b'hi', ['hello.bin'])
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open with 0o666 lets the umask decide the permissions, as for any new file.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_directory(path.parent)
