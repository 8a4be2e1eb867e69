"""`messenger` with no arguments: the window for the user's own profile."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from messenger import cli
from messenger.gui import app as gui_app
from messenger.gui.main_window import MainWindow
from messenger.gui.wizard import FirstRunWizard
from messenger.pki.identity import create_identity, save_identity
from messenger.ua.profile import IDENTITY_DIR, AccountSettings, save_settings


def _profile(folder, passphrase: bytes | None) -> None:
    identity = create_identity("sip:alice@example.test", now=datetime.now(UTC))
    save_identity(identity, folder / IDENTITY_DIR, passphrase)
    save_settings(
        folder,
        AccountSettings(
            aor="sip:alice@example.test",
            listen=["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
            contacts={"sip:bob@example.test": "tcp:127.0.0.1:9"},
        ),
    )


def _close_window_when_shown(seen: list[str], tries: int = 500) -> None:
    """Close the main window as soon as it is shown (checked on each timer tick)."""
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, MainWindow) and widget.isVisible():
            seen.append(widget.windowTitle())
            widget.close()
            return
    if tries:
        QTimer.singleShot(10, lambda: _close_window_when_shown(seen, tries - 1))


def test_no_arguments_opens_the_window_of_the_profile(qapp, tmp_path, monkeypatch):
    _profile(tmp_path, None)
    monkeypatch.setenv("MESSENGER_PROFILE", str(tmp_path))
    seen: list[str] = []
    QTimer.singleShot(0, lambda: _close_window_when_shown(seen))
    assert cli.main([]) == 0
    assert seen == ["Messenger — alice@example.test"]


def test_a_wrong_passphrase_is_asked_again_in_words(qapp, tmp_path, monkeypatch):
    _profile(tmp_path, b"right passphrase")
    prompts: list[str] = []
    answers = iter(["wrong passphrase", "right passphrase"])

    def get_text(_parent, _title, prompt, _echo):
        prompts.append(prompt)
        return next(answers), True

    monkeypatch.setattr(gui_app.QInputDialog, "getText", staticmethod(get_text))
    seen: list[str] = []
    QTimer.singleShot(0, lambda: _close_window_when_shown(seen))
    assert cli.main(["gui", "--profile", str(tmp_path)]) == 0
    assert len(prompts) == 2 and "does not open your key" in prompts[1]
    assert seen == ["Messenger — alice@example.test"]


def test_first_run_shows_the_wizard(qapp, tmp_path, monkeypatch):
    shown: list[FirstRunWizard] = []

    def exec_(self) -> int:
        shown.append(self)
        return 0  # the user cancels

    monkeypatch.setattr(FirstRunWizard, "exec", exec_)
    assert cli.main(["gui", "--profile", str(tmp_path / "new")]) == 0
    assert len(shown) == 1 and shown[0].folder == tmp_path / "new"
    assert not (tmp_path / "new" / "account.json").exists()


def test_without_a_display_the_demo_says_so(monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(gui_app.sys, "platform", "linux")
    assert cli.main(["demo"]) == 2
    assert "no display" in capsys.readouterr().err
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert gui_app.display_problem() is None
