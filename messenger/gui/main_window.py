"""The messenger window: conversations, the conversation view, composer, trace panel."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from messenger.gui.agent_bridge import AgentBridge
from messenger.gui.certificate_viewer import CertificateViewer
from messenger.gui.composer import Composer
from messenger.gui.contact_header import ContactHeader, KeyChangeBanner, VerifyDialog
from messenger.gui.conversation_list_model import ConversationListModel, display_peer
from messenger.gui.conversation_model import ConversationModel
from messenger.gui.message_delegate import MessageDelegate
from messenger.gui.resources import app_icon, state_icon
from messenger.gui.security_dialog import SecurityDialog
from messenger.gui.states import StateStyle, authenticity_style, confidentiality_style
from messenger.gui.trace_panel import TracePanel
from messenger.gui.transfers import FileItem, TransferBook, file_item, save_copy
from messenger.ua import events as ev
from messenger.ua.identities import certificate_sha256
from messenger.ua.store import StoredMessage

__all__ = ["ConversationView", "MainWindow", "NoticeBar"]

_WARN_STATES = frozenset(
    {
        "unverified-new",
        "key-changed",
        "sender-mismatch",
        "expired",
        "not-yet-valid",
        "revoked",
        "bad-signature",
        "weak-algorithm",
        "unsigned-from-signer",
    }
)
_NOTICE_STYLE = {
    "error": StateStyle("error", "auth-bad-signature", "Error", "Error", "red", "✗"),
    "warning": StateStyle("warning", "auth-key-changed", "Warning", "Warning", "amber", "!"),
    "info": StateStyle("info", "conf-encrypted", "Note", "Note", "neutral", "i"),
}


class NoticeBar(QFrame):
    """Errors and warnings in words, with what to do; stays until dismissed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QHBoxLayout(self)
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("&Dismiss")
        close.setAccessibleName("Dismiss the notice")
        close.clicked.connect(self.hide)
        layout.addWidget(self.icon)
        layout.addWidget(self.text, 1)
        layout.addWidget(close)
        self.level = "info"
        self.hide()

    def show_notice(self, level: str, text: str) -> None:
        style = _NOTICE_STYLE.get(level, _NOTICE_STYLE["info"])
        self.level = level
        self.icon.setPixmap(state_icon(style).pixmap(24, 24))
        self.icon.setAccessibleName(style.words)
        self.text.setText(f"{style.words}: {text}")
        self.setAccessibleName(f"{style.words}: {text}")
        self.show()


class ConversationView(QListView):
    """A virtual list of bubbles; loads older pages when scrolled to the top."""

    securityRequested = Signal(object)  # StoredMessage
    cancelRequested = Signal(object)  # StoredMessage of a file being sent or arriving
    saveRequested = Signal(object)  # StoredMessage of a received file
    dismissRequested = Signal(object)  # StoredMessage of a transfer that ended without a file

    def __init__(self, model: ConversationModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("conversationView")
        self.setModel(model)
        self.setItemDelegate(MessageDelegate(self))
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformItemSizes(False)
        self.setWordWrap(True)
        self.setAccessibleName("Messages")
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.activated.connect(self._activated)
        self._opening = False
        self.verticalScrollBar().valueChanged.connect(self._scrolled)

    def conversation(self) -> ConversationModel:
        model = self.model()
        assert isinstance(model, ConversationModel)
        return model

    def open_peer(self, peer: str | None) -> None:
        """Show a conversation from its newest message (no older page is loaded on the way)."""
        self._opening = True
        try:
            self.conversation().set_peer(peer)
            self.doItemsLayout()
            self.scrollToBottom()
        finally:
            self._opening = False

    def _scrolled(self, value: int) -> None:
        if self._opening:
            return
        bar = self.verticalScrollBar()
        model = self.conversation()
        if value == bar.minimum() and model.can_fetch_older():
            before = bar.maximum()
            if model.fetch_older():
                self.doItemsLayout()
                bar.setValue(bar.maximum() - before)

    def _activated(self, index: QModelIndex) -> None:
        message = self.conversation().message(index.row())
        if message.rowid >= 0:  # a transfer still arriving has no report yet
            self.securityRequested.emit(message)

    def current_message(self) -> StoredMessage | None:
        index = self.currentIndex()
        if not index.isValid():
            return None
        return self.conversation().message(index.row())

    def _menu(self, pos: QPoint) -> None:
        index = self.indexAt(pos)
        if not index.isValid():
            return
        model = self.conversation()
        message = model.message(index.row())
        menu = QMenu(self)
        item = file_item(message, model.transfers)
        if item is not None and item.can_cancel:
            menu.addAction("&Cancel the transfer", lambda: self.cancelRequested.emit(message))
        if item is not None and item.can_save:
            menu.addAction("&Save as…", lambda: self.saveRequested.emit(message))
        if item is not None and message.rowid < 0 and not item.moving:
            menu.addAction("&Remove from the view", lambda: self.dismissRequested.emit(message))
        if message.rowid >= 0:
            menu.addAction("Security &details…", lambda: self.securityRequested.emit(message))
        if menu.isEmpty():
            return
        menu.exec(self.viewport().mapToGlobal(pos))


class MainWindow(QMainWindow):
    """One account's window over its user agent."""

    closed = Signal()
    sendFinished = Signal(object)  # the agent's SendResult
    fileFinished = Signal(object)  # the agent's SendResult of a file
    fileSaved = Signal(str)  # where a received file was saved
    sessionChanged = Signal(str, bool)  # peer, whether a chat session is on

    def __init__(
        self,
        bridge: AgentBridge,
        *,
        contacts: list[str] | None = None,
        simulator: Any = None,
        profile: Path | None = None,
        settings: Any = None,
        title: str | None = None,
    ) -> None:
        super().__init__()
        self.bridge = bridge
        self.agent = bridge.agent
        self.store = self.agent.store
        self.simulator = simulator
        self.profile = profile
        self.account_settings = settings
        self.peer: str | None = None
        self.dialogs: list[QWidget] = []  # open non-modal dialogs (kept alive)
        self.setWindowTitle(title or f"Messenger — {display_peer(str(self.agent.aor))}")
        self.setWindowIcon(app_icon())
        self.setAccessibleName(self.windowTitle())

        # models
        self.list_model = ConversationListModel(self.store, contacts or [], self)
        self.conversation_model = ConversationModel(self.store, self)
        config = getattr(self.agent, "config", None)
        if config is not None and config.downloads is None:
            # received files are written whole into the profile, then saved where the
            # user chooses
            config.downloads = Path(config.profile) / "received"
        self.transfers = TransferBook(config.downloads if config is not None else None, self)
        self.conversation_model.transfers = self.transfers
        #: contacts the user started a chat session with: their messages go over MSRP
        self.chat_peers: set[str] = set()

        # left: conversations
        self.conversation_list = QListView()
        self.conversation_list.setModel(self.list_model)
        self.conversation_list.setAccessibleName("Conversations")
        self.conversation_list.setWordWrap(True)
        self.conversation_list.setSpacing(2)
        self.conversation_list.setMinimumWidth(180)
        self.conversation_list.selectionModel().currentChanged.connect(self._list_changed)

        # right: header, banner, view, notices, composer
        self.header = ContactHeader()
        self.banner = KeyChangeBanner()
        self.view = ConversationView(self.conversation_model)
        self.notice_bar = NoticeBar()
        self.composer = Composer()
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.header)
        rv.addWidget(self.banner)
        rv.addWidget(self.view, 1)
        rv.addWidget(self.notice_bar)
        rv.addWidget(self.composer)
        splitter = QSplitter()
        splitter.addWidget(self.conversation_list)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([220, 600])
        self.setCentralWidget(splitter)

        # trace panel
        self.trace_panel = TracePanel()
        self.trace_dock = QDockWidget("SIP trace", self)
        self.trace_dock.setObjectName("traceDock")
        self.trace_dock.setWidget(self.trace_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.trace_dock)
        self.trace_dock.hide()

        self._build_menus()
        self._status = QLabel()
        self.statusBar().addPermanentWidget(self._status)
        self._update_status()

        # wiring
        self.composer.sendRequested.connect(self.send)
        self.composer.fileRequested.connect(self._choose_file)
        self.view.cancelRequested.connect(lambda m: self.cancel_transfer(m.message_id))
        self.view.saveRequested.connect(self._save_as_clicked)
        self.view.dismissRequested.connect(lambda m: self.transfers.dismiss(m.message_id))
        self.transfers.changed.connect(self.conversation_model.refresh_transfer)
        self.transfers.liveChanged.connect(self.conversation_model.refresh_live)
        bridge.transfer.connect(self.transfers.update)
        self.view.securityRequested.connect(self.open_security)
        self.header.verifyRequested.connect(self.verify_contact)
        self.header.certificateRequested.connect(self.show_contact_certificate)
        self.banner.compareRequested.connect(self.verify_contact)
        self.banner.trustRequested.connect(lambda: self._banner_decide("trust"))
        self.banner.distrustRequested.connect(lambda: self._banner_decide("distrust"))
        bridge.messageStored.connect(lambda event: self._tail(event.peer))
        bridge.messageReceived.connect(self._on_message)
        bridge.messageRefused.connect(self._on_refused)
        bridge.deliveryChanged.connect(self._on_delivery)
        bridge.response.connect(self._on_response)
        bridge.certificateLearned.connect(self._on_certificate)
        bridge.notice.connect(self._on_notice)
        bridge.sipTrace.connect(self.trace_panel.add)
        bridge.registration.connect(self._on_registration)
        bridge.trustDecided.connect(self._on_decided)

        self._restore()

    # -- menus -----------------------------------------------------------------------------

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        act = file.addAction("&Export usability log…")
        act.triggered.connect(self._export_log_clicked)
        if self.profile is not None and self.account_settings is not None:
            file.addAction("&Account settings…").triggered.connect(self._account_settings)
        file.addSeparator()
        quit_action = file.addAction("&Quit")
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)

        conv = bar.addMenu("&Conversation")
        act = conv.addAction("&New conversation…")
        act.setShortcut(QKeySequence.StandardKey.New)
        act.triggered.connect(self._new_conversation)
        act = conv.addAction("Security &details of the selected message")
        act.setShortcut(QKeySequence("Ctrl+I"))
        act.triggered.connect(self._security_of_current)
        act = conv.addAction("&Verify contact…")
        act.setShortcut(QKeySequence("Ctrl+Shift+V"))
        act.triggered.connect(self.verify_contact)
        conv.addAction("Contact &certificate…").triggered.connect(self.show_contact_certificate)
        conv.addSeparator()
        self.send_file_action = conv.addAction("Send &file…")
        self.send_file_action.setShortcut(QKeySequence("Ctrl+Shift+F"))
        self.send_file_action.triggered.connect(self.composer.request_file)
        self.chat_action = conv.addAction("Start chat &session")
        self.chat_action.setShortcut(QKeySequence("Ctrl+Shift+J"))
        self.chat_action.triggered.connect(self._toggle_chat_session)
        self.cancel_action = conv.addAction("Cancel the file &transfer")
        self.cancel_action.setShortcut(QKeySequence("Ctrl+Shift+X"))
        self.cancel_action.triggered.connect(self._cancel_selected)
        self.save_action = conv.addAction("&Save the received file as…")
        self.save_action.setShortcut(QKeySequence.StandardKey.Save)
        self.save_action.triggered.connect(self._save_selected)
        conv.addSeparator()
        act = conv.addAction("Go to &messages")
        act.setShortcut(QKeySequence("Ctrl+M"))
        act.triggered.connect(lambda: self.view.setFocus())
        act = conv.addAction("Go to &composer")
        act.setShortcut(QKeySequence("Ctrl+L"))
        act.triggered.connect(lambda: self.composer.edit.setFocus())
        act = conv.addAction("Go to conversation &list")
        act.setShortcut(QKeySequence("Ctrl+K"))
        act.triggered.connect(lambda: self.conversation_list.setFocus())

        view = bar.addMenu("&View")
        toggle = self.trace_dock.toggleViewAction()
        toggle.setText("SIP &trace panel")
        toggle.setShortcut(QKeySequence("F12"))
        view.addAction(toggle)

        if self.simulator is not None:
            from messenger.ua.simulate import CASES

            sim = bar.addMenu("&Simulate")
            self.simulate_actions: dict[str, QAction] = {}
            for case in CASES:
                label = case.label
                if case.key == "key-changed":
                    label = f"Key change for {display_peer(self.simulator.peer)}"
                act = sim.addAction(label)
                act.triggered.connect(lambda _=False, key=case.key: self.simulate(key))
                self.simulate_actions[case.key] = act

        help_menu = bar.addMenu("&Help")
        help_menu.addAction("&About").triggered.connect(self._about)

    # -- restore and save ------------------------------------------------------------------

    def _restore(self) -> None:
        geometry = self.store.get_setting("window.geometry")
        if geometry:
            self.restoreGeometry(QByteArray(base64.b64decode(geometry)))
        else:
            self.resize(980, 680)
        state = self.store.get_setting("window.state")
        if state:
            self.restoreState(QByteArray(base64.b64decode(state)))
        last = self.store.get_setting("window.last_conversation")
        if last and self.list_model.row_of(last) is None:
            self.list_model.add_contact(last)
        target = last if last else (self.list_model.peer(0) if self.list_model.rowCount() else None)
        if target is not None:
            self.open_conversation(target)
        else:
            self.open_conversation(None)

    def save_state(self) -> None:
        self.store.set_setting(
            "window.geometry", base64.b64encode(bytes(self.saveGeometry().data())).decode()
        )
        self.store.set_setting(
            "window.state", base64.b64encode(bytes(self.saveState().data())).decode()
        )
        if self.peer is not None:
            self.store.set_setting("window.last_conversation", self.peer)

    def closeEvent(self, event: QCloseEvent) -> None:
        try:
            self.save_state()
        except Exception:  # the store may already be closed on shutdown
            pass
        self.bridge.detach()
        for dialog in list(self.dialogs):
            dialog.close()
        super().closeEvent(event)
        self.closed.emit()

    # -- conversations ---------------------------------------------------------------------

    def _list_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            peer = self.list_model.peer(current.row())
            if peer != self.peer:
                self.open_conversation(peer)

    def open_conversation(self, peer: str | None) -> None:
        self.peer = peer
        self.view.open_peer(peer)
        if peer is not None:
            row = self.list_model.row_of(peer)
            if row is not None:
                index = self.list_model.index(row)
                if self.conversation_list.currentIndex() != index:
                    self.conversation_list.setCurrentIndex(index)
            self.store.set_setting("window.last_conversation", peer)
        self._refresh_contact()
        self._mark_displayed()

    def _new_conversation(self) -> None:
        text, ok = QInputDialog.getText(
            self, "New conversation", "SIP address of the contact (sip:name@domain):"
        )
        if not ok or not text.strip():
            return
        peer = text.strip()
        if not peer.lower().startswith(("sip:", "sips:")):
            peer = f"sip:{peer}"
        self.list_model.add_contact(peer)
        self.open_conversation(peer)

    def _last_incoming(self) -> StoredMessage | None:
        model = self.conversation_model
        for row in range(model.rowCount() - 1, -1, -1):
            message = model.message(row)
            if message.direction == "in" and message.report:
                return message
        return None

    def _refresh_contact(self) -> None:
        peer = self.peer
        if peer is None:
            self.header.set_contact(None, None, "", has_certificate=False)
            self.composer.set_peer(None)
            self._show_session_state()
            self.banner.hide()
            return
        certificate = self.agent.peer_certificate(peer)
        last = self._last_incoming()
        state = (last.report or {}).get("authenticity") if last else None
        pin = self.agent.trust.pin_for(peer)
        if pin is not None:
            words = f"Key pinned on {pin.at.date().isoformat()}."
        elif certificate is not None:
            words = "Certificate known, not pinned: compare fingerprints with Verify."
        else:
            words = "No certificate known yet."
        self.header.set_contact(peer, state, words, has_certificate=certificate is not None)
        fingerprint = certificate_sha256(certificate) if certificate is not None else None
        self.composer.set_peer(
            peer, fingerprint, smime_refused=self.store.capability(peer, "smime") is False
        )
        self._show_session_state()
        self._check_banner()

    def _pending_key_change(self) -> tuple[StoredMessage, str] | None:
        """The newest key-changed message of this conversation still waiting for a decision."""
        model = self.conversation_model
        decided = {
            d.sha256
            for d in self.agent.trust.decisions
            if d.action in ("pin", "distrust", "trust") and d.aor == self.peer
        }
        for row in range(model.rowCount() - 1, -1, -1):
            message = model.message(row)
            report = message.report or {}
            if message.direction != "in" or report.get("authenticity") != "key-changed":
                continue
            sha = (report.get("signer") or {}).get("sha256")
            if sha and sha not in decided:
                return message, sha
            return None
        return None

    def _check_banner(self) -> None:
        pending = self._pending_key_change() if self.peer else None
        if pending is None:
            self.banner.hide()
            return
        message, sha = pending
        was_visible = self.banner.isVisible()
        certificate = self.agent.find_certificate(self.peer, sha)
        self.banner.show_for(
            self.peer or "", sha, (message.report or {}).get("reason", ""), certificate is not None
        )
        if not was_visible:
            self.bridge.log_event(
                "warning-shown",
                {
                    "warning": "key-changed",
                    "peer": self.peer,
                    "sha256": sha,
                    "message_id": message.message_id,
                },
            )

    def _banner_decide(self, decision: str) -> None:
        pending = self._pending_key_change()
        if pending is None or self.peer is None:
            return
        certificate = self.agent.find_certificate(self.peer, pending[1])
        if certificate is None:
            self.notice_bar.show_notice(
                "error", "The new certificate is not known here, so no decision can be stored."
            )
            return
        self.agent.decide_trust(self.peer, certificate, decision)
        self.bridge.trustDecided.emit(self.peer, decision)

    def _on_decided(self, peer: str, _decision: str) -> None:
        if peer == self.peer:
            self._refresh_contact()

    def _mark_displayed(self) -> None:
        if self.peer is None or not self.isVisible():
            return
        model = self.conversation_model
        ids = [
            m.message_id
            for m in (model.message(r) for r in range(model.rowCount()))
            if m.unread and m.message_id
        ]
        if not ids and not any(
            model.message(r).unread for r in range(max(0, model.rowCount() - 50), model.rowCount())
        ):
            return
        peer = self.peer
        self.bridge.run(self.agent.mark_displayed(peer, ids), on_done=lambda _r: self._read(peer))

    def _read(self, peer: str) -> None:
        self.list_model.reload()
        self._select_current()

    def _select_current(self) -> None:
        if self.peer is None:
            return
        row = self.list_model.row_of(self.peer)
        if row is not None:
            self.conversation_list.selectionModel().blockSignals(True)
            self.conversation_list.setCurrentIndex(self.list_model.index(row))
            self.conversation_list.selectionModel().blockSignals(False)

    # -- sending ---------------------------------------------------------------------------

    def send(self, text: str, sign: bool, encrypt: bool) -> None:
        peer = self.peer
        if peer is None:
            return

        self.bridge.run(
            self.agent.send_text(
                peer, text, sign=sign, encrypt=encrypt, session=peer in self.chat_peers
            ),
            on_done=lambda result: self._sent(peer, result),
        )

    def _tail(self, peer: str) -> None:
        if peer == self.peer and self.conversation_model.refresh_tail():
            self.view.scrollToBottom()
        self.list_model.reload()
        self._select_current()

    def _show_sent(self, peer: str, result: Any) -> None:
        """Redraw a sent message or file with the protection it went out with."""
        self.conversation_model.sent_protection[result.message_id] = (
            result.signed,
            result.encrypted,
        )
        self._tail(peer)
        if peer == self.peer:
            self.conversation_model.refresh_message(result.message_id)

    def _sent(self, peer: str, result: Any) -> None:
        self._show_sent(peer, result)
        if not result.delivered:
            words = result.explanation or f"{result.status} {result.reason_phrase}"
            self.show_notice("error", f"Not delivered to {display_peer(peer)}: {words}")
        elif result.explanation:
            self.show_notice("warning", f"Delivered to {display_peer(peer)}, {result.explanation}")
        self._refresh_contact()
        self.sendFinished.emit(result)

    # -- files and chat sessions -----------------------------------------------------------

    def _choose_file(self, sign: bool, encrypt: bool) -> None:
        if self.peer is None:
            return
        name, _ = QFileDialog.getOpenFileName(
            self, f"Send a file to {display_peer(self.peer)}", str(Path.home())
        )
        if name:
            self.send_file(Path(name), sign=sign, encrypt=encrypt)

    def send_file(
        self, path: Path, *, sign: bool | None = None, encrypt: bool | None = None
    ) -> None:
        """Send a file to the open conversation over a session, protected as the
        composer's mode says unless ``sign``/``encrypt`` are given."""
        peer = self.peer
        if peer is None:
            return
        asked = self.composer.protection()
        if asked is None:
            asked = (True, self.composer.current_mode() == "sign-encrypt")
        sign = asked[0] if sign is None else sign
        encrypt = asked[1] if encrypt is None else encrypt

        self.bridge.run(
            self.agent.send_file(peer, path, sign=sign, encrypt=encrypt),
            on_done=lambda result: self._file_sent(peer, Path(path).name, result),
            on_error=lambda exc: self.show_notice(
                "error", f"{Path(path).name} could not be sent: {exc}"
            ),
        )

    def _file_sent(self, peer: str, name: str, result: Any) -> None:
        self._show_sent(peer, result)
        transfer = self.transfers.get(result.message_id)
        if transfer is not None and transfer.state == "aborted":
            self.statusBar().showMessage(
                f"You cancelled sending {name}; {display_peer(peer)} was told to discard it.",
                8000,
            )
        elif transfer is not None and transfer.stopped_by == "peer":
            self.show_notice(
                "warning", f"{name} did not reach {display_peer(peer)}: {result.explanation}."
            )
        elif not result.delivered:
            words = result.explanation or f"{result.status} {result.reason_phrase}"
            self.show_notice(
                "error",
                f"{name} was not delivered to {display_peer(peer)}: {words}. "
                "Send it again once the problem is solved.",
            )
        elif result.explanation:
            self.show_notice(
                "warning", f"{name} was delivered to {display_peer(peer)}, {result.explanation}"
            )
        self._refresh_contact()
        self.fileFinished.emit(result)

    def cancel_transfer(self, transfer_id: str | None) -> bool:
        """Cancel a file this window is sending (the receiver is told to discard it) or
        one still arriving (discarded here; the sender is told to send no more of it)."""
        if not transfer_id:
            return False
        if self.agent.cancel_transfer(transfer_id):
            self.statusBar().showMessage("Cancelling the transfer…", 4000)
            return True
        self.statusBar().showMessage("That transfer has already ended.", 4000)
        return False

    def _file_rows(self) -> Iterator[tuple[StoredMessage, FileItem]]:
        """The file rows of the open conversation, the selected one first, then newest
        first (one at a time: the first that fits is enough)."""
        model = self.conversation_model
        current = self.view.current_message()
        rows = (model.message(r) for r in range(model.rowCount() - 1, -1, -1))
        for message in chain([current] if current is not None else [], rows):
            item = file_item(message, self.transfers)
            if item is not None:
                yield message, item

    def _cancel_selected(self) -> None:
        for message, item in self._file_rows():
            if item.can_cancel:
                self.cancel_transfer(message.message_id)
                return
        self.statusBar().showMessage(
            "No file is being sent or received in this conversation.", 4000
        )

    def _save_selected(self) -> None:
        for message, item in self._file_rows():
            if item.can_save:
                self._save_as_clicked(message)
                return
        self.statusBar().showMessage("No received file to save in this conversation.", 4000)

    def _save_as_clicked(self, message: StoredMessage) -> None:
        item = file_item(message, self.transfers)
        if item is None or not item.can_save:
            return
        name, _ = QFileDialog.getSaveFileName(
            self, f"Save {item.filename} as", str(Path.home() / item.filename)
        )
        if name:
            self.save_file_as(message, Path(name))

    def save_file_as(self, message: StoredMessage, target: Path) -> bool:
        """Write the received file of a row to ``target``, whole or not at all (off the
        GUI thread); `fileSaved` tells when it is there."""
        item = file_item(message, self.transfers)
        if item is None or not item.can_save or item.path is None:
            self.show_notice(
                "error",
                "This row holds no received file to save: only a file received whole and "
                "checked can be saved.",
            )
            return False
        source, target = item.path, Path(target)
        if source.resolve() == target.resolve():
            self.fileSaved.emit(str(target))
            return True

        def saved(size: int) -> None:
            self.statusBar().showMessage(f"Saved {item.filename} ({size} bytes) to {target}", 8000)
            self.fileSaved.emit(str(target))

        def failed(exc: BaseException) -> None:
            why = getattr(exc, "strerror", None) or str(exc)
            self.show_notice(
                "error",
                f"{item.filename} could not be saved to {target}: {why}. Choose a folder you "
                "can write to, with enough free space.",
            )

        self.bridge.run(self.bridge.in_thread(save_copy, source, target), saved, failed)
        return True

    def _show_session_state(self) -> None:
        on = self.peer is not None and self.peer in self.chat_peers
        self.composer.set_session(on)
        self.chat_action.setText("End the chat &session" if on else "Start chat &session")
        self.chat_action.setEnabled(self.peer is not None)
        self.send_file_action.setEnabled(self.peer is not None)

    def _toggle_chat_session(self) -> None:
        if self.peer is None:
            return
        if self.peer in self.chat_peers:
            self.end_chat_session()
        else:
            self.start_chat_session()

    def start_chat_session(self) -> None:
        """Open an MSRP session with the contact; its messages then go over it."""
        peer = self.peer
        if peer is None:
            return
        self.statusBar().showMessage(f"Starting a chat session with {display_peer(peer)}…")

        def opened(_session: Any) -> None:
            self.chat_peers.add(peer)
            self._show_session_state()
            self.statusBar().showMessage(
                f"Chat session with {display_peer(peer)} is open: messages go over MSRP.", 8000
            )
            self.sessionChanged.emit(peer, True)

        def failed(exc: BaseException) -> None:
            self.show_notice(
                "error",
                f"No chat session with {display_peer(peer)}: {exc}. Messages still go as "
                "SIP MESSAGE requests.",
            )
            self.sessionChanged.emit(peer, False)

        self.bridge.run(self.agent.start_session(peer), opened, failed)

    def end_chat_session(self) -> None:
        peer = self.peer
        if peer is None:
            return
        self.chat_peers.discard(peer)
        self._show_session_state()
        session = self.agent.sessions.session_with(peer)
        if session is not None:
            self.bridge.run(self.agent.sessions.end_session(session))
        self.statusBar().showMessage(f"Chat session with {display_peer(peer)} ended.", 8000)
        self.sessionChanged.emit(peer, False)

    # -- events ----------------------------------------------------------------------------

    def _on_message(self, event: ev.MessageReceived) -> None:
        self.list_model.reload()
        if event.sender == self.peer:
            self._tail(event.sender)
            self._refresh_contact()
            if self.isActiveWindow():
                self._mark_displayed()
        else:
            self._select_current()
        state = (event.report or {}).get("authenticity")
        if state == "unsigned" and self.store.certificate(event.sender) is not None:
            state = "unsigned-from-signer"  # shown loud: this contact signs
        if state in _WARN_STATES or (event.report or {}).get("confidentiality") in (
            "tampered",
            "undecipherable",
            "encrypted-legacy",
        ):
            self.bridge.log_event(
                "warning-shown",
                {
                    "warning": state,
                    "confidentiality": (event.report or {}).get("confidentiality"),
                    "peer": event.sender,
                    "message_id": event.message_id,
                },
            )

    def _on_refused(self, event: ev.MessageRefused) -> None:
        text = f"A message from {display_peer(event.sender) or 'an unknown sender'} was refused"
        text += f" ({event.status}): {event.reason}."
        if event.report:
            conf = confidentiality_style(event.report.get("confidentiality")).words
            auth = authenticity_style(event.report.get("authenticity")).words
            text += f" [{conf}; {auth}]"
        self.show_notice("warning", text)

    def _on_delivery(self, event: ev.DeliveryChanged) -> None:
        if event.peer == self.peer and not self.conversation_model.refresh_message(
            event.message_id
        ):
            self._tail(event.peer)
        self.list_model.reload()
        self._select_current()

    def _on_response(self, event: ev.Response) -> None:
        if event.to == self.peer and event.message_id:
            self.conversation_model.refresh_message(event.message_id)

    def _on_certificate(self, event: ev.CertificateLearned) -> None:
        if event.peer == self.peer:
            self._refresh_contact()

    def _on_notice(self, event: ev.Notice) -> None:
        if event.level in ("warning", "error"):
            self.show_notice(event.level, event.text)
        else:
            self.statusBar().showMessage(event.text, 8000)

    def _on_registration(self, event: ev.Event) -> None:
        if isinstance(event, ev.RegistrationFailed):
            self.show_notice("error", f"Registration with {event.registrar} failed: {event.reason}")
        self._update_status(event)

    def show_notice(self, level: str, text: str) -> None:
        self.notice_bar.show_notice(level, text)
        if level in ("warning", "error"):
            self.bridge.log_event("warning-shown", {"level": level, "text": text})

    def _update_status(self, event: ev.Event | None = None) -> None:
        where = ", ".join(f"{t.upper()} {h}:{p}" for t, h, p in self._addresses())
        state = ""
        if isinstance(event, ev.Registered):
            state = f" · registered with {event.registrar}"
        elif isinstance(event, ev.RegistrationFailed):
            state = " · not registered"
        self._status.setText(f"{self.agent.aor}{' · ' + where if where else ''}{state}")

    def _addresses(self) -> list[tuple[str, str, int]]:
        return [(t, h, p) for t, (h, p) in getattr(self.agent, "addresses", {}).items()]

    # -- dialogs ---------------------------------------------------------------------------

    def _keep(self, dialog: QWidget) -> QWidget:
        self.dialogs.append(dialog)

        def forget(_result: int) -> None:
            if dialog in self.dialogs:
                self.dialogs.remove(dialog)

        dialog.finished.connect(forget)  # type: ignore[attr-defined]
        dialog.open()  # type: ignore[attr-defined]
        return dialog

    def open_security(self, message: StoredMessage) -> SecurityDialog:
        dialog = SecurityDialog(message, bridge=self.bridge, parent=self)
        self._keep(dialog)
        return dialog

    def _security_of_current(self) -> None:
        message = self.view.current_message()
        if message is None and self.conversation_model.rowCount():
            message = self.conversation_model.message(self.conversation_model.rowCount() - 1)
        if message is not None:
            self.open_security(message)

    def _contact_certificate(self):
        if self.peer is None:
            return None
        pending = self._pending_key_change()
        if pending is not None:
            found = self.agent.find_certificate(self.peer, pending[1])
            if found is not None:
                return found
        return self.agent.peer_certificate(self.peer)

    def verify_contact(self) -> VerifyDialog | None:
        certificate = self._contact_certificate()
        if certificate is None or self.peer is None:
            self.show_notice(
                "info",
                "No certificate of this contact is known yet: it is learned from their first "
                "signed message.",
            )
            return None
        dialog = VerifyDialog(
            own_aor=str(self.agent.aor),
            own_certificate=self.agent.identity.certificate,
            peer=self.peer,
            peer_certificate=certificate,
            bridge=self.bridge,
            parent=self,
        )
        self._keep(dialog)
        return dialog

    def show_contact_certificate(self) -> CertificateViewer | None:
        certificate = self._contact_certificate()
        if certificate is None:
            return None
        viewer = CertificateViewer(certificate, peer=self.peer, bridge=self.bridge, parent=self)
        self._keep(viewer)
        return viewer

    def export_usability_log(self, path: Path) -> int:
        """Write the usability-study event log as JSON lines; returns the event count."""
        text = self.store.export_events_jsonl()
        Path(path).write_text(text, encoding="utf-8")
        return text.count("\n")

    def _export_log_clicked(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Export usability log", "usability-log.jsonl", "JSON lines (*.jsonl)"
        )
        if not name:
            return
        try:
            count = self.export_usability_log(Path(name))
        except OSError as exc:
            self.show_notice(
                "error",
                f"The log could not be written to {name}: {exc.strerror}. "
                "Choose a folder you can write to.",
            )
            return
        self.statusBar().showMessage(f"{count} events written to {name}", 8000)

    def _account_settings(self) -> None:
        from messenger.gui.wizard import AccountSettingsDialog

        assert self.profile is not None
        dialog = AccountSettingsDialog(self.profile, self.account_settings, self)
        if dialog.exec():
            self.apply_account_settings(dialog.current)

    def apply_account_settings(self, settings: Any) -> None:
        """Take saved account settings: the MSRP relay applies to the sessions started
        from now on; the rest at the next start."""
        self.account_settings = settings
        self.agent.set_msrp_relay(settings.msrp_relay or None)
        relay = self.agent.config.msrp_relay
        where = f"through the relay {relay}" if relay else "directly (no MSRP relay)"
        self.statusBar().showMessage(
            f"Account settings saved. New chat sessions and file transfers go {where}; "
            "the other settings apply at the next start."
        )

    def _about(self) -> None:
        from messenger import __version__

        QMessageBox.about(
            self,
            "About Messenger",
            f"Messenger {__version__}: end-to-end protected SIP messaging (RFC 8591 S/MIME "
            "over SIP MESSAGE and MSRP).",
        )

    # -- simulate --------------------------------------------------------------------------

    def simulate(self, key: str) -> None:
        self.bridge.run(
            self.simulator.inject(key),
            on_error=lambda exc: self.show_notice("error", f"The simulation failed: {exc}"),
        )

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._mark_displayed)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self._mark_displayed()

    def now(self) -> datetime:
        return datetime.now(UTC)
