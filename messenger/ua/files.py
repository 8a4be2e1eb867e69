"""Files the user sends and keeps: how a stored file row points at its file, and files
(received files, copies saved elsewhere) written whole or not at all, so that a crash or a
full disk never leaves half a file under the name the user sees. Light on purpose: the
window imports it at start-up."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

#: The words a transfer ends with when its receiver stopped it part-way.
STOPPED_RECEIVING = "stopped receiving it"

FILE_REFERENCE_TYPE = "text/uri-list"


def file_reference(path: Path) -> bytes:
    """The stored content of a file row: its ``file:`` URI on one line."""
    return (Path(path).resolve().as_uri() + "\r\n").encode("utf-8")


def referenced_file(content_type: str | None, content: bytes | None) -> Path | None:
    """The file a stored file row points at (the reverse of `file_reference`): the path of
    its one ``file:`` URI, or None when the content is not such a reference."""
    if content is None:
        return None
    if (content_type or "").split(";")[0].strip().lower() != FILE_REFERENCE_TYPE:
        return None
    lines = [
        line.strip()
        for line in content.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    if len(lines) != 1:
        return None
    parts = urlsplit(lines[0])
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parts.path))


def write_whole(target: Path, fill: Callable[[BinaryIO], object], *, prefix: str) -> Path:
    """Write ``target`` through ``fill``: into a temporary file (named ``prefix``...) in the
    same folder, synced to disk, then renamed over ``target``. On any failure the temporary
    file is removed and the error raised; ``target`` is then untouched."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
