"""Writing files so that nothing is ever half-written under its final name.

Every file hwr writes (checkpoints, metrics.json, reports, tables, caches, exports) goes
through `atomic_write`: a temporary file in the same folder, flushed and fsync'ed, then
`os.replace`d onto the final name, so a full disk, a killed process or a read-only folder
leaves the previous file (or none) and never a truncated one. A failure is one HwrError
naming the path and what was being written. The temporary file is in the target's own
folder because a rename across filesystems is a copy, which is not atomic.

`Folder` is a folder written this way; `hwr.runs.folder.RunFolder` adds ownership and a
manifest of what the run wrote.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from hwr.errors import HwrError

TMP_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """`dir/.name.<pid>.tmp`: hidden, in the target's folder, unique to this process."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def write_failure(path: Path, what: str, error: OSError) -> HwrError:
    """One line: which file, what it was, why, and what to do."""
    reason = error.strerror or str(error)
    fix = {
        errno.ENOSPC: "free some space",
        errno.EDQUOT: "free some space (quota)",
        errno.EFBIG: "the file system refuses files this large",
        errno.EROFS: "the folder is on a read-only file system; choose another",
        errno.EACCES: "the folder is not writable; choose another",
    }.get(error.errno or 0, "check the folder")
    return HwrError(f"cannot write {path} ({what}): {reason}; {fix}")


def _discard(tmp: Path) -> None:
    """Remove a temporary file if it is there (its folder may not even exist)."""
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """fsync the folder, so the rename itself survives a power cut (not on every system)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path, what: str = "a file", mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing; on success it replaces `path`.

    An OSError (disk full, quota, read-only) becomes one HwrError naming `path` and `what`;
    the temporary file is removed and `path` keeps its previous content.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise write_failure(path, what, e) from e
    except BaseException:
        _discard(tmp)
        raise
    _sync_folder(path.parent)


def write_text(path: str | Path, text: str, what: str = "a file") -> Path:
    with atomic_write(path, what, "w") as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes, what: str = "a file") -> Path:
    with atomic_write(path, what) as f:
        f.write(data)
    return Path(path)


class Folder:
    """A folder whose files are written atomically: what a report, a table or an export
    writes into. `RunFolder` (hwr.runs.folder) also records each file in its manifest."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def written(self, path: Path) -> None:
        """Called with each file once it is in place (a RunFolder records it)."""

    def write_text(self, name: str, text: str, what: str = "a file") -> Path:
        path = write_text(self.path / name, text, what)
        self.written(path)
        return path

    def write_bytes(self, name: str, data: bytes, what: str = "a file") -> Path:
        path = write_bytes(self.path / name, data, what)
        self.written(path)
        return path

    def sub(self, name: str) -> Folder:
        """A folder inside this one, whose files count as this folder's."""
        return _SubFolder(self, name)


class _SubFolder(Folder):
    def __init__(self, parent: Folder, name: str) -> None:
        super().__init__(parent.path / name)
        self.parent = parent

    def written(self, path: Path) -> None:
        self.parent.written(path)
