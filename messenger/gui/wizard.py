"""The first-run wizard (identity, passphrase, account) and the account settings dialog."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from messenger.ua.identities import (
    Identity,
    IdentityError,
    WrongPassphrase,
    check_new_passphrase,
    create_identity,
    import_pkcs12,
    issue_from_ca,
    save_identity,
    validate_aor,
)
from messenger.ua.profile import (
    IDENTITY_DIR,
    AccountSettings,
    add_trust_anchor,
    save_settings,
)

__all__ = ["AccountForm", "AccountSettingsDialog", "FirstRunWizard"]


def _browse(parent: QWidget, edit: QLineEdit, folder: bool, title: str) -> None:
    if folder:
        path = QFileDialog.getExistingDirectory(parent, title)
    else:
        path, _ = QFileDialog.getOpenFileName(parent, title)
    if path:
        edit.setText(path)


def _path_row(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    h = QHBoxLayout(row)
    h.setContentsMargins(0, 0, 0, 0)
    h.addWidget(edit, 1)
    h.addWidget(button)
    return row


class IdentityPage(QWizardPage):
    """Who you are: your SIP address, where your certificate comes from, the passphrase."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Your identity")
        self.setSubTitle(
            "Your SIP address and a certificate that proves it. Others check your "
            "signatures with it and encrypt to it."
        )
        form = QFormLayout(self)
        self.aor = QLineEdit()
        self.aor.setPlaceholderText("sip:alice@example.com")
        self.aor.setAccessibleName("Your SIP address")
        form.addRow("SIP &address:", self.aor)
        self.source = QButtonGroup(self)
        self.create = QRadioButton("&Create a new self-signed certificate")
        self.issue = QRadioButton("&Issue one from a CA folder")
        self.import_ = QRadioButton("I&mport a PKCS#12 file (.p12)")
        self.create.setChecked(True)
        for i, b in enumerate((self.create, self.issue, self.import_)):
            self.source.addButton(b, i)
            form.addRow(b)
        self.ca_folder = QLineEdit()
        self.ca_folder.setAccessibleName("CA folder")
        ca_browse = QPushButton("Browse…")
        ca_browse.clicked.connect(lambda: _browse(self, self.ca_folder, True, "CA folder"))
        form.addRow("CA &folder:", _path_row(self.ca_folder, ca_browse))
        self.ca_passphrase = QLineEdit()
        self.ca_passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.ca_passphrase.setAccessibleName("CA passphrase")
        form.addRow("CA passphrase:", self.ca_passphrase)
        self.p12 = QLineEdit()
        self.p12.setAccessibleName("PKCS#12 file")
        p12_browse = QPushButton("Browse…")
        p12_browse.clicked.connect(lambda: _browse(self, self.p12, False, "PKCS#12 file"))
        form.addRow("PKCS#12 &file:", _path_row(self.p12, p12_browse))
        self.p12_passphrase = QLineEdit()
        self.p12_passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.p12_passphrase.setAccessibleName("PKCS#12 passphrase")
        form.addRow("PKCS#12 passphrase:", self.p12_passphrase)
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Passphrase for your private key")
        self.repeat = QLineEdit()
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat.setAccessibleName("Passphrase again")
        form.addRow("&Passphrase for your key:", self.passphrase)
        form.addRow("Passphrase &again:", self.repeat)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setAccessibleName("Problem")
        form.addRow(self.error)
        self.identity: Identity | None = None

    def build_identity(self, now: datetime) -> Identity:
        """The identity the page describes (through the user agent's identity setup);
        an `IdentityError` in words otherwise."""
        aor = validate_aor(self.aor.text())
        check_new_passphrase(self.passphrase.text(), self.repeat.text())
        choice = self.source.checkedId()
        if choice == 1:
            secret = self.ca_passphrase.text().encode() or None
            return issue_from_ca(aor, self.ca_folder.text(), secret, now=now)
        if choice == 2:
            secret = self.p12_passphrase.text().encode()
            return import_pkcs12(self.p12.text(), secret, aor=aor)
        return create_identity(aor, now=now)

    def validatePage(self) -> bool:
        try:
            self.identity = self.build_identity(datetime.now(UTC))
        except WrongPassphrase as exc:
            self.error.setText(f"Wrong passphrase: {exc}.")
            return False
        except IdentityError as exc:
            self.error.setText(f"Cannot continue: {exc}.")
            return False
        self.error.clear()
        return True


class AccountForm(QWidget):
    """The account settings: connection, transport, credentials, security policy."""

    def __init__(self, settings: AccountSettings | None = None, parent=None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        self.mode = QComboBox()
        self.mode.addItem("Direct (no server; contacts by address)", "direct")
        self.mode.addItem("Register with a registrar", "registrar")
        self.mode.addItem("Send through an outbound proxy", "proxy")
        self.mode.setAccessibleName("Connection mode")
        form.addRow("&Connection:", self.mode)
        self.registrar = QLineEdit()
        self.registrar.setPlaceholderText("sip:example.com")
        self.registrar.setAccessibleName("Registrar URI")
        form.addRow("&Registrar:", self.registrar)
        self.proxy = QLineEdit()
        self.proxy.setPlaceholderText("sip:proxy.example.com;transport=tcp")
        self.proxy.setAccessibleName("Outbound proxy URI")
        form.addRow("Outbound &proxy:", self.proxy)
        self.transport = QComboBox()
        for t in ("udp", "tcp", "tls"):
            self.transport.addItem(t.upper(), t)
        self.transport.setAccessibleName("Transport")
        form.addRow("&Transport:", self.transport)
        self.listen = QLineEdit("udp:0.0.0.0:5060 tcp:0.0.0.0:5060")
        self.listen.setAccessibleName("Listen addresses")
        form.addRow("&Listen on:", self.listen)
        self.username = QLineEdit()
        self.username.setAccessibleName("Digest user name")
        form.addRow("&User name:", self.username)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Digest password")
        form.addRow("Pass&word:", self.password)
        self.msrp_relay = QLineEdit()
        self.msrp_relay.setPlaceholderText("msrps://relay.example.com:2855;tcp (optional)")
        self.msrp_relay.setAccessibleName("MSRP relay URI")
        self.msrp_relay.setAccessibleDescription(
            "An RFC 4976 relay that chat sessions and file transfers go through; leave it "
            "empty to connect to contacts directly"
        )
        form.addRow("MSRP re&lay:", self.msrp_relay)
        self.require = QCheckBox("Require signatures from contacts known to sign")
        self.encrypt = QCheckBox("Encrypt whenever the contact's certificate is known")
        self.encrypt.setChecked(True)
        form.addRow(self.require)
        form.addRow(self.encrypt)
        self.anchor = QLineEdit()
        self.anchor.setAccessibleName("Trusted CA certificate file")
        anchor_browse = QPushButton("Browse…")
        anchor_browse.clicked.connect(
            lambda: _browse(self, self.anchor, False, "CA certificate to trust")
        )
        form.addRow("Trust CA (optional):", _path_row(self.anchor, anchor_browse))
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setAccessibleName("Problem")
        form.addRow(self.error)
        if settings is not None:
            self.load(settings)

    def load(self, s: AccountSettings) -> None:
        self.mode.setCurrentIndex(max(0, self.mode.findData(s.mode)))
        self.registrar.setText(s.registrar)
        self.proxy.setText(s.proxy)
        self.transport.setCurrentIndex(max(0, self.transport.findData(s.transport)))
        self.listen.setText(" ".join(s.listen))
        self.username.setText(s.username)
        self.password.setText(s.password)
        self.require.setChecked(s.require_signatures)
        self.encrypt.setChecked(s.encrypt)
        self.msrp_relay.setText(s.msrp_relay)

    def settings(self, aor: str, contacts: dict[str, str] | None = None) -> AccountSettings:
        s = AccountSettings(
            aor=aor,
            mode=str(self.mode.currentData()),
            registrar=self.registrar.text().strip(),
            proxy=self.proxy.text().strip(),
            transport=str(self.transport.currentData()),
            listen=self.listen.text().split(),
            username=self.username.text().strip(),
            password=self.password.text(),
            contacts=dict(contacts or {}),
            require_signatures=self.require.isChecked(),
            encrypt=self.encrypt.isChecked(),
            msrp_relay=self.msrp_relay.text().strip(),
        )
        s.validate()
        return s


class AccountPage(QWizardPage):
    def __init__(self, identity_page: IdentityPage) -> None:
        super().__init__()
        self.identity_page = identity_page
        self.setTitle("Your account")
        self.setSubTitle("How to reach others, and your security policy.")
        layout = QVBoxLayout(self)
        self.form = AccountForm()
        layout.addWidget(self.form)
        self.settings: AccountSettings | None = None

    def validatePage(self) -> bool:
        try:
            self.settings = self.form.settings(self.identity_page.aor.text().strip())
            anchor = self.form.anchor.text().strip()
            if anchor:
                Path(anchor).read_bytes()
        except (ValueError, OSError) as exc:
            self.form.error.setText(f"Cannot continue: {exc}.")
            return False
        return True


class FirstRunWizard(QWizard):
    """Creates the profile: identity (key encrypted with the passphrase) and settings."""

    def __init__(self, folder: Path, parent=None) -> None:
        super().__init__(parent)
        self.folder = folder
        self.setWindowTitle("Set up the messenger")
        self.identity_page = IdentityPage()
        self.account_page = AccountPage(self.identity_page)
        self.addPage(self.identity_page)
        self.addPage(self.account_page)
        self.identity: Identity | None = None
        self.passphrase: bytes = b""

    def accept(self) -> None:
        identity = self.identity_page.identity
        settings = self.account_page.settings
        if identity is None or settings is None:
            return
        passphrase = self.identity_page.passphrase.text().encode()
        try:
            save_identity(identity, self.folder / IDENTITY_DIR, passphrase)
            anchor = self.account_page.form.anchor.text().strip()
            if anchor:
                add_trust_anchor(self.folder, Path(anchor).read_bytes(), "ca")
            save_settings(self.folder, settings)
        except (OSError, IdentityError) as exc:
            QMessageBox.critical(
                self,
                "Profile not saved",
                f"The profile could not be written to {self.folder}: {exc}. "
                "Choose a folder you can write to (MESSENGER_PROFILE) and try again.",
            )
            return
        self.identity = identity
        self.passphrase = passphrase
        super().accept()


class AccountSettingsDialog(QDialog):
    """Edit the account settings of an existing profile (applied at the next start)."""

    def __init__(self, folder: Path, settings: AccountSettings, parent=None) -> None:
        super().__init__(parent)
        self.folder = folder
        self.current = settings
        self.setWindowTitle("Account settings")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Account {settings.aor}. Changes apply at the next start."))
        self.form = AccountForm(settings)
        layout.addWidget(self.form)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def accept(self) -> None:
        try:
            settings = self.form.settings(self.current.aor, self.current.contacts)
            save_settings(self.folder, settings)
        except (ValueError, OSError) as exc:
            self.form.error.setText(f"Not saved: {exc}.")
            return
        self.current = settings
        super().accept()
