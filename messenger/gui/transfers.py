"""File transfers in the conversation: what each one is doing, in words and numbers.

A file sent or received over an MSRP session is a row of the conversation like a message.
Its live state comes from the agent's `TransferProgress` events (both directions); once
it ended, from the store: the sender's row says whether it was delivered, the receiver's
row exists only for a file received whole and checked (the store keeps the ``file:`` URI
of its copy in the downloads folder). A transfer still arriving, or one that was cancelled
or failed on the way in, has no stored row: it is a *live* row the conversation shows
after the stored ones, and it never offers the file.

`TransferBook` keeps the live state; `file_item` turns a row into a `FileItem`, the
single description the delegate paints, the screen reader reads and the actions use;
`file_row_of` adds the security states a row of a conversation shows.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from messenger.gui.conversation_list_model import display_peer
from messenger.gui.state_rows import bubble_states, protected
from messenger.gui.states import StateStyle
from messenger.ua import events as ev
from messenger.ua.files import STOPPED_RECEIVING, referenced_file, write_whole
from messenger.ua.store import StoredMessage

__all__ = [
    "FileItem",
    "FileRow",
    "Transfer",
    "TransferBook",
    "describe_file_row",
    "file_item",
    "file_row_of",
    "file_words",
    "human_size",
    "item_states",
    "save_copy",
]

#: Rows of transfers being received have negative row ids (never a store row id).
_LIVE_ROWID_BASE = -1
#: States of a transfer that ended without the file getting across.
ENDED_WITHOUT_FILE = ("cancelled", "stopped", "failed", "interrupted")


def human_size(size: int | None) -> str:
    """A size in words: ``512 bytes``, ``3.1 MB``."""
    if size is None:
        return "unknown size"
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


@dataclass
class Transfer:
    """What the events said of one transfer so far."""

    transfer_id: str
    peer: str
    direction: str  # 'in' or 'out'
    filename: str | None
    done: int
    total: int | None
    state: str  # running, complete, aborted, failed
    reason: str
    started: datetime
    stopped_by: str = ""  # '', 'you' or 'peer' (see ev.TransferProgress)
    rowid: int = 0  # for a live incoming row: its negative row id

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


@dataclass(frozen=True)
class FileItem:
    """A file row as the window presents it."""

    direction: str  # 'in' or 'out'
    filename: str
    size: int | None  # bytes of the file (or of the protected message while it moves)
    #: preparing, sending, receiving, checking; delivered, received; cancelled (by this
    #: side, or by the sender for a file arriving), stopped (a file sent that its receiver
    #: cancelled), failed, interrupted (a send the program did not finish)
    state: str
    words: str  # the state in a sentence, with what to do when it did not work
    transfer_id: str | None
    fraction: float | None  # progress 0..1 while it moves; None when not moving
    path: Path | None = None  # the file on disk (sent: the source; received: its copy)
    can_cancel: bool = False
    can_save: bool = False

    @property
    def moving(self) -> bool:
        return self.state in ("preparing", "sending", "receiving", "checking")

    def title(self) -> str:
        return f"File {self.filename} ({human_size(self.size)})"

    def progress_text(self) -> str:
        if self.fraction is None:
            return ""
        return f"{round(self.fraction * 100)} %"

    def describe(self) -> str:
        """What a screen reader says for the row (the states are added by the model)."""
        who = "You sent" if self.direction == "out" else "Received"
        if self.moving:
            who = "Sending" if self.direction == "out" else "Receiving"
        elif self.state in ENDED_WITHOUT_FILE:
            who = "Transfer of" if self.direction == "out" else "Incoming transfer of"
        parts = [f"{who} {self.title()}", self.words]
        if self.moving and self.fraction is not None:
            parts.append(f"progress {self.progress_text()}")
        return ". ".join(p for p in parts if p)


class TransferBook(QObject):
    """The live state of the transfers of one agent, fed with its progress events."""

    #: A transfer moved on (its id); the conversation repaints its row.
    changed = Signal(str)
    #: The set of transfers being received (or ended on the way in) changed.
    liveChanged = Signal()

    def __init__(self, downloads: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.downloads = Path(downloads).resolve() if downloads is not None else None
        self._transfers: dict[str, Transfer] = {}
        self._next_rowid = _LIVE_ROWID_BASE

    def get(self, transfer_id: str | None) -> Transfer | None:
        return self._transfers.get(transfer_id or "")

    def update(self, event: ev.TransferProgress) -> Transfer:
        transfer = self._transfers.get(event.transfer_id)
        new = transfer is None
        if transfer is None:
            transfer = Transfer(
                event.transfer_id,
                event.peer,
                event.direction,
                event.filename,
                event.done,
                event.total,
                event.state,
                event.reason,
                event.at,
                stopped_by=event.stopped_by,
            )
            self._transfers[event.transfer_id] = transfer
            if event.direction == "in":
                transfer.rowid = self._next_rowid
                self._next_rowid -= 1
        else:
            transfer.done = event.done
            transfer.total = event.total if event.total is not None else transfer.total
            transfer.state = event.state
            transfer.reason = event.reason
            transfer.stopped_by = event.stopped_by
            transfer.filename = event.filename or transfer.filename
        if transfer.direction == "in" and event.state == "complete":
            # its stored row takes over; nothing is left to show live
            del self._transfers[transfer.transfer_id]
        if transfer.direction == "in" and (new or event.state != "running"):
            self.liveChanged.emit()
        self.changed.emit(transfer.transfer_id)
        return transfer

    def dismiss(self, transfer_id: str) -> bool:
        """Forget an incoming transfer that ended without a file (its row goes away)."""
        transfer = self._transfers.get(transfer_id)
        if transfer is None or transfer.running:
            return False
        del self._transfers[transfer_id]
        if transfer.direction == "in":
            self.liveChanged.emit()
        return True

    def live_rows(self, peer: str | None) -> list[StoredMessage]:
        """Rows for the incoming transfers of ``peer`` that have no stored row: still
        arriving, or ended without a file (cancelled by the sender, failed)."""
        rows = []
        for t in self._transfers.values():
            if t.direction != "in" or t.peer != peer:
                continue  # (a complete incoming transfer left the book: its stored row shows)
            rows.append(
                StoredMessage(
                    rowid=t.rowid,
                    direction="in",
                    peer=t.peer,
                    local="",
                    message_id=t.transfer_id,
                    content_type=None,
                    content=None,
                    report=None,
                    delivery="received",
                    status=None,
                    reason=t.reason,
                    at=t.started,
                    transport="msrp",
                    read_at=t.started,
                )
            )
        return rows

    def received_path(self, message: StoredMessage) -> Path | None:
        """The copy a stored incoming file row names, when it lies in the downloads folder
        (a message that merely looks like a file reference never points elsewhere)."""
        path = _path_of(message)
        if path is None or self.downloads is None:
            return None
        try:
            resolved = path.resolve()
        except OSError:
            return None
        if not resolved.is_relative_to(self.downloads):
            return None
        return resolved


def _path_of(message: StoredMessage) -> Path | None:
    if message.transport != "msrp":
        return None
    return referenced_file(message.content_type, message.content)


def _size(path: Path | None) -> int | None:
    if path is None:
        return None
    try:
        return path.stat().st_size
    except OSError:
        return None


def file_words(message: StoredMessage) -> str | None:
    """A file row in one line, as a person would say it: ``File: holiday.jpg (3.2 MB)``
    (without the size when the file is no longer on disk); None for an ordinary
    message."""
    path = _path_of(message)
    if path is None or not path.name:
        return None
    size = _size(path)
    return f"File: {path.name}" if size is None else f"File: {path.name} ({human_size(size)})"


def file_item(message: StoredMessage, book: TransferBook | None) -> FileItem | None:
    """The file a row stands for, or None for an ordinary message."""
    if book is None:
        return None
    if message.rowid < 0:  # a live incoming transfer
        transfer = book.get(message.message_id)
        return _incoming_live(transfer) if transfer is not None else None
    if message.direction == "out":
        path = _path_of(message)
        if path is None:
            return None
        return _outgoing(message, path, book.get(message.message_id))
    path = book.received_path(message)
    if path is None:
        return None
    return _incoming_stored(message, path)


def _incoming_live(t: Transfer) -> FileItem:
    name = t.filename or "(name inside the protection)"

    def item(state: str, words: str, fraction: float | None = None, **can: bool) -> FileItem:
        return FileItem("in", name, t.total, state, words, t.transfer_id, fraction, **can)

    if t.state == "running":
        if t.total and t.done >= t.total:
            return item(
                "checking",
                "All of it arrived; decrypting and checking the signature before it is shown.",
                1.0,
            )
        return item(
            "receiving",
            f"Receiving: {human_size(t.done)} of {human_size(t.total)}. Nothing is shown or "
            "kept until all of it arrived and was checked. Cancel stops it if you do not "
            "want it.",
            t.fraction,
            can_cancel=True,
        )
    if t.state == "aborted" and t.stopped_by == "you":
        return item(
            "cancelled",
            f"You cancelled it after {human_size(t.done)}: nothing of it was kept, and "
            f"{display_peer(t.peer)} was told to send no more of it. Ask them to send it "
            "again if you want it after all.",
        )
    if t.state == "aborted":
        return item(
            "cancelled",
            f"{'Cancelled by the sender' if 'aborted' in t.reason else 'Interrupted'} after "
            f"{human_size(t.done)}: {_without_kept(t.reason)}. "
            f"Nothing of it was kept; ask {display_peer(t.peer)} to send it again if you "
            "need it.",
        )
    return item(
        "failed",
        f"Not received: {_without_kept(t.reason)}. Nothing of it was kept; ask "
        f"{display_peer(t.peer)} to send it again.",
    )


def _without_kept(reason: str) -> str:
    """The agent's reason without its own "nothing of it was kept" (said once here)."""
    cut = reason.lower().find("; nothing of it was kept")
    return (reason[:cut] if cut >= 0 else reason).strip() or "no reason given"


def _outgoing(message: StoredMessage, path: Path, t: Transfer | None) -> FileItem:
    size = _size(path)

    def item(state: str, words: str, fraction: float | None = None, **can: bool) -> FileItem:
        return FileItem(
            "out", path.name, size, state, words, message.message_id, fraction, path, **can
        )

    if t is not None and t.running:
        if t.done == 0:
            return item(
                "preparing",
                "Preparing: protecting the whole file before it is sent in chunks.",
                0.0,
                can_cancel=True,
            )
        return item(
            "sending",
            f"Sending: {human_size(t.done)} of {human_size(t.total)} taken by "
            f"{display_peer(message.peer)}.",
            t.fraction,
            can_cancel=True,
        )
    if t is not None and t.state == "aborted":
        return item(
            "cancelled",
            "Cancelled: the transfer was stopped and the receiver told to discard what it "
            "got (nothing of it is presented as received). Send the file again to retry.",
        )
    reason = message.reason or (t.reason if t is not None else "")
    # live: the event says who stopped it; from the store (after a restart): its reason
    stopped = (t is not None and t.stopped_by == "peer") or STOPPED_RECEIVING in reason
    if message.delivery not in ("delivered", "displayed") and stopped:
        return item(
            "stopped",
            f"Stopped by {display_peer(message.peer)}: they cancelled it while it arrived "
            "and kept nothing of it. Send it again if they ask for it.",
        )
    if message.delivery in ("delivered", "displayed") or (t is not None and t.state == "complete"):
        return item(
            "delivered",
            f"Delivered whole to {display_peer(message.peer)} (the receiver's own check "
            "decides what it shows).",
        )
    if message.delivery in ("failed", "refused") or (t is not None and t.state == "failed"):
        return item(
            "failed",
            f"Not delivered: {reason or 'no reason given'}. Send the file again once the "
            "problem is solved.",
        )
    return item(
        "interrupted",
        "Not sent: the transfer was interrupted (the program ended before it finished). "
        "Send the file again.",
    )


def _incoming_stored(message: StoredMessage, path: Path) -> FileItem:
    size = _size(path)
    if size is None:
        return FileItem(
            "in",
            path.name,
            None,
            "received",
            f"Received, but its copy {path} is gone from the downloads folder; ask the "
            "sender to send it again.",
            message.message_id,
            None,
            path,
        )
    return FileItem(
        "in",
        path.name,
        size,
        "received",
        "Received whole and checked. Use Save as (Ctrl+S) to keep a copy where you choose.",
        message.message_id,
        None,
        path,
        can_save=True,
    )


def save_copy(source: Path, target: Path) -> int:
    """Write a copy of ``source`` to ``target`` whole or not at all (a temporary file in
    the target's folder, then renamed); returns the bytes written. OSError in words."""
    source, target = Path(source), Path(target)
    with source.open("rb") as src:
        write_whole(
            target, lambda out: shutil.copyfileobj(src, out, 1024 * 1024), prefix=".saving-"
        )
    return target.stat().st_size


def item_states(
    message: StoredMessage, item: FileItem, expected_to_sign: bool, sent: tuple[bool, bool] | None
) -> tuple[StateStyle, StateStyle] | None:
    """The security states a file row shows: the receiver's report once it was received
    whole and checked; what was applied for a file this window sent; none before."""
    if item.direction == "in" and item.state != "received":
        return None
    if item.state in ENDED_WITHOUT_FILE:
        return None  # nothing arrived: no state of it to show
    return bubble_states(message, expected_to_sign, sent)


@dataclass(frozen=True)
class FileRow:
    """A file row of a conversation: the file and the security states it shows."""

    message: StoredMessage
    item: FileItem
    states: tuple[StateStyle, StateStyle] | None
    protected: bool  # a layer of protection was found (or applied, for a file sent)


def file_row_of(model, message: StoredMessage) -> FileRow | None:
    """The file row ``message`` is in a `ConversationModel`, or None when it is an
    ordinary message."""
    item = file_item(message, model.transfers)
    if item is None:
        return None
    sent = model.sent_protection.get(message.message_id or "")
    states = item_states(message, item, model.expected_to_sign, sent)
    return FileRow(message, item, states, states is not None and protected(message, sent))


def describe_file_row(model, message: StoredMessage) -> str | None:
    """What a screen reader says for a file row of a `ConversationModel`, or None when
    the row is an ordinary message."""
    row = file_row_of(model, message)
    if row is None:
        return None
    parts = [row.item.describe()]
    parts.extend(style.accessible for style in row.states or ())
    parts.append(message.at.astimezone().strftime("%H:%M"))
    return ". ".join(parts)
