"""Paints a file row of the conversation: a bubble with the file's name and size, a
progress bar while it moves (drawn by the style, no widget), the state in words, and
once it was received whole the security states as icon plus words, like a message."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
)

from messenger.gui.conversation_model import ConversationModel
from messenger.gui.state_rows import GAP, ICON, is_dark, paint_states, view_width
from messenger.gui.states import FAMILY_COLOURS, StateStyle
from messenger.gui.transfers import FileRow, file_row_of

__all__ = ["FileRow", "file_row", "paint_file_row", "size_file_row"]

_PAD = 10
_MARGIN = 6
_BAR = 16
_MIN_WIDTH = 280

#: colour family of a file row's state line (the words carry the meaning)
_STATE_FAMILY = {
    "cancelled": "amber",
    "stopped": "amber",
    "failed": "red",
    "interrupted": "amber",
    "received": "green",
    "delivered": "green",
}


def file_row(index: QModelIndex | QPersistentModelIndex) -> FileRow | None:
    """The file a conversation row stands for, or None for an ordinary message."""
    model = index.model()
    if not isinstance(model, ConversationModel) or not index.isValid():
        return None
    if model.transfers is None:
        return None
    return file_row_of(model, model.message(index.row()))


@dataclass
class _Layout:
    bubble: QRect
    title: QRect
    words: QRect
    bar: QRect | None
    states: list[tuple[QRect, StateStyle]]
    footer: QRect
    height: int


def _fonts(option: QStyleOptionViewItem) -> tuple[QFont, QFont, QFont]:
    body = QFont(option.font)
    title = QFont(body)
    title.setBold(True)
    small = QFont(body)
    small.setPointSizeF(max(7.0, body.pointSizeF() * 0.85))
    return body, title, small


def _footer(row: FileRow) -> str:
    when = row.message.at.astimezone().strftime("%Y-%m-%d %H:%M")
    hints = []
    if row.item.can_cancel:
        hints.append("Cancel: Ctrl+Shift+X")
    if row.item.can_save:
        hints.append("Save as: Ctrl+S")
    return " · ".join([when, *hints])


def _layout(option: QStyleOptionViewItem, row: FileRow) -> _Layout:
    _body, title_font, small = _fonts(option)
    tfm = QFontMetrics(title_font)
    sfm = QFontMetrics(small)
    full = QRect(option.rect)
    full.setWidth(view_width(option))
    max_width = max(_MIN_WIDTH, int(full.width() * 0.72))
    inner_max = max_width - 2 * _PAD
    title = row.item.title()
    widest = max(tfm.horizontalAdvance(title), sfm.horizontalAdvance(_footer(row)))
    if row.states is not None:
        for style in row.states:
            widest = max(widest, ICON + GAP + sfm.horizontalAdvance(style.words))
    inner_w = min(inner_max, max(widest, _MIN_WIDTH - 2 * _PAD))
    title_h = tfm.boundingRect(
        QRect(0, 0, inner_w, 10000), int(Qt.TextFlag.TextWordWrap), title
    ).height()
    words_h = sfm.boundingRect(
        QRect(0, 0, inner_w, 10000), int(Qt.TextFlag.TextWordWrap), row.item.words
    ).height()
    row_h = max(ICON, sfm.height())
    bubble_w = inner_w + 2 * _PAD
    left = full.left() + _MARGIN
    if row.item.direction == "out":
        left = full.right() - _MARGIN - bubble_w
    top = full.top() + _MARGIN
    y = top + _PAD
    title_r = QRect(left + _PAD, y, inner_w, title_h)
    y += title_h + GAP
    bar = None
    if row.item.moving and row.item.fraction is not None:
        bar = QRect(left + _PAD, y, inner_w, _BAR)
        y += _BAR + GAP
    words_r = QRect(left + _PAD, y, inner_w, words_h)
    y += words_h + GAP
    states: list[tuple[QRect, StateStyle]] = []
    for style in row.states or ():
        states.append((QRect(left + _PAD, y, inner_w, row_h), style))
        y += row_h + 2
    footer_r = QRect(left + _PAD, y, inner_w, sfm.height())
    y += sfm.height() + _PAD
    bubble = QRect(left, top, bubble_w, y - top)
    return _Layout(bubble, title_r, words_r, bar, states, footer_r, bubble.height() + 2 * _MARGIN)


def size_file_row(option: QStyleOptionViewItem, row: FileRow) -> QSize:
    return QSize(view_width(option), _layout(option, row).height)


def paint_file_row(painter: QPainter, option: QStyleOptionViewItem, row: FileRow) -> None:
    layout = _layout(option, row)
    palette = option.palette
    dark = is_dark(palette)
    _body, title_font, small = _fonts(option)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
    if row.states is not None and row.protected:
        pen = QPen(QColor(row.states[1].colour(dark)), 2)
    else:
        pen = QPen(palette.color(QPalette.ColorRole.Mid), 1.5)
        pen.setStyle(Qt.PenStyle.DashLine)
    if option.state & (QStyle.StateFlag.State_HasFocus | QStyle.StateFlag.State_Selected):
        pen = QPen(palette.color(QPalette.ColorRole.Highlight), pen.widthF() + 1.5)
    painter.setPen(pen)
    painter.drawRoundedRect(layout.bubble, 8, 8)
    painter.setFont(title_font)
    painter.setPen(palette.color(QPalette.ColorRole.Text))
    painter.drawText(layout.title, int(Qt.TextFlag.TextWordWrap), row.item.title())
    if layout.bar is not None:
        bar = QStyleOptionProgressBar()
        bar.rect = layout.bar
        bar.minimum = 0
        bar.maximum = 1000
        bar.progress = int((row.item.fraction or 0.0) * 1000)
        bar.textVisible = True
        bar.text = row.item.progress_text()
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        bar.palette = palette
        bar.fontMetrics = QFontMetrics(small)
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)
    painter.setFont(small)
    family = _STATE_FAMILY.get(row.item.state)
    if family is not None:
        light, night = FAMILY_COLOURS[family]
        painter.setPen(QColor(night if dark else light))
    else:
        painter.setPen(palette.color(QPalette.ColorRole.Text))
    painter.drawText(layout.words, int(Qt.TextFlag.TextWordWrap), row.item.words)
    paint_states(painter, layout.states, dark=dark)
    painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
    painter.drawText(layout.footer, int(Qt.AlignmentFlag.AlignLeft), _footer(row))
    painter.restore()
