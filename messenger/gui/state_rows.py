"""What the message and file rows of a conversation draw alike: the width a row may take,
the states a row shows and whether its frame is solid, and the lines of security states
under a bubble, each an icon plus its words (colour is never the only signal)."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QStyleOptionViewItem

from messenger.gui.resources import state_icon
from messenger.gui.states import (
    StateStyle,
    authenticity_style,
    confidentiality_style,
    sent_styles,
)
from messenger.ua.store import StoredMessage

#: The side of a state icon and the gap between an icon and its words, in pixels.
ICON = 16
GAP = 4


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def bubble_states(
    message: StoredMessage,
    expected_to_sign: bool,
    sent: tuple[bool, bool] | None = None,
) -> tuple[StateStyle, StateStyle] | None:
    """The (confidentiality, authenticity) styles of a message, None without a report
    (or, for a message sent in this session, what was applied to it)."""
    report = message.report
    if not report:
        return sent_styles(*sent) if sent is not None else None
    return (
        confidentiality_style(report.get("confidentiality")),
        authenticity_style(report.get("authenticity"), expected_to_sign=expected_to_sign),
    )


def protected(message: StoredMessage, sent: tuple[bool, bool] | None = None) -> bool:
    """A layer of protection was found (or, for a message sent in this session, applied)."""
    report = message.report or {}
    if not report and sent is not None:
        return any(sent)
    return bool(report.get("layers"))


def view_width(option: QStyleOptionViewItem) -> int:
    """The width a row may take: the view's viewport (the option's rect before layout)."""
    viewport = getattr(option.widget, "viewport", None)
    if viewport is not None:
        return max(200, viewport().width() - 2)
    return max(200, option.rect.width())


def paint_states(
    painter: QPainter, states: Iterable[tuple[QRect, StateStyle]], *, dark: bool
) -> None:
    """Draw each state's icon at the left of its rect and its words beside it."""
    for rect, style in states:
        state_icon(style, dark=dark).paint(painter, QRect(rect.left(), rect.top(), ICON, ICON))
        painter.setPen(QColor(style.colour(dark)))
        painter.drawText(
            rect.adjusted(ICON + GAP, 0, 0, 0),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            style.words,
        )
