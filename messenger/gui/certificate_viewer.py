"""The certificate viewer: what a certificate says, and the trust actions on it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from messenger.pki.verdict import CertificateSummary
from messenger.ua.identities import format_fingerprint

__all__ = ["CertificateViewer", "certificate_fields", "grouped_fingerprint"]

_USAGE_WORDS = {
    "digital_signature": "digital signature",
    "content_commitment": "non-repudiation",
    "key_encipherment": "key encipherment",
    "data_encipherment": "data encipherment",
    "key_agreement": "key agreement",
    "key_cert_sign": "certificate signing",
    "crl_sign": "CRL signing",
}


def grouped_fingerprint(sha256_hex: str, per_line: int = 8) -> str:
    """A SHA-256 fingerprint in groups of four hex digits, ``per_line`` groups a line."""
    text = sha256_hex.replace(":", "").upper()
    groups = [text[i : i + 4] for i in range(0, len(text), 4)]
    return "\n".join(" ".join(groups[i : i + per_line]) for i in range(0, len(groups), per_line))


def certificate_fields(
    certificate: x509.Certificate | None, summary: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    """The rows the viewer shows, as (label, value), from a certificate or its summary."""
    if certificate is not None:
        summary = CertificateSummary.of(certificate).to_json()
    assert summary is not None
    rows = [
        ("Subject", summary.get("subject", "")),
        ("SIP identities", ", ".join(summary.get("uris") or []) or "(none)"),
        ("Issuer", summary.get("issuer", "")),
        ("Self-signed", "yes" if summary.get("self_signed") else "no"),
        ("Valid from", str(summary.get("not_before", ""))),
        ("Valid until", str(summary.get("not_after", ""))),
        ("Key type", summary.get("key_type", "")),
        (
            "Key usage",
            ", ".join(_USAGE_WORDS.get(u, u) for u in summary.get("key_usage") or []) or "(any)",
        ),
        ("Extended key usage", ", ".join(summary.get("extended_key_usage") or []) or "(none)"),
        ("Serial number", summary.get("serial", "")),
        ("SHA-256 fingerprint", format_fingerprint(summary.get("sha256", ""))),
    ]
    if certificate is not None:
        sha1 = hashlib.sha1(certificate.public_bytes(Encoding.DER)).hexdigest()
        rows.append(("SHA-1 fingerprint (legacy tools)", format_fingerprint(sha1)))
    return rows


class CertificateViewer(QDialog):
    """Subject, SAN URIs, issuer, validity, key, usages, fingerprints; trust, distrust, export.

    Trust and distrust go through ``bridge.agent.decide_trust`` for `peer`; both are
    disabled when there is no certificate object or no peer to decide for.
    """

    decided = Signal(str)  # "trust" | "distrust"

    def __init__(
        self,
        certificate: x509.Certificate | None,
        *,
        summary: dict[str, Any] | None = None,
        peer: str | None = None,
        bridge: Any = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.certificate = certificate
        self.peer = peer
        self.bridge = bridge
        self.setWindowTitle("Certificate")
        self.setAccessibleName("Certificate viewer")
        layout = QVBoxLayout(self)
        form = QFormLayout()
        for label, value in certificate_fields(certificate, summary):
            field = QLabel(value)
            field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            field.setWordWrap(True)
            field.setAccessibleName(label)
            if "fingerprint" in label:
                field.setObjectName("fingerprint")
            form.addRow(f"{label}:", field)
        layout.addLayout(form)
        if certificate is None:
            note = QLabel(
                "Only the summary of this certificate is known here, so it cannot be "
                "trusted or exported from this view."
            )
            note.setWordWrap(True)
            layout.addWidget(note)
        actions = QHBoxLayout()
        self.trust_button = QPushButton("&Trust (pin) for this contact")
        self.distrust_button = QPushButton("&Distrust")
        self.export_button = QPushButton("&Export…")
        for button, name in (
            (self.trust_button, "Trust this certificate for the contact"),
            (self.distrust_button, "Mark this certificate as not trusted"),
            (self.export_button, "Export the certificate to a PEM file"),
        ):
            button.setAccessibleName(name)
            actions.addWidget(button)
        can_decide = certificate is not None and peer is not None and bridge is not None
        self.trust_button.setEnabled(can_decide)
        self.distrust_button.setEnabled(can_decide)
        self.export_button.setEnabled(certificate is not None)
        self.trust_button.clicked.connect(lambda: self.decide("trust"))
        self.distrust_button.clicked.connect(lambda: self.decide("distrust"))
        self.export_button.clicked.connect(self._export_clicked)
        layout.addLayout(actions)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)

    def decide(self, decision: str) -> None:
        assert self.certificate is not None and self.peer is not None
        try:
            self.bridge.agent.decide_trust(self.peer, self.certificate, decision)
        except Exception as exc:  # the decision could not be stored: say so, keep the dialog
            QMessageBox.warning(self, "Decision not stored", f"The decision was not stored: {exc}")
            return
        self.bridge.trustDecided.emit(self.peer, decision)
        self.decided.emit(decision)

    def export_to(self, path: Path) -> None:
        assert self.certificate is not None
        Path(path).write_bytes(self.certificate.public_bytes(Encoding.PEM))

    def _export_clicked(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Export certificate", "certificate.pem", "PEM certificate (*.pem *.crt)"
        )
        if not name:
            return
        try:
            self.export_to(Path(name))
        except OSError as exc:
            QMessageBox.warning(
                self,
                "Export failed",
                f"The certificate could not be written to {name}: {exc.strerror}. "
                "Choose a folder you can write to.",
            )
