"""Atomic writes: a file replaced whole or not at all, renames made durable, leftovers cleaned.

:func:`atomic_write` writes a temporary file beside the target (``.<name>.<12 hex>.tmp``),
syncs it, then renames it over the target, so a reader or a crash sees the old file or
the new one, never a mixture. A writer holds an advisory lock on its temporary file
while it writes, so the next write to the same target can tell a dead writer's leftover
(removed) from a live writer's file (kept): after a successful write none of a crashed
writer's temporary files remain. Writing through a symbolic link replaces the file
the link points at and keeps the link. Checkpoints and saved models both write through
here; no other module syncs or renames files.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

try:  # POSIX only; without it every leftover counts as a dead writer's
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

_TOKEN_HEX = 6  # bytes: 12 hex digits in temporary names


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


def through_links(path) -> Path:
    """``path`` with a symbolic link at its end followed, so a write replaces the link's target.

    >>> import os, tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / 'real.bin').write_bytes(b'x')
    >>> os.symlink(folder / 'real.bin', folder / 'link.bin')
    >>> through_links(folder / 'link.bin').name
    'real.bin'
    """
    path = Path(os.fspath(path))
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def temporary_pattern(name: str):
    """The regex matching the temporary files that writes of the file ``name`` make.

    >>> bool(temporary_pattern('model.json').match('.model.json.0123456789ab.tmp'))
    True
    """
    return re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{{2 * _TOKEN_HEX}}}\.tmp")


def is_temporary(name: str) -> bool:
    """Whether a folder entry is named like one of :func:`atomic_write`'s temporary files.

    >>> is_temporary('.weights.ckpt.0123456789ab.tmp'), is_temporary('notes.txt')
    (True, False)
    """
    return re.fullmatch(rf"\..+\.[0-9a-f]{{{2 * _TOKEN_HEX}}}\.tmp", name) is not None


def _try_lock(fd) -> bool:
    """Take the writer's lock on ``fd`` without waiting; False when a live writer holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _is_abandoned(path: Path) -> bool:
    """Whether the temporary file ``path`` belongs to no live writer (its lock is free)."""
    if not path.is_file() or path.is_symlink():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return _try_lock(fd)
    finally:
        os.close(fd)  # closing releases the probe's lock


def remove_leftovers(folder: Path, names=None) -> list:
    """Delete the temporary files in ``folder`` that crashed writers left; returns their names.

    Only files named as :func:`atomic_write` names them (for the targets in ``names``, or
    any target when None) and not locked by a live writer are deleted.

    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / '.a.bin.0123456789ab.tmp').write_bytes(b'half')
    >>> remove_leftovers(folder), sorted(p.name for p in folder.iterdir())
    (['.a.bin.0123456789ab.tmp'], [])
    """
    folder = Path(folder)
    patterns = None if names is None else [temporary_pattern(n) for n in names]
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in sorted(folder.iterdir()):
            wanted = (is_temporary(entry.name) if patterns is None
                      else any(p.fullmatch(entry.name) for p in patterns))
            if wanted and _is_abandoned(entry):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry.name)
    return removed


def atomic_write(path: Path, write) -> Path:
    """Runs ``write(fileobj)`` on a temporary file beside ``path``, then renames it over ``path``.

    The folder is created if missing; on any error the temporary file is removed and
    ``path`` is left as it was. A symbolic link at ``path`` is followed (its target is
    replaced, the link stays). After the rename, temporary files that crashed writes of
    the same ``path`` left are deleted. Returns the path written (the link's target).

    >>> import os, tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / 'sub' / 'hello.bin'
    >>> _ = atomic_write(path, lambda f: f.write(b'hi'))
    >>> path.read_bytes(), os.listdir(path.parent)
    (b'hi', ['hello.bin'])
    """
    path = through_links(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{secrets.token_hex(_TOKEN_HEX)}.tmp"
    # os.open with 0o666 lets the umask decide the permissions, as for any new file.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        try:
            _try_lock(fd)  # a fresh file: no one else can hold its lock
            # A second descriptor for the file object; ``fd`` keeps the lock until the rename is done.
            with os.fdopen(os.dup(fd), "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            if os.name != "nt":
                os.replace(temp, path)
        finally:
            os.close(fd)
        if os.name == "nt":  # pragma: no cover - Windows cannot rename an open file
            os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_directory(path.parent)
    remove_leftovers(path.parent, [path.name])
    return path
