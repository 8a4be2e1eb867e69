"""The contact header (identity, trust state, Verify), the Verify dialog and the
key-change banner.

Verify shows both certificates' SHA-256 fingerprints side by side in groups of four and a
short comparison code derived from both, for reading aloud over another channel; the
result is stored as a decision through the user agent.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from messenger.gui.certificate_viewer import grouped_fingerprint
from messenger.gui.conversation_list_model import display_peer
from messenger.gui.resources import state_icon
from messenger.gui.states import authenticity_style
from messenger.ua.identities import certificate_sha256

__all__ = ["ContactHeader", "KeyChangeBanner", "VerifyDialog", "comparison_code"]


def comparison_code(sha256_a: str, sha256_b: str) -> str:
    """A short code both sides compute the same from the two fingerprints (order-free):
    12 digits in groups of three, read aloud to confirm both fingerprints at once."""
    a, b = sorted(s.replace(":", "").lower() for s in (sha256_a, sha256_b))
    digest = hashlib.sha256(f"messenger-verify-1:{a}:{b}".encode()).digest()
    number = int.from_bytes(digest[:6], "big") % 10**12
    text = f"{number:012d}"
    return " ".join(text[i : i + 3] for i in range(0, 12, 3))


class VerifyDialog(QDialog):
    """Both fingerprints side by side, the comparison code, and the decision buttons."""

    decided = Signal(str)

    def __init__(
        self,
        *,
        own_aor: str,
        own_certificate: x509.Certificate,
        peer: str,
        peer_certificate: x509.Certificate,
        bridge: Any,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.peer = peer
        self.peer_certificate = peer_certificate
        self.bridge = bridge
        self.setWindowTitle(f"Verify {display_peer(peer)}")
        self.setAccessibleName(f"Verify the certificate of {display_peer(peer)}")
        own_fp = certificate_sha256(own_certificate)
        peer_fp = certificate_sha256(peer_certificate)
        self.code = comparison_code(own_fp, peer_fp)
        layout = QVBoxLayout(self)
        intro = QLabel(
            f"Call {display_peer(peer)} or meet them, and compare. Their screen must show the "
            "same two fingerprints (swapped) and the same comparison code. If anything "
            "differs, someone may be in the middle: do not trust the key."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        grid = QGridLayout()
        for col, (title, fp) in enumerate(
            (
                (f"Your certificate ({display_peer(own_aor)})", own_fp),
                (f"Their certificate ({display_peer(peer)})", peer_fp),
            )
        ):
            head = QLabel(f"<b>{title}</b>")
            grid.addWidget(head, 0, col)
            value = QLabel(grouped_fingerprint(fp, per_line=4))
            value.setObjectName("fingerprint")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setAccessibleName(f"{title}, SHA-256 fingerprint")
            value.setAccessibleDescription(" ".join(fp.upper()))
            grid.addWidget(value, 1, col)
        layout.addLayout(grid)
        layout.addWidget(QLabel("Comparison code (read it aloud):"))
        self.code_label = QLabel(self.code)
        self.code_label.setObjectName("comparisonCode")
        self.code_label.setAccessibleName(f"Comparison code {self.code}")
        self.code_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.code_label)
        buttons = QHBoxLayout()
        self.match_button = QPushButton("They &match: trust this key")
        self.differ_button = QPushButton("They &differ: do not trust")
        self.later_button = QPushButton("&Decide later")
        self.match_button.setAccessibleName("The fingerprints match: trust this key")
        self.differ_button.setAccessibleName("The fingerprints differ: do not trust this key")
        for b in (self.match_button, self.differ_button, self.later_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.match_button.clicked.connect(lambda: self.decide("trust"))
        self.differ_button.clicked.connect(lambda: self.decide("distrust"))
        self.later_button.clicked.connect(self.reject)
        bridge.log_event(
            "verify-shown",
            {"peer": peer, "sha256": peer_fp, "own_sha256": own_fp, "code": self.code},
        )

    def decide(self, decision: str) -> None:
        self.bridge.agent.decide_trust(self.peer, self.peer_certificate, decision)
        self.bridge.trustDecided.emit(self.peer, decision)
        self.decided.emit(decision)
        self.accept()


class KeyChangeBanner(QFrame):
    """Shown in a conversation while a changed key waits for the user's decision."""

    compareRequested = Signal()
    trustRequested = Signal()
    distrustRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("keyChangeBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        style = authenticity_style("key-changed")
        layout = QHBoxLayout(self)
        icon = QLabel()
        icon.setPixmap(state_icon(style).pixmap(32, 32))
        icon.setAccessibleName("Warning icon: key changed")
        layout.addWidget(icon)
        texts = QVBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("bannerTitle")
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        texts.addWidget(self.title)
        texts.addWidget(self.detail)
        layout.addLayout(texts, 1)
        self.compare_button = QPushButton("&Compare fingerprints…")
        self.trust_button = QPushButton("&Trust the new key")
        self.distrust_button = QPushButton("&Keep distrusting")
        buttons = QHBoxLayout()
        for b in (self.compare_button, self.trust_button, self.distrust_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        texts.addLayout(buttons)
        self.compare_button.clicked.connect(self.compareRequested)
        self.trust_button.clicked.connect(self.trustRequested)
        self.distrust_button.clicked.connect(self.distrustRequested)
        self.setAccessibleName("Key change warning")
        self.hide()

    def show_for(self, peer: str, sha256: str, reason: str, can_decide: bool) -> None:
        self.title.setText(f"Key changed: {display_peer(peer)} now signs with a different key")
        self.detail.setText(
            f"{reason} New SHA-256 fingerprint: {grouped_fingerprint(sha256, per_line=16)}. "
            "Until you decide, treat what they send as possibly from someone else."
        )
        self.setAccessibleDescription(self.title.text() + ". " + self.detail.text())
        self.trust_button.setEnabled(can_decide)
        self.compare_button.setEnabled(can_decide)
        self.show()


class ContactHeader(QFrame):
    """Who the conversation is with, their trust state, and the Verify action."""

    verifyRequested = Signal()
    certificateRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("contactHeader")
        layout = QHBoxLayout(self)
        self.icon = QLabel()
        layout.addWidget(self.icon)
        texts = QVBoxLayout()
        self.name = QLabel("No conversation selected")
        self.name.setObjectName("contactName")
        self.state = QLabel("")
        self.state.setWordWrap(True)
        texts.addWidget(self.name)
        texts.addWidget(self.state)
        layout.addLayout(texts, 1)
        self.certificate_button = QPushButton("Ce&rtificate…")
        self.certificate_button.setAccessibleName("Show the contact's certificate")
        self.verify_button = QPushButton("&Verify…")
        self.verify_button.setAccessibleName("Verify the contact's key by comparing fingerprints")
        layout.addWidget(self.certificate_button)
        layout.addWidget(self.verify_button)
        self.verify_button.clicked.connect(self.verifyRequested)
        self.certificate_button.clicked.connect(self.certificateRequested)
        self.set_contact(None, None, "", has_certificate=False)

    def set_contact(
        self, peer: str | None, trust_state: str | None, words: str, *, has_certificate: bool
    ) -> None:
        if peer is None:
            self.name.setText("No conversation selected")
            self.state.setText("Choose a conversation, or start one from the Conversation menu.")
            self.icon.clear()
            self.verify_button.setEnabled(False)
            self.certificate_button.setEnabled(False)
            return
        self.name.setText(display_peer(peer))
        self.name.setAccessibleName(f"Conversation with {peer}")
        if trust_state is None:
            style = None
            text = words or "No signed message from this contact yet."
        else:
            style = authenticity_style(trust_state)
            text = f"Last message: {style.words}. {words}".strip()
        self.state.setText(text)
        self.state.setAccessibleName(f"Trust state: {style.accessible if style else text}")
        if style is not None:
            self.icon.setPixmap(state_icon(style).pixmap(32, 32))
            self.icon.setAccessibleName(style.words)
        else:
            self.icon.clear()
        self.verify_button.setEnabled(has_certificate)
        self.certificate_button.setEnabled(has_certificate)
