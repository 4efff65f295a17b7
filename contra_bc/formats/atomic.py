"""Write files so that a crash never leaves a half-written file under the final name."""

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
