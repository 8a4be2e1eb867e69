"""The conversation list as a Qt model: contact, trust state, last message, unread count.

The last message reads as a person would say it: its text, or for a file sent or received
over a session ``File: holiday.jpg (3.2 MB)`` (never the ``file:`` URI the store keeps)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from messenger.gui.resources import state_icon
from messenger.gui.states import authenticity_style
from messenger.ua.store import ConversationSummary, MessageStore

__all__ = ["ConversationListModel"]

PeerRole = Qt.ItemDataRole.UserRole + 1
TrustRole = Qt.ItemDataRole.UserRole + 2
UnreadRole = Qt.ItemDataRole.UserRole + 3
LastTextRole = Qt.ItemDataRole.UserRole + 4

_Index = QModelIndex | QPersistentModelIndex


def display_peer(peer: str) -> str:
    """``sip:bob@example.test`` -> ``bob@example.test`` for lists and titles."""
    for scheme in ("sips:", "sip:"):
        if peer.lower().startswith(scheme):
            return peer[len(scheme) :]
    return peer


class ConversationListModel(QAbstractListModel):
    """One row per peer: the store's conversations, then contacts without messages."""

    def __init__(
        self, store: MessageStore, contacts: Iterable[str] = (), parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.contacts = list(dict.fromkeys(contacts))
        self._rows: list[ConversationSummary | str] = []
        self._trust: dict[str, str | None] = {}
        self._last: dict[str, str] = {}
        self.reload()

    def _contact_state(self, summary: ConversationSummary) -> str | None:
        """The authenticity of the newest received message (the last page is enough)."""
        if summary.last_authenticity is not None:
            return summary.last_authenticity
        total = self.store.count(summary.peer)
        recent = self.store.messages(summary.peer, offset=max(0, total - 50), limit=50)
        for message in reversed(recent):
            if message.direction == "in" and message.report:
                return message.report.get("authenticity")
        return None

    def _last_words(self, summary: ConversationSummary) -> str:
        """The last message in words: a file row becomes ``File: name (size)``."""
        text = summary.last_text
        if not text.lstrip().lower().startswith("file:"):
            return text
        # the row holds a file reference only if the store says so (type and transport)
        from messenger.gui.transfers import file_words  # transfers imports this module

        total = self.store.count(summary.peer)
        last = self.store.messages(summary.peer, offset=max(0, total - 1), limit=1)
        words = file_words(last[0]) if last else None
        return words or text

    def reload(self) -> None:
        self.beginResetModel()
        summaries = self.store.conversations()
        seen = {s.peer for s in summaries}
        self._trust = {s.peer: self._contact_state(s) for s in summaries}
        self._last = {s.peer: self._last_words(s) for s in summaries}
        self._rows = [*summaries, *(c for c in self.contacts if c not in seen)]
        self.endResetModel()

    def add_contact(self, peer: str) -> None:
        if peer not in self.contacts:
            self.contacts.append(peer)
        self.reload()

    def peer(self, row: int) -> str:
        item = self._rows[row]
        return item if isinstance(item, str) else item.peer

    def row_of(self, peer: str) -> int | None:
        for row in range(len(self._rows)):
            if self.peer(row) == peer:
                return row
        return None

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        item = self._rows[index.row()]
        if isinstance(item, str):
            peer, last, unread, trust = item, "", 0, None
        else:
            peer, last, unread = item.peer, self._last.get(item.peer, item.last_text), item.unread
            trust = self._trust.get(peer)
        style = authenticity_style(trust) if trust else None
        if role == PeerRole:
            return peer
        if role == TrustRole:
            return trust
        if role == UnreadRole:
            return unread
        if role == LastTextRole:
            return last
        if role == Qt.ItemDataRole.DisplayRole:
            head = display_peer(peer)
            if unread:
                head = f"{head}  ({unread} unread)"
            if style is not None:
                state = style.words
            else:
                state = "No message received yet" if last else "No messages yet"
            first_line = last.splitlines()[0] if last else ""
            if len(first_line) > 60:
                first_line = first_line[:59] + "…"
            return f"{head}\n{state} · {first_line}" if first_line else f"{head}\n{state}"
        if role == Qt.ItemDataRole.DecorationRole and style is not None:
            return state_icon(style)
        if role in (Qt.ItemDataRole.AccessibleTextRole, Qt.ItemDataRole.ToolTipRole):
            words = style.accessible if style else "no messages yet"
            text = f"{display_peer(peer)}: {words}"
            if unread:
                text += f"; {unread} unread"
            if last:
                text += f"; last message: {last[:80]}"
            return text
        return None
