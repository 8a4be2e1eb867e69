"""Files the user keeps (received files, copies saved elsewhere): written whole or not at
all, so that a crash or a full disk never leaves half a file under the name the user sees."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


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
