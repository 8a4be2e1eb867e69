"""Starting the window: the Qt application, the qasync loop, and the user's own profile.

`messenger` with no arguments calls `main_profile()`: the first-run wizard when the
profile is new, the passphrase prompt otherwise, then the window over a user agent on
the same event loop (qasync runs asyncio on Qt's loop, so agent events arrive on the GUI
thread).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QInputDialog, QLineEdit, QMessageBox

from messenger import __version__
from messenger.gui.resources import app_icon, style_sheet

__all__ = ["create_application", "display_problem", "main_profile", "run_on_qt_loop"]


def display_problem() -> str | None:
    """Why no window can open here, in words; None when a display (or an explicit Qt
    platform such as ``offscreen``) is available."""
    import os

    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset): run it "
        "in a desktop session, or without a screen as QT_QPA_PLATFORM=offscreen messenger "
        "demo --screenshot DIR --quit-after 60 to get a picture of each window"
    )


def create_application(argv: list[str] | None = None) -> QApplication:
    """The one QApplication, named, with the icon and the style sheet."""
    app = QApplication.instance()
    if app is None:
        QApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(argv if argv is not None else sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("messenger")
    app.setApplicationDisplayName("Messenger")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("messenger")
    app.setDesktopFileName("io.github.messenger.messenger")
    app.setWindowIcon(app_icon())
    # the coroutine that opened the windows decides when to stop (after the agent stops)
    app.setQuitOnLastWindowClosed(False)
    sheet = style_sheet()
    if sheet:
        app.setStyleSheet(sheet)
    return app


def run_on_qt_loop(app: QApplication, coro: Coroutine[Any, Any, int]) -> int:
    """Run `coro` on an asyncio loop driven by Qt (qasync) until it returns."""
    import qasync

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            return int(loop.run_until_complete(coro))
    finally:
        asyncio.set_event_loop(None)


def _load_identity(folder: Path):
    """The profile's identity, asking for the passphrase until it opens or the user
    cancels (None)."""
    from messenger.ua.identities import IdentityError, WrongPassphrase, load_identity

    try:
        return load_identity(folder, None)
    except WrongPassphrase:
        pass
    except IdentityError as exc:
        QMessageBox.critical(None, "Identity unreadable", f"{_sentence(exc)}.")
        return None
    prompt = f"Passphrase for your key in {folder}:"
    while True:
        text, ok = QInputDialog.getText(
            None, "Unlock your identity", prompt, QLineEdit.EchoMode.Password
        )
        if not ok:
            return None
        try:
            return load_identity(folder, text.encode())
        except WrongPassphrase:
            prompt = (
                "That passphrase does not open your key. Type it again (it is case-"
                "sensitive), or Cancel to quit:"
            )
        except IdentityError as exc:
            QMessageBox.critical(None, "Identity unreadable", f"{_sentence(exc)}.")
            return None


def _sentence(exc: BaseException) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:]


async def _run_window(config, folder: Path, settings) -> int:
    from messenger.gui.agent_bridge import AgentBridge
    from messenger.gui.main_window import MainWindow
    from messenger.ua.agent import UserAgent

    agent = UserAgent(config)
    try:
        await agent.start()
    except (OSError, ValueError) as exc:
        QMessageBox.critical(
            None,
            "Cannot start",
            f"The messenger could not listen on {', '.join(map(str, config.listens))}: {exc}. "
            "Another program may use the port: change the listen addresses in the account "
            "settings (File menu) or in account.json.",
        )
        await agent.stop()
        return 1
    bridge = AgentBridge(agent)
    window = MainWindow(bridge, contacts=list(settings.contacts), profile=folder, settings=settings)
    closed = asyncio.get_running_loop().create_future()
    window.closed.connect(lambda: closed.done() or closed.set_result(None))
    window.show()
    await closed
    await agent.stop()
    return 0


def main_profile(profile: Path | None = None) -> int:
    """Open the window for the user's own profile (the wizard on first run)."""
    from messenger.gui.wizard import FirstRunWizard
    from messenger.ua.profile import (
        IDENTITY_DIR,
        ProfileError,
        account_config,
        default_profile_dir,
        load_settings,
    )

    app = create_application()
    folder = Path(profile) if profile is not None else default_profile_dir()
    try:
        settings = load_settings(folder)
    except ProfileError as exc:
        QMessageBox.critical(None, "Profile unreadable", str(exc))
        return 1
    if settings is None:
        wizard = FirstRunWizard(folder)
        if not wizard.exec():
            return 0
        identity = wizard.identity
        settings = load_settings(folder)
        assert settings is not None
    else:
        identity = _load_identity(folder / IDENTITY_DIR)
        if identity is None:
            return 0
    config = account_config(folder, settings, identity)
    return run_on_qt_loop(app, _run_window(config, folder, settings))
