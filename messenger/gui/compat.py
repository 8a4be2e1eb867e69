"""Work-arounds for defects of the Qt binding that the window would otherwise hit.

PySide6 6.12.0 on Python 3.11 returns ``None`` from every C++ method without a result
(``QPainter.setPen``, ``QFont.setStrikeOut``, ...) without taking a reference to it.
Each call then leaves ``None`` with one reference fewer, and after a few thousand calls
(a few seconds of painting) the interpreter aborts with "Fatal Python error:
none_dealloc". Python 3.12 made ``None`` immortal, which hides the defect there; on older
interpreters the same is done here: ``None`` gets a reference count that no number of
such calls can use up. It is applied only when a probe shows the defect.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["binding_drops_none_references", "keep_none_alive"]

_RESERVE = 1 << 60
_applied = False


def binding_drops_none_references(calls: int = 64) -> bool:
    """True when calling a void Qt method loses a reference to ``None``."""
    from PySide6.QtGui import QColor

    colour = QColor(0, 0, 0)
    before = sys.getrefcount(None)
    for _ in range(calls):
        colour.setAlpha(255)
    return sys.getrefcount(None) < before - calls // 2


def keep_none_alive() -> bool:
    """Make ``None`` effectively immortal when the binding needs it; True if applied."""
    global _applied
    if _applied or sys.version_info >= (3, 12):
        return _applied
    if binding_drops_none_references():
        # ob_refcnt is the first field of the object in a release build; check that the
        # word read there is the reference count before changing it
        cell = ctypes.c_ssize_t.from_address(id(None))
        if abs(cell.value - (sys.getrefcount(None) - 1)) < 1000:
            cell.value += _RESERVE
            _applied = True
    return _applied
