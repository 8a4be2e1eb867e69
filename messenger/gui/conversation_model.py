"""The messages of one conversation as a Qt model, paged from the store.

A conversation may hold 100,000 messages or more: the model never loads them all. It
opens on the newest page and loads older pages when the view scrolls to the top
(`fetch_older`); new messages are appended from the store as they arrive
(`refresh_tail`). Each row's data is the `StoredMessage` with its security report and
the unprotected parts that came beside the protected one.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from messenger.gui.states import authenticity_style, confidentiality_style, delivery_words
from messenger.gui.transfers import TransferBook, describe_file_row
from messenger.ua.store import MessageStore, StoredMessage

__all__ = ["ConversationModel", "describe_message"]

MessageRole = Qt.ItemDataRole.UserRole + 1
ExpectedSignerRole = Qt.ItemDataRole.UserRole + 2
SentProtectionRole = Qt.ItemDataRole.UserRole + 3

_Index = QModelIndex | QPersistentModelIndex


def describe_message(message: StoredMessage, *, expected_to_sign: bool = False) -> str:
    """One sentence a screen reader reads for a bubble: who, when, what, and its states."""
    who = "You" if message.direction == "out" else message.peer
    when = message.at.astimezone().strftime("%H:%M")
    parts = [f"{who}, {when}: {message_text(message)}"]
    report = message.report or {}
    if report:
        parts.append(confidentiality_style(report.get("confidentiality")).accessible)
        parts.append(
            authenticity_style(
                report.get("authenticity"), expected_to_sign=expected_to_sign
            ).accessible
        )
    if message.direction == "out":
        parts.append(delivery_words(message.delivery))
    if message.outside:
        count = len(message.outside)
        shown = "; ".join(part.describe() for part in message.outside)
        parts.append(
            f"Outside the protected part, {count} unprotected "
            f"{'part' if count == 1 else 'parts'} came with it: {shown}"
        )
    return ". ".join(p for p in parts if p)


def message_text(message: StoredMessage) -> str:
    """The text of a message as shown; words instead of content that cannot be shown."""
    report = message.report or {}
    if report.get("confidentiality") == "tampered":
        return "(The encrypted message was altered in transit; nothing of it is shown.)"
    if report.get("confidentiality") == "undecipherable":
        return "(Encrypted to a key you do not hold; it cannot be read here.)"
    if message.content is None:
        return "(no content)"
    ctype = (message.content_type or "text/plain").lower()
    if ctype.startswith("text/") or ctype.startswith("message/cpim"):
        return message.text
    return f"({message.content_type}, {len(message.content)} bytes)"


class ConversationModel(QAbstractListModel):
    """Rows are the loaded messages of one peer, oldest first."""

    PAGE = 200

    def __init__(self, store: MessageStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.peer: str | None = None
        self._rows: list[StoredMessage] = []
        self._first = 0  # store offset of self._rows[0]
        self._rowids: set[int] = set()
        self.expected_to_sign = False
        #: what this session's sends applied: message id -> (signed, encrypted)
        self.sent_protection: dict[str, tuple[bool, bool]] = {}
        #: file transfers, when the window has them
        self.transfers: TransferBook | None = None
        #: rows after the stored ones: transfers still arriving (or ended without a file)
        self._live: list[StoredMessage] = []

    # -- loading ---------------------------------------------------------------------------

    def set_peer(self, peer: str | None) -> None:
        """Show the conversation with `peer`: its newest page."""
        self.beginResetModel()
        self.peer = peer
        self._rows = []
        self._live = self.transfers.live_rows(peer) if self.transfers is not None else []
        self._rowids = set()
        self._first = 0
        if peer is not None:
            total = self.store.count(peer)
            self._first = max(0, total - self.PAGE)
            self._rows = self.store.messages(peer, offset=self._first, limit=self.PAGE)
            self._rowids = {m.rowid for m in self._rows}
            self.expected_to_sign = self.store.certificate(peer) is not None
        self.endResetModel()

    def total(self) -> int:
        """Messages in the conversation (loaded or not)."""
        return self._first + len(self._rows)

    def can_fetch_older(self) -> bool:
        return self.peer is not None and self._first > 0

    def fetch_older(self) -> int:
        """Load the page before the first loaded row; returns how many rows were added."""
        if not self.can_fetch_older():
            return 0
        assert self.peer is not None
        n = min(self.PAGE, self._first)
        rows = self.store.messages(self.peer, offset=self._first - n, limit=n)
        rows = [m for m in rows if m.rowid not in self._rowids]
        self._first -= n
        if not rows:
            return 0
        self.beginInsertRows(QModelIndex(), 0, len(rows) - 1)
        self._rows[:0] = rows
        self._rowids.update(m.rowid for m in rows)
        self.endInsertRows()
        return len(rows)

    def refresh_tail(self) -> int:
        """Append messages stored since the last look; returns how many were added."""
        if self.peer is None:
            return 0
        total = self.store.count(self.peer)
        known = self.total()
        if total <= known:
            return 0
        rows = self.store.messages(self.peer, offset=known, limit=total - known)
        rows = [m for m in rows if m.rowid not in self._rowids]
        if not rows:
            return 0
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(rows) - 1)
        self._rows.extend(rows)
        self._rowids.update(m.rowid for m in rows)
        self.endInsertRows()
        if not self.expected_to_sign:
            self.expected_to_sign = self.store.certificate(self.peer) is not None
        return len(rows)

    def refresh_message(self, message_id: str) -> bool:
        """Re-read a loaded message (its delivery state moved on)."""
        for row in range(len(self._rows) - 1, -1, -1):
            if self._rows[row].message_id == message_id:
                fresh = self.store.by_rowid(self._rows[row].rowid)
                if fresh is None:
                    return False
                self._rows[row] = fresh
                index = self.index(row)
                self.dataChanged.emit(index, index)
                return True
        return False

    # -- Qt model --------------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows) + len(self._live)

    def message(self, row: int) -> StoredMessage:
        stored = len(self._rows)
        return self._rows[row] if row < stored else self._live[row - stored]

    def refresh_live(self) -> None:
        """Show the transfers being received from this peer after the stored rows."""
        rows = self.transfers.live_rows(self.peer) if self.transfers is not None else []
        start = len(self._rows)
        if self._live:
            self.beginRemoveRows(QModelIndex(), start, start + len(self._live) - 1)
            self._live = []
            self.endRemoveRows()
        if rows:
            self.beginInsertRows(QModelIndex(), start, start + len(rows) - 1)
            self._live = rows
            self.endInsertRows()

    def refresh_transfer(self, message_id: str) -> None:
        """Repaint the row of a transfer that moved on."""
        for row in range(self.rowCount() - 1, -1, -1):
            if self.message(row).message_id == message_id:
                index = self.index(row)
                self.dataChanged.emit(index, index)
                return

    def row_of(self, rowid: int) -> int | None:
        for row in range(len(self._rows) - 1, -1, -1):
            if self._rows[row].rowid == rowid:
                return row
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < self.rowCount():
            return None
        message = self.message(index.row())
        if role == MessageRole:
            return message
        if role == ExpectedSignerRole:
            return self.expected_to_sign
        if role == SentProtectionRole:
            return self.sent_protection.get(message.message_id or "")
        if role == Qt.ItemDataRole.DisplayRole:
            return message_text(message)
        if role in (Qt.ItemDataRole.AccessibleTextRole, Qt.ItemDataRole.ToolTipRole):
            if self.transfers is not None:
                spoken = describe_file_row(self, message)
                if spoken is not None:
                    return spoken
            return describe_message(message, expected_to_sign=self.expected_to_sign)
        return None
