"""Write files so that a crash never leaves a half-written file under the final name, and claim
new outputs so that nothing already on disk is ever replaced.

Every writer of the project goes through here:
- ``write_bytes`` / ``write_text`` / ``write_json``: a file the command owns (meta.json, a run's
  config), replaced atomically: temp file beside it, fsync, rename.
- ``temp_path`` + ``commit``: writers that need a file name (parquet, video, safetensors) write
  the temp name, then commit it over the final one.
- ``new_output`` + ``commit_new``: a file the user named (a movie, a video) that must not exist:
  checked before the work, and claimed at the end with a hard link, which fails if a file of that
  name appeared meanwhile (no check-then-write race).
- ``check_new_dir`` + ``claim_dir``: an output folder (a recording, a session, a dataset, a run):
  absent or empty when the inputs are checked, made (or taken, if the user made it empty) only
  when there is something to write, so a refused command leaves no folder behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def commit(tmp: Path, path: Path) -> None:
    """Make a finished temp file durable (fsync), then rename it over ``path``: the one way every
    writer that needs a file name (parquet, video, safetensors) puts its file in place."""
    fsync_file(tmp)
    os.replace(tmp, path)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def temp_path(path: Path) -> Path:
    """A temp name beside ``path`` for writers that need a file name (parquet, video)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def commit_new(tmp: Path, path: Path) -> None:
    """Put a finished temp file at ``path``, which must not exist: FileExistsError (and the temp file
    removed) if something appeared there meanwhile. Never replaces a file."""
    tmp, path = Path(tmp), Path(path)
    fsync_file(tmp)
    try:
        os.link(tmp, path)  # atomic, and refuses an existing name
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError:  # a file system without hard links: the small window of check-then-rename
        if path.exists():
            tmp.unlink(missing_ok=True)
            raise FileExistsError(path) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def new_output(path: Path) -> bool:
    """Whether ``path`` is free for a new file (nothing there yet)."""
    return not os.path.lexists(path)


def check_new_dir(path: Path) -> bool:
    """Whether ``path`` can hold a new output folder: absent, or an empty directory (one the user made)."""
    path = Path(path)
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def claim_dir(path: Path) -> bool:
    """Make ``path`` the output folder of this command, parents included; False if it is taken (it
    exists with files in it, or is not a directory). An empty directory is taken as given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path)
        return True
    except FileExistsError:
        return check_new_dir(path)
