"""Paints message bubbles; no widget per message.

A bubble holds the protected content inside a frame whose line is solid when a layer of
protection was found and dashed when none was. Under the text, the confidentiality and
authenticity states each get their icon and words (never colour alone), then the time and,
for messages you sent, the delivery state. Content that came beside the protected part
(stored with the message, see `StoredMessage.outside`) is drawn below the bubble, outside
the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from messenger.gui.conversation_model import ConversationModel, message_text
from messenger.gui.state_rows import (
    GAP,
    ICON,
    bubble_states,
    is_dark,
    paint_states,
    protected,
    view_width,
)
from messenger.gui.states import StateStyle, authenticity_style, delivery_words
from messenger.gui.transfer_delegate import file_row, paint_file_row, size_file_row
from messenger.ua.store import StoredMessage

__all__ = ["MessageDelegate", "bubble_states", "is_dark", "outside_parts", "outside_text"]

_PAD = 10  # inside the bubble
_MARGIN = 6  # around the bubble


#: The line above the content drawn outside the frame.
OUTSIDE_TITLE = (
    "Outside the protected part (no signature vouches for it; it may have been added or "
    "changed on the way):"
)


def outside_parts(message: StoredMessage) -> list[str]:
    """What a person reads for each unprotected part that came with the message: its
    text, or its type and size."""
    return [part.describe() for part in message.outside]


def outside_text(message: StoredMessage) -> str:
    """The whole text drawn outside the frame ('' when nothing came beside it)."""
    parts = outside_parts(message)
    return "\n".join([OUTSIDE_TITLE, *parts]) if parts else ""


@dataclass
class _Layout:
    bubble: QRect
    text: QRect
    marker: QRect | None
    states: list[tuple[QRect, StateStyle]]
    footer: QRect
    outside: QRect | None
    height: int


class MessageDelegate(QStyledItemDelegate):
    """Bubbles with icon-and-words states; heights computed from the text."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._heights: dict[tuple, int] = {}

    # -- geometry --------------------------------------------------------------------------

    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont]:
        body = QFont(option.font)
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, body.pointSizeF() * 0.85))
        return body, small

    def _layout(
        self,
        option: QStyleOptionViewItem,
        message: StoredMessage,
        expected: bool,
        sent: tuple[bool, bool] | None = None,
    ) -> _Layout:
        body, small = self._fonts(option)
        fm = QFontMetrics(body)
        sfm = QFontMetrics(small)
        full = QRect(option.rect)
        full.setWidth(view_width(option))
        max_width = max(160, int(full.width() * 0.72))
        inner_max = max_width - 2 * _PAD
        text = message_text(message)
        text_rect = fm.boundingRect(
            QRect(0, 0, inner_max, 100000), int(Qt.TextFlag.TextWordWrap), text
        )
        states = bubble_states(message, expected, sent)
        report = message.report or {}
        marker_h = sfm.height() if report.get("authenticity") == "bad-signature" else 0
        state_rows: list[tuple[int, StateStyle]] = []
        widest = text_rect.width()
        if states is not None:
            for style in states:
                w = ICON + GAP + sfm.horizontalAdvance(style.words)
                widest = max(widest, w)
                state_rows.append((w, style))
        footer = self._footer_text(message)
        widest = max(widest, sfm.horizontalAdvance(footer), 60)
        if marker_h:
            widest = max(widest, sfm.horizontalAdvance(_ALTERED))
        inner_w = min(inner_max, widest)
        row_h = max(ICON, sfm.height())
        height = _PAD + marker_h + text_rect.height() + _PAD
        height += len(state_rows) * (row_h + 2) + sfm.height() + _PAD
        bubble_w = inner_w + 2 * _PAD
        left = full.left() + _MARGIN
        if message.direction == "out":
            left = full.right() - _MARGIN - bubble_w
        top = full.top() + _MARGIN
        bubble = QRect(left, top, bubble_w, height)
        y = top + _PAD
        marker = None
        if marker_h:
            marker = QRect(left + _PAD, y, inner_w, marker_h)
            y += marker_h
        text_r = QRect(left + _PAD, y, inner_w, text_rect.height())
        y += text_rect.height() + _PAD // 2
        rows: list[tuple[QRect, StateStyle]] = []
        for _w, style in state_rows:
            rows.append((QRect(left + _PAD, y, inner_w, row_h), style))
            y += row_h + 2
        footer_r = QRect(left + _PAD, y, inner_w, sfm.height())
        total = height + 2 * _MARGIN
        outside = None
        extra = outside_text(message)
        if extra:
            need = sfm.boundingRect(
                QRect(0, 0, max_width, 100000), int(Qt.TextFlag.TextWordWrap), extra
            )
            outside = QRect(left, top + height + GAP, max_width, need.height())
            total += outside.height() + GAP
        return _Layout(bubble, text_r, marker, rows, footer_r, outside, total)

    @staticmethod
    def _footer_text(message: StoredMessage) -> str:
        when = message.at.astimezone().strftime("%Y-%m-%d %H:%M")
        if message.direction == "out":
            state = delivery_words(message.delivery)
            if message.delivery in ("failed", "refused") and message.reason:
                state = f"{state}: {message.reason}"
            return f"{when} · {state}"
        return when

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        file = file_row(index)
        if file is not None:
            return size_file_row(option, file)
        found = _row(index)
        if found is None:
            return super().sizeHint(option, index)
        message, expected, sent = found
        width = view_width(option)
        key = (message.rowid, width, message.delivery, sent)
        height = self._heights.get(key)
        if height is None:
            height = self._layout(option, message, expected, sent).height
            if len(self._heights) > 5000:
                self._heights.clear()
            self._heights[key] = height
        return QSize(width, height)

    # -- painting --------------------------------------------------------------------------

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        file = file_row(index)
        if file is not None:
            paint_file_row(painter, option, file)
            return
        found = _row(index)
        if found is None:
            super().paint(painter, option, index)
            return
        message, expected, sent = found
        layout = self._layout(option, message, expected, sent)
        palette = option.palette
        dark = is_dark(palette)
        body, small = self._fonts(option)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        states = bubble_states(message, expected, sent)
        # background
        base = palette.color(QPalette.ColorRole.Base)
        fill = palette.color(QPalette.ColorRole.AlternateBase)
        if message.direction == "out":
            fill = palette.color(QPalette.ColorRole.Highlight)
            fill.setAlpha(40)
            fill = _blend(base, fill)
        painter.setBrush(fill)
        # frame: solid when protected, dashed when nothing protected the message
        colour = QColor(states[1].colour(dark)) if states else palette.color(QPalette.ColorRole.Mid)
        pen = QPen(colour, 2 if protected(message, sent) else 1.5)
        if not protected(message, sent):
            pen.setStyle(Qt.PenStyle.DashLine)
            pen.setColor(palette.color(QPalette.ColorRole.Mid))
        if option.state & QStyle.StateFlag.State_HasFocus or (
            option.state & QStyle.StateFlag.State_Selected
        ):
            pen.setWidthF(pen.widthF() + 1.5)
            pen.setColor(palette.color(QPalette.ColorRole.Highlight))
            pen.setStyle(Qt.PenStyle.SolidLine)
        painter.setPen(pen)
        painter.drawRoundedRect(layout.bubble, 8, 8)
        text_colour = palette.color(QPalette.ColorRole.Text)
        if layout.marker is not None:
            painter.setFont(small)
            painter.setPen(QColor(authenticity_style("bad-signature").colour(dark)))
            painter.drawText(layout.marker, int(Qt.AlignmentFlag.AlignLeft), _ALTERED)
        painter.setFont(body)
        painter.setPen(text_colour)
        if message.report and message.report.get("authenticity") == "bad-signature":
            struck = QFont(body)
            struck.setStrikeOut(True)
            painter.setFont(struck)
        painter.drawText(layout.text, int(Qt.TextFlag.TextWordWrap), message_text(message))
        painter.setFont(small)
        paint_states(painter, layout.states, dark=dark)
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(layout.footer, int(Qt.AlignmentFlag.AlignLeft), self._footer_text(message))
        if layout.outside is not None:
            painter.setPen(palette.color(QPalette.ColorRole.Text))
            painter.drawText(
                layout.outside,
                int(Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap),
                outside_text(message),
            )
        painter.restore()


def _row(
    index: QModelIndex | QPersistentModelIndex,
) -> tuple[StoredMessage, bool, tuple[bool, bool] | None] | None:
    """The message of a row with what the delegate needs, read straight from the model
    (no round trip of Python objects through QVariant on every paint)."""
    model = index.model()
    if not isinstance(model, ConversationModel) or not index.isValid():
        return None
    message = model.message(index.row())
    return message, model.expected_to_sign, model.sent_protection.get(message.message_id or "")


_ALTERED = "Content altered: it does not match its signature"


def _blend(a: QColor, b: QColor) -> QColor:
    alpha = b.alphaF()
    return QColor(
        int(a.red() * (1 - alpha) + b.red() * alpha),
        int(a.green() * (1 - alpha) + b.green() * alpha),
        int(a.blue() * (1 - alpha) + b.blue() * alpha),
    )
