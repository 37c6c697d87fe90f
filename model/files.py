"""Files replaced whole or not at all: written to a temporary file beside the target, fsynced, then renamed
over it, so a reader or a crash never sees half a checkpoint, training state or camera registry."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: str | Path, content: bytes | Callable[[str], object]) -> None:
    """Replace `path` with `content`: bytes, or a function that writes the file at the path it is given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if isinstance(content, bytes | bytearray | memoryview):
            with os.fdopen(fd, "wb") as f:
                f.write(content)
        else:
            os.close(fd)
            content(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def stale_temp_files(path: str | Path) -> Iterator[Path]:
    """Temporary files an `atomic_write` of `path` left behind when its process was killed mid-write."""
    path = Path(path)
    return path.parent.glob(f".{path.name}.*.tmp") if path.parent.is_dir() else iter(())
