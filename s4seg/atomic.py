"""Atomic file writes: a temporary file in the same folder, fsynced, then renamed.

A run killed mid-write leaves the previous file whole (the rename is atomic on POSIX
file systems); a failed write removes its temporary file. A kill (``kill -9``, an
out-of-memory kill, a power cut) cannot remove it, so the temporary file's name
carries the writer's process id and :func:`remove_orphans` deletes those whose
writer is gone.

Write errors name the file: a full disk is ``OSError(ENOSPC)`` with the path and the
free space, even where the writer (``torch.save``) would report only "unexpected
pos"; a read-only folder is a ``PermissionError`` that names the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["remove_orphans", "temporary_name", "write_atomic"]


def temporary_name(path: Path) -> Path:
    """The temporary file that a write of ``path`` uses: ``.<name>.<pid>-<random>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


class _Recording:
    """A file object that keeps the OSError of a failed write (torch.save swallows it)."""

    def __init__(self, f: IO[Any]) -> None:
        self._f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self._f.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _write_error(path: Path, err: OSError) -> OSError:
    """``err`` with a message that names ``path`` and, for a full disk, the free space."""
    code = err.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        free = _free_bytes(path.parent)
        room = f"{free / 2**20:.1f} MiB free" if free is not None else "free space unknown"
        what = "no space left on device" if code == errno.ENOSPC else "disk quota exceeded"
        message = (
            f"{what} while writing {str(path)!r} ({room} on that file system); the previous "
            f"file is intact. Free space or write to another folder"
        )
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        message = (
            f"cannot write {str(path)!r}: the folder {str(path.parent)!r} is not writable "
            f"({os.strerror(code)}); pass a writable run folder"
        )
    else:
        message = f"writing {str(path)!r} failed: {err.strerror or err}"
    new = OSError(code, message)  # OSError(errno, ...) picks the subclass (PermissionError, ...)
    new.filename = str(path)
    return new


def write_atomic(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], None], *, binary: bool
) -> Path:
    """Call ``write(f)`` on a temporary file next to ``path``, then rename it to ``path``.

    The new file keeps the permissions of the one it replaces (a new file gets the
    usual ones, ``0o666`` less the umask).

    Raises:
        OSError: the write failed; the message names ``path`` (and the free space
            when the disk is full). ``path`` itself is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise _write_error(path, err) from err
    recording: _Recording | None = None
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            recording = _Recording(f)
            write(recording)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):  # a new file keeps its own mode
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        cause = recording.error if recording is not None and recording.error else err
        if isinstance(cause, OSError):
            raise _write_error(path, cause) from err
        raise
    return path


_TEMPORARY = re.compile(r"(\d+)-[0-9a-f]+")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_orphans(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of writes of ``path`` whose writer was killed.

    Those are ``.<name>.<pid>-<random>.tmp`` files next to ``path`` whose process no
    longer runs (and ``.<name>.<random>.tmp`` files of older s4seg versions, which
    carried no process id). A write in progress in a live process is left alone.

    Returns:
        The files removed.
    """
    path = Path(path)
    prefix, suffix = f".{path.name}.", ".tmp"
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(suffix)) or not entry.is_file():
            continue
        match = _TEMPORARY.fullmatch(name[len(prefix) : -len(suffix)])
        if match is not None and _alive(int(match.group(1))):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        removed.append(Path(entry.path))
    return removed
