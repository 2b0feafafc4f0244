"""Atomic writes: a file or a folder replaced whole or not at all, and renames made durable.

:func:`atomic_write` writes beside the target, syncs, then renames over it, so a reader
or a crash sees the old file or the new one, never a mixture. :func:`write_directory`
does the same for a folder of files (a saved model), deleting nothing it did not write.
:func:`fsync_directory` makes a rename itself durable. Checkpoints and saved models both
write through here; no other module syncs or renames files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
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


def set_aside_copies(directory: Path) -> list:
    """The copies of ``directory`` that an interrupted :func:`write_directory` left beside it, oldest name first.

    >>> import tempfile
    >>> from pathlib import Path
    >>> set_aside_copies(Path(tempfile.mkdtemp()) / 'model')
    []
    """
    directory = Path(directory)
    return sorted(directory.parent.glob(f".{directory.name}.*.old"))


def _remove_owned(folder: Path, owned) -> None:
    """Delete the entries named in ``owned`` and then ``folder`` itself, if nothing else is in it.

    Anything else (a file someone put there meanwhile) stays, and so does the folder.
    """
    for name in owned:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def swap_directory(temp: Path, directory: Path, owned) -> None:
    """Rename the finished folder ``temp`` to ``directory``, which may exist already.

    An existing ``directory`` is renamed aside first (``.<name>.<random>.old``) and put
    back if the second rename fails; once the new folder is in place, only the old
    entries named in ``owned`` are deleted: nothing this process did not write is lost.
    """
    if not directory.exists():
        os.rename(temp, directory)
        return
    aside = directory.parent / f".{directory.name}.{secrets.token_hex(6)}.old"
    os.rename(directory, aside)
    try:
        os.rename(temp, directory)
    except BaseException:
        os.rename(aside, directory)
        raise
    _remove_owned(aside, owned)


def write_directory(directory: Path, fill, owned) -> Path:
    """Write a folder whole: ``fill(folder)`` fills a temporary sibling, which then replaces ``directory``.

    A reader (or a crash) sees the old folder or the new one, never a mixture. ``owned``
    names every entry ``fill`` writes; the caller must make sure the old ``directory``
    holds nothing else (it is checked again here, and anything else is never deleted).
    On any error the temporary folder is removed and ``directory`` is left as it was.

    >>> import os, tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / 'box'
    >>> def fill(folder):
    ...     atomic_write(folder / 'a.txt', lambda f: f.write(b'new'))
    >>> _ = write_directory(target, fill, ['a.txt'])
    >>> _ = write_directory(target, fill, ['a.txt'])  # replaces the first one whole
    >>> os.listdir(target), sorted(os.listdir(target.parent))
    (['a.txt'], ['box'])
    """
    directory = Path(directory)
    owned = list(owned)
    if directory.exists():
        foreign = (sorted(p.name for p in directory.iterdir() if p.name not in owned) if directory.is_dir()
                   else [f"{directory.name} is a file"])
        if foreign:
            raise FileExistsError(f"{directory} holds entries this write does not own ({', '.join(foreign)}); "
                                  "refusing to replace it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    temp = directory.parent / f".{directory.name}.{secrets.token_hex(6)}.tmp"
    temp.mkdir()
    try:
        fill(temp)
        fsync_directory(temp)
        swap_directory(temp, directory, owned)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)  # the temporary folder is this write's own
        raise
    fsync_directory(directory.parent)
    return directory
