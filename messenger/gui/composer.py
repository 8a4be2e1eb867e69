"""The composer: text, the protection mode, and one line saying what will happen."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from messenger.gui.conversation_list_model import display_peer
from messenger.gui.resources import state_icon
from messenger.gui.states import authenticity_style, confidentiality_style

__all__ = ["MODES", "Composer", "Plan", "plan_for"]

#: (mode key, label) in the order of the menu; plain is only ever an explicit choice.
MODES = (
    ("sign-encrypt", "Sign and encrypt"),
    ("sign", "Sign only"),
    ("plain", "Plain text (no protection)"),
)


@dataclass(frozen=True)
class Plan:
    sign: bool
    encrypt: bool
    text: str
    warning: bool


def plan_for(
    mode: str,
    *,
    peer: str,
    peer_fingerprint: str | None,
    smime_refused: bool = False,
) -> Plan:
    """What sending will do in `mode` for `peer`, in words."""
    who = display_peer(peer)
    note = (
        f" Note: {who}'s program refused S/MIME before (415); a protected message may be "
        "refused again."
        if smime_refused and mode != "plain"
        else ""
    )
    if mode == "plain":
        return Plan(
            False,
            False,
            "Will be sent as plain text: not signed, not encrypted. Anyone on the path can "
            "read it, and nothing shows it came from you.",
            True,
        )
    if mode == "sign":
        return Plan(
            True,
            False,
            f"Will be signed by you but not encrypted: {who} can check it came from you; "
            f"anyone on the path can read it.{note}",
            True,
        )
    if peer_fingerprint:
        fp = peer_fingerprint.upper()
        short = " ".join(fp[i : i + 4] for i in range(0, 16, 4))
        return Plan(
            True,
            True,
            f"Will be signed by you and encrypted to {who}'s certificate "
            f"(SHA-256 {short} …): only {who} can read it.{note}",
            bool(note),
        )
    return Plan(
        True,
        False,
        f"Will be signed by you but not encrypted: no certificate of {who} is known yet "
        f"(it is learned from their first signed message).{note}",
        True,
    )


class _Edit(QPlainTextEdit):
    submit = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submit.emit()
            return
        super().keyPressEvent(event)


class Composer(QWidget):
    """Emits sendRequested(text, sign, encrypt) when the user sends, and
    fileRequested(sign, encrypt) when the user asks to send a file."""

    sendRequested = Signal(str, bool, bool)
    fileRequested = Signal(bool, bool)
    modeChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.peer: str | None = None
        self.peer_fingerprint: str | None = None
        self.smime_refused = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        mode_label = QLabel("&Protection:")
        self.mode = QComboBox()
        for key, label in MODES:
            self.mode.addItem(label, key)
        self.mode.setAccessibleName("Protection mode")
        mode_label.setBuddy(self.mode)
        row.addWidget(mode_label)
        row.addWidget(self.mode)
        row.addStretch(1)
        self.session_label = QLabel()
        self.session_label.setObjectName("composerSession")
        row.addWidget(self.session_label)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.plan_icon = QLabel()
        self.plan_label = QLabel()
        self.plan_label.setObjectName("composerPlan")
        self.plan_label.setWordWrap(True)
        row.addWidget(self.plan_icon)
        row.addWidget(self.plan_label, 1)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.edit = _Edit()
        self.edit.setObjectName("composerEdit")
        self.edit.setPlaceholderText("Write a message (Enter sends, Shift+Enter a new line)")
        self.edit.setAccessibleName("Message text")
        self.edit.setFixedHeight(72)
        self.edit.setTabChangesFocus(True)
        self.send_button = QPushButton("&Send")
        self.send_button.setAccessibleName("Send the message")
        self.file_button = QPushButton("Send &file…")
        self.file_button.setObjectName("composerFile")
        self.file_button.setAccessibleName("Send a file")
        self.file_button.setAccessibleDescription(
            "Choose a file; it is protected as the protection mode says and sent over a "
            "session with the contact (Ctrl+Shift+F)"
        )
        self.file_button.setToolTip("Send a file, protected as chosen above (Ctrl+Shift+F)")
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.file_button)
        row.addWidget(self.edit, 1)
        row.addLayout(buttons)
        layout.addLayout(row)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.send_button.clicked.connect(self.send)
        self.file_button.clicked.connect(self.request_file)
        self.edit.submit.connect(self.send)
        self.in_session = False
        self.set_peer(None)
        self.set_session(False)

    def current_mode(self) -> str:
        return str(self.mode.currentData())

    def set_mode(self, key: str) -> None:
        index = self.mode.findData(key)
        if index >= 0:
            self.mode.setCurrentIndex(index)

    def set_peer(
        self, peer: str | None, peer_fingerprint: str | None = None, *, smime_refused: bool = False
    ) -> None:
        self.peer = peer
        self.peer_fingerprint = peer_fingerprint
        self.smime_refused = smime_refused
        enabled = peer is not None
        self.edit.setEnabled(enabled)
        self.send_button.setEnabled(enabled)
        self.file_button.setEnabled(enabled)
        self.mode.setEnabled(enabled)
        self._update_plan()

    def set_session(self, open_: bool) -> None:
        """Say whether messages to this contact go over a chat session (MSRP)."""
        self.in_session = open_
        text = "Chat session: messages go over MSRP" if open_ else ""
        self.session_label.setText(text)
        self.session_label.setAccessibleName(text or "No chat session")
        self.session_label.setVisible(open_)

    def plan(self) -> Plan | None:
        if self.peer is None:
            return None
        return plan_for(
            self.current_mode(),
            peer=self.peer,
            peer_fingerprint=self.peer_fingerprint,
            smime_refused=self.smime_refused,
        )

    def _mode_changed(self) -> None:
        self._update_plan()
        self.modeChanged.emit(self.current_mode())

    def _update_plan(self) -> None:
        plan = self.plan()
        if plan is None:
            self.plan_label.setText("Choose a conversation to write.")
            self.plan_icon.clear()
        else:
            if plan.encrypt:
                style = confidentiality_style("encrypted")
            elif plan.sign:
                style = confidentiality_style("plaintext")
            else:
                style = authenticity_style("unsigned", expected_to_sign=True)
            self.plan_icon.setPixmap(state_icon(style).pixmap(20, 20))
            self.plan_icon.setAccessibleName(style.words)
            self.plan_label.setText(plan.text)
        self.plan_label.setAccessibleName(
            f"What will happen when you send: {self.plan_label.text()}"
        )

    def protection(self) -> tuple[bool, bool] | None:
        """(sign, encrypt) a send asks the agent for, as the mode says; None without a
        contact."""
        plan = self.plan()
        if plan is None:
            return None
        # "Sign and encrypt" asks the agent to encrypt whenever it can at send time (it
        # may learn the certificate from a 493 answer and send again, encrypted).
        return plan.sign, self.current_mode() == "sign-encrypt"

    def send(self) -> None:
        text = self.edit.toPlainText().strip()
        asked = self.protection()
        if not text or asked is None:
            return
        self.edit.clear()
        self.sendRequested.emit(text, *asked)

    def request_file(self) -> None:
        """Ask for a file to send, protected as the current mode says."""
        asked = self.protection()
        if asked is None:
            return
        self.fileRequested.emit(*asked)
