"""The message security dialog: everything the report says about one message.

Tabs: the verdict, the layers outermost first with every algorithm by name, the
checklist (pass, fail or unknown with the reason in words), the certificate chain, the
raw SIP request and the CMS structure for interop work. It renders the stored report;
it never re-judges the message. The raw request and the body come from the user agent's
store, so they are there for every message, also after a restart.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from messenger.gui.certificate_viewer import CertificateViewer
from messenger.gui.resources import state_icon
from messenger.gui.states import StateStyle, authenticity_style, confidentiality_style
from messenger.ua.inspect import cms_structure, split_sip
from messenger.ua.store import RawRequest, StoredMessage

__all__ = ["CHECKLIST", "SecurityDialog", "cms_structure", "split_sip"]

#: The checklist rows, in order, with the words a person reads.
CHECKLIST: tuple[tuple[str, str], ...] = (
    ("signature", "Signature valid"),
    ("sender", "Signer matches the sender"),
    ("chain", "Chain to a trusted issuer"),
    ("validity", "Certificate within its validity"),
    ("revocation", "Not revoked"),
    ("replay", "Not a replay"),
    ("key-usage", "Key usage allows signing"),
    ("algorithm", "Algorithms accepted by the policy"),
    ("pin", "Matches your decision for this contact"),
)

_OUTCOME = {
    "pass": StateStyle("pass", "auth-verified", "Pass", "Pass", "green", "✓"),
    "fail": StateStyle("fail", "auth-bad-signature", "Fail", "Fail", "red", "✗"),
    "unknown": StateStyle("unknown", "auth-unverified", "Unknown", "Unknown", "grey", "?"),
}

_LAYER_WORDS = {
    "authEnveloped-data": "AuthEnvelopedData: encrypted with authenticated encryption",
    "enveloped-data": "EnvelopedData: encrypted (legacy mode, no integrity of its own)",
    "signed-data": "SignedData: signed, content inside the signature",
    "multipart/signed": "multipart/signed: signed, detached signature",
    "certs-only": "certs-only: certificates, no content",
}


def _raw_text(raw: bytes) -> str:
    head, body, ctype = split_sip(raw)
    if not body:
        return head
    try:
        shown = body.decode("utf-8")
        if any(ord(c) < 9 for c in shown):
            raise UnicodeDecodeError("utf-8", body, 0, 1, "control characters")
    except UnicodeDecodeError:
        b64 = base64.encodebytes(body).decode("ascii")
        shown = f"[{len(body)} bytes of binary {ctype or 'content'}, shown in base64]\n{b64}"
    return f"{head}\n\n{shown}"


class SecurityDialog(QDialog):
    """The security details of one stored message."""

    def __init__(
        self, message: StoredMessage, *, bridge: Any = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.message = message
        self.bridge = bridge
        self.report: dict[str, Any] = message.report or {}
        # read once from the store: the raw and CMS tabs both show them
        self.body = self._body_entity()
        self.raw_request = self._raw_request()
        self.setWindowTitle("Message security")
        self.setAccessibleName("Message security details")
        self.resize(760, 560)
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._summary_tab(), "&Verdict")
        self.tabs.addTab(self._layers_tab(), "&Layers and algorithms")
        self.tabs.addTab(self._checks_tab(), "&Checklist")
        self.tabs.addTab(self._chain_tab(), "C&ertificates")
        self.tabs.addTab(self._raw_tab(), "&Raw SIP")
        self.tabs.addTab(self._cms_tab(), "CMS &structure")
        self.tabs.addTab(self._json_tab(), "Report as &JSON")
        layout.addWidget(self.tabs)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    # -- tabs ------------------------------------------------------------------------------

    def _state_row(self, style: StateStyle, what: str) -> QWidget:
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        icon = QLabel()
        icon.setPixmap(state_icon(style).pixmap(24, 24))
        icon.setAccessibleName(f"{what} icon: {style.words}")
        words = QLabel(f"<b>{style.words}</b>")
        words.setAccessibleName(f"{what}: {style.accessible}")
        h.addWidget(icon)
        h.addWidget(words, 1)
        return row

    def _summary_tab(self) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        r = self.report
        if not r:
            form.addRow(QLabel("This message has no security report."))
            return w
        form.addRow(
            "Confidentiality:",
            self._state_row(confidentiality_style(r.get("confidentiality")), "Confidentiality"),
        )
        form.addRow(
            "Authenticity:",
            self._state_row(authenticity_style(r.get("authenticity")), "Authenticity"),
        )
        reason = QLabel(r.get("reason") or "")
        reason.setWordWrap(True)
        reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("In words:", reason)
        signer = r.get("signer") or {}
        rows = [
            ("Sender", r.get("sender") or "(unknown)"),
            ("Signer", ", ".join(signer.get("uris") or []) or signer.get("subject") or "(none)"),
            ("Signed at", r.get("signing_time") or "(no signing time)"),
            (
                "Signature inside the encryption",
                {True: "yes", False: "no (the signature is visible on the path)", None: "—"}[
                    r.get("signature_inside_encryption")
                ],
            ),
            (
                "CPIM headers covered by the signature",
                ", ".join(r["cpim_covered"]) if r.get("cpim_covered") else "(none reported)",
            ),
            ("Replay check", r.get("replay") or "(not reported)"),
            ("Revocation", r.get("revocation") or "not-checked"),
            ("Encrypted to", "; ".join(r.get("recipients") or []) or "(not encrypted)"),
        ]
        for label, value in rows:
            field = QLabel(str(value))
            field.setWordWrap(True)
            field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            field.setAccessibleName(label)
            form.addRow(f"{label}:", field)
        return w

    def _layers_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        v.addWidget(QLabel("Layers, outermost first:"))
        self.layers_list = QListWidget()
        self.layers_list.setAccessibleName("Protection layers, outermost first")
        layers = self.report.get("layers") or []
        for i, layer in enumerate(layers, 1):
            where = " (outermost)" if i == 1 else (" (innermost)" if i == len(layers) else "")
            self.layers_list.addItem(f"{i}. {_LAYER_WORDS.get(layer, layer)}{where}")
        if not layers:
            self.layers_list.addItem(
                "No protection layer: the message was neither signed nor encrypted."
            )
        self.layers_list.setMaximumHeight(
            self.layers_list.sizeHintForRow(0) * max(3, len(layers) + 1) + 8
        )
        v.addWidget(self.layers_list)
        v.addWidget(QLabel("Algorithms:"))
        algorithms = self.report.get("algorithms") or []
        self.algorithms_table = QTableWidget(len(algorithms), 3)
        self.algorithms_table.setAccessibleName("Algorithms used by this message")
        self.algorithms_table.setHorizontalHeaderLabels(["Role", "Algorithm", "OID"])
        for row, alg in enumerate(algorithms):
            for col, key in enumerate(("role", "name", "oid")):
                self.algorithms_table.setItem(row, col, QTableWidgetItem(str(alg.get(key, ""))))
        self.algorithms_table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.algorithms_table.horizontalHeader().setStretchLastSection(True)
        self.algorithms_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        v.addWidget(self.algorithms_table, 1)
        return w

    def algorithm_names(self) -> list[str]:
        t = self.algorithms_table
        return [t.item(r, 1).text() for r in range(t.rowCount())]

    def checklist(self) -> list[tuple[str, str, str]]:
        """(label, outcome, reason) rows, in CHECKLIST order, then any other check."""
        checks = {c.get("name"): c for c in self.report.get("checks") or []}
        rows: list[tuple[str, str, str]] = []
        for name, label in CHECKLIST:
            check = checks.pop(name, None)
            if check is not None:
                rows.append((label, check.get("outcome", "unknown"), check.get("reason", "")))
            elif name == "replay" and self.report.get("replay"):
                replay = self.report["replay"]
                outcome = "pass" if replay == "fresh" else "fail"
                rows.append((label, outcome, f"replay check: {replay}"))
            elif name in ("signature", "sender", "chain", "validity", "revocation", "replay"):
                rows.append((label, "unknown", "not part of this message's report"))
        for name, check in checks.items():
            rows.append((str(name), check.get("outcome", "unknown"), check.get("reason", "")))
        return rows

    def _checks_tab(self) -> QWidget:
        rows = self.checklist()
        table = QTableWidget(len(rows), 3)
        table.setAccessibleName("Security checklist")
        table.setHorizontalHeaderLabels(["Check", "Result", "Why"])
        for row, (label, outcome, reason) in enumerate(rows):
            style = _OUTCOME.get(outcome, _OUTCOME["unknown"])
            table.setItem(row, 0, QTableWidgetItem(label))
            result = QTableWidgetItem(state_icon(style), style.words)
            result.setData(Qt.ItemDataRole.AccessibleTextRole, f"{label}: {style.words}")
            table.setItem(row, 1, result)
            why = QTableWidgetItem(reason)
            why.setToolTip(reason)
            table.setItem(row, 2, why)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.setWordWrap(True)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.checks_table = table
        return table

    def _chain_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        chain = self.report.get("chain") or []
        if not chain and self.report.get("signer"):
            chain = [self.report["signer"]]
        self.chain_list = QListWidget()
        self.chain_list.setAccessibleName("Certificate chain, signer first")
        for i, cert in enumerate(chain):
            role = "Signer" if i == 0 else ("Root" if cert.get("self_signed") else "Issuer")
            uris = ", ".join(cert.get("uris") or [])
            self.chain_list.addItem(
                f"{role}: {cert.get('subject', '')}{f'  ({uris})' if uris else ''}\n"
                f"    issued by {cert.get('issuer', '')}, valid until {cert.get('not_after', '')}"
            )
        if not chain:
            self.chain_list.addItem("No certificate: the message was not signed.")
        v.addWidget(self.chain_list)
        open_button = QPushButton("&Open certificate…")
        open_button.setEnabled(bool(chain))
        open_button.clicked.connect(lambda: self._open_certificate(chain))
        self.chain_list.itemActivated.connect(lambda _item: self._open_certificate(chain))
        v.addWidget(open_button)
        return w

    def _open_certificate(self, chain: list[dict[str, Any]]) -> None:
        row = max(0, self.chain_list.currentRow())
        if row >= len(chain):
            return
        summary = chain[row]
        cert = None
        peer = self.message.peer
        if self.bridge is not None:
            cert = self.bridge.agent.find_certificate(peer, summary.get("sha256", ""))
        viewer = CertificateViewer(
            cert,
            summary=summary,
            peer=peer if row == 0 else None,
            bridge=self.bridge,
            parent=self,
        )
        viewer.exec()

    def _body_entity(self) -> bytes | None:
        """The stored body of the request as a MIME entity (what the agent keeps)."""
        if self.bridge is None:
            return None
        return self.bridge.agent.store.raw(self.message.rowid)

    def _raw_request(self) -> RawRequest | None:
        """The request that carried the message, as the user agent kept it."""
        if self.bridge is None:
            return None
        return self.bridge.agent.raw_request(self.message.rowid)

    def _text_tab(self, text: str, name: str) -> QPlainTextEdit:
        edit = QPlainTextEdit(text)
        edit.setReadOnly(True)
        edit.setObjectName("rawText")
        edit.setAccessibleName(name)
        edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        return edit

    def _raw_tab(self) -> QWidget:
        raw, body = self.raw_request, self.body
        if raw is not None and raw.kind == "msrp-headers":
            text = (
                "This message came over an MSRP session; the MSRP framing that carried it "
                "follows (its body is in the CMS structure tab).\n\n"
                + raw.data.decode("utf-8", errors="replace")
            )
        elif raw is not None:
            text = _raw_text(raw.data)
            if raw.truncated:
                text = (
                    f"(The request was {raw.size} bytes; the first {len(raw.data)} are "
                    f"kept.)\n\n{text}"
                )
        elif self.message.transport == "msrp":
            text = (
                "This message came over an MSRP session: SIP carried only the INVITE that "
                "set the session up, and the MSRP request of this message was not kept."
            )
        elif body:
            text = (
                "The SIP request of this message was not kept (it was stored by an earlier "
                "version); its stored body follows.\n\n" + _raw_text(b"(body)\r\n" + body)
            )
        elif self.message.direction == "out" and self.message.delivery == "pending":
            text = "This message has not been sent yet: there is no request to show."
        elif self.message.direction == "out":
            why = self.message.reason or "it never left this device"
            text = f"No request went out for this message: {why}."
        else:
            text = "No request was kept for this message."
        self.raw_edit = self._text_tab(text, "Raw SIP request")
        return self.raw_edit

    def _cms_tab(self) -> QWidget:
        raw, body = self.raw_request, self.body
        if body:
            text = cms_structure(body, None)
        elif raw is not None and raw.kind == "sip-request":
            _head, sip_body, ctype = split_sip(raw.data)
            text = cms_structure(sip_body, ctype)
        else:
            text = "No body is stored for this message."
        self.cms_edit = self._text_tab(text, "CMS structure")
        return self.cms_edit

    def _json_tab(self) -> QWidget:
        return self._text_tab(
            json.dumps(self.report, indent=2, ensure_ascii=False), "Security report as JSON"
        )
