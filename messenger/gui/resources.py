"""Where the window finds its icons and style sheet, and the icons of the report states.

The files live in ``resources/`` at the top of a source checkout, next to the executable
of a PyInstaller build, or under ``<prefix>/share/messenger/resources`` after an install.
When none is found (a stripped install), each state icon is drawn from its symbol, so a
state never loses its icon.
"""

from __future__ import annotations

import os
import site
import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPainterPath, QPixmap

from messenger.gui.states import StateStyle

__all__ = ["app_icon", "resources_dir", "state_icon", "style_sheet"]


@cache
def resources_dir() -> Path | None:
    """The folder holding ``icons/`` and ``style.qss``, or None when none is installed."""
    candidates: list[Path] = []
    if os.environ.get("MESSENGER_RESOURCES"):
        candidates.append(Path(os.environ["MESSENGER_RESOURCES"]))
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        candidates.append(Path(frozen) / "resources")
    candidates.append(Path(__file__).resolve().parents[2] / "resources")
    candidates.append(Path(sys.prefix) / "share" / "messenger" / "resources")
    candidates.append(Path(site.getuserbase()) / "share" / "messenger" / "resources")
    for folder in candidates:
        if (folder / "icons").is_dir():
            return folder
    return None


def style_sheet() -> str:
    folder = resources_dir()
    if folder is None or not (folder / "style.qss").is_file():
        return ""
    return (folder / "style.qss").read_text(encoding="utf-8")


def _drawn_icon(style: StateStyle, dark: bool) -> QIcon:
    pixmap = QPixmap(48, 48)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    path = QPainterPath()
    path.addRoundedRect(QRectF(4, 4, 40, 40), 10, 10)
    painter.fillPath(path, QColor(style.colour(dark)))
    painter.setPen(QColor("#ffffff"))
    font = QFont()
    font.setPixelSize(28)
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(QRectF(4, 4, 40, 40), Qt.AlignmentFlag.AlignCenter, style.symbol)
    painter.end()
    return QIcon(pixmap)


_ICONS: dict[tuple[str, str, bool], QIcon] = {}


def state_icon(style: StateStyle, *, dark: bool = False) -> QIcon:
    """The icon of a state: its SVG file, or one drawn from its symbol and colour."""
    key = (style.icon, style.family, dark)
    icon = _ICONS.get(key)
    if icon is None:
        folder = resources_dir()
        svg = folder / "icons" / f"{style.icon}.svg" if folder else None
        icon = QIcon(str(svg)) if svg is not None and svg.is_file() else _drawn_icon(style, dark)
        if icon.isNull():
            icon = _drawn_icon(style, dark)
        _ICONS[key] = icon
    return icon


def app_icon() -> QIcon:
    folder = resources_dir()
    if folder is not None and (folder / "icons" / "messenger.svg").is_file():
        return QIcon(str(folder / "icons" / "messenger.svg"))
    return QIcon()
