"""The window's parts on their own: the state table, composer, verify code, certificate
viewer, security dialog helpers and the first-run wizard."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.gui.certificate_viewer import (
    CertificateViewer,
    certificate_fields,
    grouped_fingerprint,
)
from messenger.gui.composer import Composer, plan_for
from messenger.gui.contact_header import comparison_code
from messenger.gui.resources import resources_dir, state_icon
from messenger.gui.security_dialog import cms_structure, split_sip
from messenger.gui.states import (
    AUTHENTICITY,
    CONFIDENTIALITY,
    FAMILY_COLOURS,
    authenticity_style,
    confidentiality_style,
)
from messenger.gui.wizard import FirstRunWizard
from messenger.pki.errors import WrongPassphraseError
from messenger.pki.identity import create_identity, load_identity
from messenger.pki.verdict import Authenticity
from messenger.smime.protect import protect
from messenger.smime.report import Confidentiality
from messenger.ua.profile import AccountSettings, load_settings

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_every_report_state_has_icon_words_and_accessible_text(qapp):
    assert set(AUTHENTICITY) == {str(s) for s in Authenticity}
    assert set(CONFIDENTIALITY) == {str(s) for s in Confidentiality}
    folder = resources_dir()
    assert folder is not None
    words = set()
    for style in (*AUTHENTICITY.values(), *CONFIDENTIALITY.values()):
        assert style.words and style.accessible and style.family in FAMILY_COLOURS
        assert (folder / "icons" / f"{style.icon}.svg").is_file(), style.icon
        assert not state_icon(style).isNull()
        words.add((style.words, style.icon))
    # colour is never the only signal: every state reads differently
    assert len({w for w, _ in words}) == len(AUTHENTICITY) + len(CONFIDENTIALITY)
    # green needs a valid signature and a trusted key: encryption alone never is
    greens = {s for s, style in AUTHENTICITY.items() if style.family == "green"}
    assert greens == {"verified", "verified-pinned", "revocation-unknown"}
    assert confidentiality_style("encrypted").family != "green"
    assert authenticity_style("unsigned").family == "grey"
    assert authenticity_style("unsigned", expected_to_sign=True).family == "red"
    assert authenticity_style("no-such-state").words == "No report"


def test_composer_says_what_will_happen(qtbot):
    fp = "ab" * 32
    plan = plan_for("sign-encrypt", peer="sip:bob@example.test", peer_fingerprint=fp)
    assert plan.sign and plan.encrypt and "encrypted to bob@example.test's" in plan.text
    assert "ABAB ABAB" in plan.text
    plan = plan_for("sign-encrypt", peer="sip:bob@example.test", peer_fingerprint=None)
    assert plan.sign and not plan.encrypt and "no certificate of bob@example.test" in plan.text
    plan = plan_for("plain", peer="sip:bob@example.test", peer_fingerprint=fp)
    assert not plan.sign and not plan.encrypt and plan.warning
    plan = plan_for("sign", peer="sip:b@x.test", peer_fingerprint=fp, smime_refused=True)
    assert "415" in plan.text

    composer = Composer()
    qtbot.addWidget(composer)
    composer.set_peer("sip:bob@example.test", fp)
    assert composer.current_mode() == "sign-encrypt"  # never plain unless chosen
    sent: list = []
    composer.sendRequested.connect(lambda *a: sent.append(a))
    composer.set_mode("plain")
    assert "plain text" in composer.plan_label.text()
    composer.edit.setPlainText("hi")
    composer.send()
    assert sent == [("hi", False, False)]
    assert composer.edit.toPlainText() == ""


def test_comparison_code_is_the_same_on_both_sides():
    a, b = "0f" * 32, "e1" * 32
    assert comparison_code(a, b) == comparison_code(b, a)
    assert comparison_code(a, b) != comparison_code(a, "e2" * 32)
    code = comparison_code(a, b)
    assert len(code.split()) == 4 and all(len(g) == 3 and g.isdigit() for g in code.split())
    assert grouped_fingerprint("ab" * 32, per_line=8).count("\n") == 1


def test_certificate_viewer_shows_fields_and_exports(qtbot, tmp_path):
    identity = create_identity("sip:alice@example.test", now=NOW)
    fields = dict(certificate_fields(identity.certificate))
    assert fields["SIP identities"] == "sip:alice@example.test"
    assert fields["Self-signed"] == "yes"
    assert fields["Key type"] == "EC P-256"
    assert len(fields["SHA-256 fingerprint"].split(":")) == 32
    viewer = CertificateViewer(identity.certificate)
    qtbot.addWidget(viewer)
    assert viewer.export_button.isEnabled()
    assert not viewer.trust_button.isEnabled()  # no contact and no agent to decide for
    viewer.export_to(tmp_path / "c.pem")
    loaded = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    assert loaded == identity.certificate


def test_cms_structure_of_a_protected_body():
    alice = create_identity("sip:alice@example.test", now=NOW)
    bob = create_identity("sip:bob@example.test", now=NOW)
    entity = protect(b"hi", signer=alice, recipients=[bob.certificate], signing_time=NOW)
    text = cms_structure(entity.to_bytes(), None)
    assert "authenticated_enveloped_data" in text
    raw = (
        b"MESSAGE sip:bob@example.test SIP/2.0\r\nContent-Type: "
        + (entity.header("Content-Type") or "").encode()
        + b"\r\n\r\n"
        + entity.body
    )
    head, body, ctype = split_sip(raw)
    assert head.startswith("MESSAGE") and body == entity.body
    assert "authenticated_enveloped_data" in cms_structure(body, ctype)
    assert "not an S/MIME structure" in cms_structure(b"\x30\x03garbage", "application/pkcs7-mime")


def test_wizard_creates_a_profile_with_an_encrypted_key(qtbot, tmp_path):
    wizard = FirstRunWizard(tmp_path)
    qtbot.addWidget(wizard)
    page = wizard.identity_page
    page.aor.setText("sip:alice@example.test")
    page.passphrase.setText("correct horse")
    page.repeat.setText("correct horse, typo")
    assert not page.validatePage()
    assert "differ" in page.error.text()
    page.repeat.setText("correct horse")
    assert page.validatePage()
    form = wizard.account_page.form
    form.mode.setCurrentIndex(form.mode.findData("registrar"))
    assert not wizard.account_page.validatePage()
    assert "registrar" in form.error.text()
    form.registrar.setText("sip:example.test")
    form.require.setChecked(True)
    assert wizard.account_page.validatePage()
    wizard.accept()
    settings = load_settings(tmp_path)
    assert settings == AccountSettings(
        aor="sip:alice@example.test",
        mode="registrar",
        registrar="sip:example.test",
        require_signatures=True,
    )
    with pytest.raises(WrongPassphraseError):
        load_identity(tmp_path / "identity", b"wrong passphrase")
    identity = load_identity(tmp_path / "identity", b"correct horse")
    assert identity.uris == ("sip:alice@example.test",)
    assert (tmp_path / "account.json").stat().st_mode & 0o077 == 0


def test_packaging_metadata_is_consistent():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    desktop = (root / "packaging" / "io.github.messenger.messenger.desktop").read_text()
    assert (root / "resources" / "io.github.messenger.messenger.desktop").read_text() == desktop
    assert "Exec=messenger" in desktop and "Icon=messenger" in desktop
    metainfo = (root / "packaging" / "io.github.messenger.messenger.metainfo.xml").read_text()
    assert "<id>io.github.messenger.messenger</id>" in metainfo
    assert "io.github.messenger.messenger.desktop</launchable>" in metainfo
    spec = (root / "packaging" / "messenger.spec").read_text()
    assert "COLLECT(" in spec and "exclude_binaries=True" in spec  # one-folder build


def test_unprotected_parts_are_drawn_outside_the_frame(qtbot):
    import tempfile
    from pathlib import Path

    from messenger.gui.conversation_model import ConversationModel, describe_message
    from messenger.gui.main_window import ConversationView
    from messenger.gui.message_delegate import MessageDelegate, outside_parts, outside_text
    from messenger.ua.store import MessageStore

    with tempfile.TemporaryDirectory() as folder:
        store = MessageStore.open(Path(folder))
        report = {
            "confidentiality": "plaintext",
            "authenticity": "verified",
            "layers": ["multipart/signed"],
        }
        for i, parts in enumerate(([("text/plain", b"added on the way")], [])):
            store.add_incoming(
                peer="sip:a@x.test",
                local="sip:b@x.test",
                message_id=f"m{i}",
                content_type="text/plain",
                content=b"signed words",
                report=report,
                at=NOW,
                outside=parts,
            )
        store.close()
        # what is drawn comes from the store: a store opened again, as after a restart
        store = MessageStore.open(Path(folder))
        model = ConversationModel(store)
        view = ConversationView(model)
        qtbot.addWidget(view)
        view.resize(500, 400)
        model.set_peer("sip:a@x.test")
        delegate = view.itemDelegate()
        assert isinstance(delegate, MessageDelegate)
        from PySide6.QtWidgets import QStyleOptionViewItem

        option = QStyleOptionViewItem()
        option.initFrom(view)
        with_part = delegate._layout(option, model.message(0), False)
        without = delegate._layout(option, model.message(1), False)
        assert outside_parts(model.message(0)) == ["added on the way"]
        assert outside_text(model.message(1)) == ""
        assert with_part.outside is not None and without.outside is None
        # below the protected frame, not inside it
        assert with_part.outside.top() > with_part.bubble.bottom()
        assert with_part.height > without.height
        spoken = describe_message(model.message(0))
        assert "1 unprotected part came with it: added on the way" in spoken
        assert "unprotected" not in describe_message(model.message(1))
        store.close()


def test_account_settings_become_the_agent_configuration(tmp_path):
    from messenger.ua.profile import account_config

    identity = create_identity("sip:alice@example.test", now=NOW)
    settings = AccountSettings(
        aor="sip:alice@example.test",
        mode="proxy",
        proxy="sip:proxy.example.test",
        transport="tcp",
        listen=["tcp:127.0.0.1:0"],
        username="alice",
        password="secret",
        encrypt=False,
        require_signatures=True,
    )
    settings.validate()
    config = account_config(tmp_path, settings, identity)
    assert config.proxy == "sip:proxy.example.test;transport=tcp"
    assert config.registrar is None
    assert [str(listen) for listen in config.listens] == ["tcp:127.0.0.1:0"]
    assert (config.username, config.password) == ("alice", "secret")
    assert config.encrypt is False and config.require_signatures is True
    with pytest.raises(ValueError, match="not a SIP address"):
        AccountSettings(aor="alice@example.test").validate()
    with pytest.raises(ValueError):
        AccountSettings(aor="sip:a@x.test", listen=["carrier-pigeon"]).validate()


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"\x30" + b)),
    ctype=st.sampled_from(
        [None, "application/pkcs7-mime", "multipart/signed; boundary=x", "text/plain"]
    ),
)
def test_any_received_body_gives_words_not_an_exception(body, ctype):
    assert isinstance(cms_structure(body, ctype), str)
    head, rest, _ = split_sip(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Type: x\r\n\r\n" + body)
    assert head.startswith("MESSAGE") and rest == body


def test_painting_does_not_use_up_none(qapp):
    """PySide6 6.12 on Python 3.11 drops a reference to None on every void call; the
    window must survive hours of painting all the same."""
    import sys

    from PySide6.QtGui import QColor, QPainter, QPixmap

    from messenger.gui.compat import binding_drops_none_references, keep_none_alive

    applied = keep_none_alive()
    if sys.version_info < (3, 12) and binding_drops_none_references():
        assert applied and sys.getrefcount(None) > 1 << 59
    pixmap = QPixmap(8, 8)
    painter = QPainter(pixmap)
    for _ in range(50_000):  # far more void calls than None has references without help
        painter.setPen(QColor(1, 2, 3))
    painter.end()
    assert sys.getrefcount(None) > 1000


# ---- the layer rule of the window (../shared/design/architecture.md) ---------------------

#: What `messenger/gui/` may import from the product: the user agent, its own modules, the
#: package itself (its version), and the report and verdict *types*.
GUI_MAY_IMPORT = ("messenger.gui", "messenger.ua")
GUI_MAY_IMPORT_TYPES_FROM = ("messenger.smime.report", "messenger.pki.verdict")


def layer_violations(source: str, where: str = "<source>") -> list[str]:
    """Every import in ``source`` (a module under messenger/gui) that crosses the layer
    rule, in words; [] when there is none."""
    import ast
    import importlib
    import importlib.util

    found: list[str] = []

    def allowed_module(name: str) -> bool:
        return any(name == m or name.startswith(m + ".") for m in GUI_MAY_IMPORT)

    def check(module: str, names: list[str] | None, line: int) -> None:
        if not (module == "messenger" or module.startswith("messenger.")):
            return  # the standard library, Qt and other libraries are not layers of ours
        if allowed_module(module):
            return
        if module == "messenger":
            for name in names or ["*"]:
                target = f"messenger.{name}"
                is_module = name == "*" or importlib.util.find_spec(target) is not None
                if is_module and not allowed_module(target):
                    found.append(f"{where}:{line}: imports {target}")
            if names is None:
                found.append(f"{where}:{line}: imports the whole messenger package")
            return
        if module in GUI_MAY_IMPORT_TYPES_FROM and names:
            loaded = importlib.import_module(module)
            for name in names:
                if not isinstance(getattr(loaded, name, None), type):
                    found.append(f"{where}:{line}: imports {module}.{name}, which is not a type")
            return
        found.append(f"{where}:{line}: imports {module}")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check(alias.name, None, node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            check(node.module, [a.name for a in node.names], node.lineno)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
        ):
            check(node.args[0].value, None, node.lineno)
    return found


def test_the_window_imports_only_the_user_agent():
    from pathlib import Path

    gui = Path(__file__).resolve().parents[2] / "messenger" / "gui"
    files = sorted(gui.rglob("*.py"))
    assert len(files) >= 10
    problems: list[str] = []
    for path in files:
        problems += layer_violations(path.read_text(encoding="utf-8"), path.name)
    assert problems == []


@pytest.mark.parametrize(
    "line",
    [
        "from messenger.pki.identity import load_identity",
        "from messenger.pki.verdict import certificate_sha256",
        "from messenger.smime.inspect import describe",
        "import messenger.sip.message",
        "from messenger.msrp import frame",
        "from messenger.net.sip_transport import Peer",
        "from messenger.im.cpim import CpimMessage",
        "from messenger import pki",
        "importlib.import_module('messenger.smime.protect')",
        "def f():\n    from messenger.net import sip_transport",
    ],
)
def test_the_layer_check_catches_each_crossing(line):
    assert layer_violations(line), line


@pytest.mark.parametrize(
    "line",
    [
        "from messenger.ua.identities import certificate_sha256",
        "from messenger.ua import events as ev",
        "from messenger.gui.states import StateStyle",
        "from messenger.pki.verdict import Authenticity, CertificateSummary",
        "from messenger.smime.report import Confidentiality",
        "from messenger import __version__",
        "from PySide6.QtCore import Qt",
        "from .states import StateStyle",
    ],
)
def test_the_layer_check_lets_the_allowed_imports_through(line):
    assert layer_violations(line) == []


# ---- the identity page goes through the user agent ---------------------------------------


def _wizard(qtbot, tmp_path, aor="sip:alice@example.test") -> FirstRunWizard:
    """A wizard with its identity page filled in up to the source of the certificate
    (the page lives as long as the wizard: keep the wizard)."""
    wizard = FirstRunWizard(tmp_path / "profile")
    qtbot.addWidget(wizard)
    page = wizard.identity_page
    page.aor.setText(aor)
    page.passphrase.setText("correct horse")
    page.repeat.setText("correct horse")
    return wizard


def test_identity_page_issues_from_a_ca_folder(qtbot, tmp_path):
    from messenger.pki.authority import create_authority, save_authority

    ca = create_authority("Wizard Test CA", now=NOW)
    save_authority(ca, tmp_path / "ca", b"ca secret", now=NOW)
    wizard = _wizard(qtbot, tmp_path)
    page = wizard.identity_page
    page.issue.setChecked(True)
    page.ca_folder.setText(str(tmp_path / "ca"))
    page.ca_passphrase.setText("not the ca secret")
    assert not page.validatePage()
    assert page.error.text().startswith("Wrong passphrase: the CA key in")
    assert "type the CA's passphrase again" in page.error.text()
    page.ca_folder.setText(str(tmp_path / "nowhere"))
    assert not page.validatePage() and "does not exist" in page.error.text()
    page.ca_folder.setText(str(tmp_path / "ca"))
    page.ca_passphrase.setText("ca secret")
    assert page.validatePage(), page.error.text()
    assert page.identity.uris == ("sip:alice@example.test",)
    assert page.identity.certificate.issuer == ca.certificate.subject


def test_identity_page_imports_pkcs12_and_says_what_is_wrong(qtbot, tmp_path):
    from messenger.pki.identity import identity_to_pkcs12

    bob = create_identity("sip:bob@example.test", now=NOW)
    (tmp_path / "bob.p12").write_bytes(identity_to_pkcs12(bob, b"p12 secret"))
    wizard = _wizard(qtbot, tmp_path)
    page = wizard.identity_page
    page.import_.setChecked(True)
    page.p12.setText(str(tmp_path / "bob.p12"))
    page.p12_passphrase.setText("wrong")
    assert not page.validatePage()
    assert page.error.text().startswith("Wrong passphrase: bob.p12 did not open")
    page.p12_passphrase.setText("p12 secret")
    assert not page.validatePage()
    assert "is for sip:bob@example.test, not sip:alice@example.test" in page.error.text()
    page.p12.setText(str(tmp_path / "missing.p12"))
    assert not page.validatePage() and "cannot read" in page.error.text()
    wizard = _wizard(qtbot, tmp_path, "sip:bob@example.test")
    page = wizard.identity_page
    page.import_.setChecked(True)
    page.p12.setText(str(tmp_path / "bob.p12"))
    page.p12_passphrase.setText("p12 secret")
    assert page.validatePage(), page.error.text()
    assert page.identity.certificate == bob.certificate
    page.aor.setText("bob at example")
    assert not page.validatePage() and "is not a SIP address" in page.error.text()
