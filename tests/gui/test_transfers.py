"""File transfers, chat sessions and the MSRP relay setting in the window (pytest-qt,
offscreen, two in-process user agents on loopback)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer

from messenger.demo import ALICE, BOB
from messenger.gui import main_window as main_window_module
from messenger.gui.agent_bridge import AgentBridge
from messenger.gui.main_window import MainWindow
from messenger.gui.states import AUTHENTICITY, CONFIDENTIALITY
from messenger.gui.transfer_delegate import file_row
from messenger.gui.transfers import TransferBook, file_item, human_size, save_copy
from messenger.gui.wizard import AccountForm, AccountSettingsDialog
from messenger.msrp.uri import MsrpUri
from messenger.ua.files import FILE_REFERENCE_TYPE, STOPPED_RECEIVING
from messenger.ua.profile import AccountSettings, account_config, load_settings, save_settings
from messenger.ua.store import StoredMessage

ACCESSIBLE = Qt.ItemDataRole.AccessibleTextRole
MB = 1024 * 1024


def make_window(qtbot, demo, aor: str) -> MainWindow:
    window = MainWindow(AgentBridge(demo.agents[aor]), contacts=[demo.other(aor)])
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def random_file(folder: Path, name: str, size: int) -> Path:
    path = folder / name
    path.write_bytes(os.urandom(size))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Watch:
    """What a window showed for its file rows each time a transfer moved on."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.events: list = []
        self.shown: list = []  # (state, fraction) of the file row, after each event
        self.painted = False
        window.bridge.transfer.connect(self._seen)  # after the window's own handler

    def _seen(self, event) -> None:
        self.events.append(event)
        model = self.window.conversation_model
        for row in range(model.rowCount() - 1, -1, -1):
            message = model.message(row)
            if message.message_id == event.transfer_id:
                item = file_item(message, self.window.transfers)
                if item is not None:
                    self.shown.append((item.state, item.fraction))
                    if item.moving and item.fraction and not self.painted:
                        # the delegate paints the row with its progress bar
                        assert file_row(model.index(row)) is not None
                        assert not self.window.view.grab().isNull()
                        self.painted = True
                break

    def moving(self) -> list:
        return [s for s in self.shown if s[0] in ("sending", "receiving") and 0 < (s[1] or 0) < 1]


def file_rows(window: MainWindow) -> list[tuple[StoredMessage, object]]:
    model = window.conversation_model
    found = []
    for row in range(model.rowCount()):
        message = model.message(row)
        item = file_item(message, window.transfers)
        if item is not None:
            found.append((message, item))
    return found


def send_until_aborted(qtbot, alice: MainWindow, bob: MainWindow, source: Path):
    """Send ``source`` from Alice's window; wait until Bob's side aborted it and Alice's
    send finished. Returns Alice's result."""
    with (
        qtbot.waitSignal(
            bob.bridge.transfer,
            check_params_cb=lambda e: e.direction == "in" and e.state == "aborted",
            timeout=60000,
        ),
        qtbot.waitSignal(alice.fileFinished, timeout=60000) as finished,
    ):
        alice.send_file(source)
    return finished.args[0]


def assert_nothing_kept(bob: MainWindow, received: list) -> None:
    """Nothing of an aborted file was presented, written to downloads or stored."""
    assert received == []
    downloads = bob.agent.config.downloads
    assert not downloads.exists() or list(downloads.iterdir()) == []
    assert not any(m.content_type == FILE_REFERENCE_TYPE for m in bob.store.messages(ALICE))


def test_a_file_sent_from_alices_window_arrives_verified_in_bobs(
    demo, qtbot, tmp_path, monkeypatch
):
    alice = make_window(qtbot, demo, ALICE)
    bob = make_window(qtbot, demo, BOB)
    source = random_file(tmp_path, "report.pdf", 3 * MB + 17)
    sender, receiver = Watch(alice), Watch(bob)
    monkeypatch.setattr(
        main_window_module.QFileDialog,
        "getOpenFileName",
        staticmethod(lambda *a, **k: (str(source), "")),
    )
    assert alice.composer.file_button.accessibleName() == "Send a file"
    assert alice.send_file_action.shortcut().toString() == "Ctrl+Shift+F"
    with (
        qtbot.waitSignal(bob.bridge.messageReceived, timeout=30000) as received,
        qtbot.waitSignal(alice.fileFinished, timeout=30000) as finished,
    ):
        alice.send_file_action.trigger()  # the composer's mode: sign and encrypt
    result = finished.args[0]
    assert result.delivered and result.signed and result.encrypted, result
    event = received.args[0]
    assert event.filename == "report.pdf" and event.transport == "msrp"

    # progress on both sides, shown on the file row while it moved
    assert sender.moving(), sender.shown
    assert receiver.moving(), receiver.shown
    assert sender.painted and receiver.painted
    # once all of it arrived, Bob's row says it is being checked, not yet received
    assert ("checking", 1.0) in receiver.shown, receiver.shown
    assert [e.state for e in sender.events][-1] == "complete"
    assert [e.state for e in receiver.events][-1] == "complete"

    # Bob's row: the received file, with its security states like a message
    qtbot.waitUntil(lambda: any(i.state == "received" for _, i in file_rows(bob)))
    [(message, item)] = file_rows(bob)
    assert message.content_type == FILE_REFERENCE_TYPE and message.rowid > 0
    assert item.filename == "report.pdf" and item.size == source.stat().st_size
    assert item.can_save and not item.can_cancel
    model = bob.conversation_model
    row = model.row_of(message.rowid)
    spoken = model.data(model.index(row), ACCESSIBLE)
    assert "report.pdf" in spoken and human_size(item.size) in spoken
    assert CONFIDENTIALITY["encrypted"].accessible in spoken
    assert AUTHENTICITY["verified"].accessible in spoken
    drawn = file_row(model.index(row))
    assert drawn is not None and drawn.protected
    assert [s.words for s in drawn.states] == ["Encrypted", "Verified sender"]
    assert bob.view.indexWidget(model.index(row)) is None  # painted, no widget
    assert model.rowCount() == model.total()  # no live row is left behind

    # the conversation lists name the file as a person would, with the security words
    bob.list_model.reload()
    listed = bob.list_model.data(bob.list_model.index(bob.list_model.row_of(ALICE)))
    assert f"File: report.pdf ({human_size(source.stat().st_size)})" in listed
    assert AUTHENTICITY["verified"].words in listed and "file:" not in listed
    alice.list_model.reload()
    listed = alice.list_model.data(alice.list_model.index(alice.list_model.row_of(BOB)))
    assert "File: report.pdf (3.0 MB)" in listed and "file:" not in listed

    # Alice's row: delivered, with what was applied
    [(sent, sent_item)] = file_rows(alice)
    assert sent_item.state == "delivered" and sent_item.filename == "report.pdf"
    shown = file_row(alice.conversation_model.index(alice.conversation_model.row_of(sent.rowid)))
    assert [s.words for s in shown.states] == ["Encrypted", "Signed by you"]

    # Save as writes the same bytes where the user chooses
    target = tmp_path / "chosen" / "copy.pdf"
    target.parent.mkdir()
    monkeypatch.setattr(
        main_window_module.QFileDialog,
        "getSaveFileName",
        staticmethod(lambda *a, **k: (str(target), "")),
    )
    assert bob.save_action.shortcut().toString() == "Ctrl+S"
    with qtbot.waitSignal(bob.fileSaved, timeout=15000) as saved:
        bob.save_action.trigger()
    assert saved.args[0] == str(target)
    assert sha(target) == sha(source)
    assert [p.name for p in target.parent.iterdir()] == ["copy.pdf"]  # nothing half-written


@pytest.fixture
def choose_file(monkeypatch):
    chosen: list[Path] = []
    monkeypatch.setattr(
        main_window_module.QFileDialog,
        "getOpenFileName",
        staticmethod(lambda *a, **k: (str(chosen[-1]), "")),
    )
    return chosen


def test_the_protection_mode_applies_to_the_file(demo, qtbot, tmp_path, choose_file):
    alice = make_window(qtbot, demo, ALICE)
    bob = make_window(qtbot, demo, BOB)
    alice.composer.set_mode("sign")
    assert "not encrypted" in alice.composer.plan_label.text()
    source = random_file(tmp_path, "notes.txt", 40_000)
    choose_file.append(source)
    with (
        qtbot.waitSignal(bob.bridge.messageReceived, timeout=30000) as received,
        qtbot.waitSignal(alice.fileFinished, timeout=30000) as finished,
    ):
        # the button asks for a file; the window sends the chosen one
        qtbot.mouseClick(alice.composer.file_button, Qt.MouseButton.LeftButton)
    assert finished.args[0].signed and not finished.args[0].encrypted
    report = received.args[0].report
    assert report["confidentiality"] == "plaintext" and report["authenticity"] == "verified"
    qtbot.waitUntil(lambda: bool(file_rows(bob)))
    message, _item = file_rows(bob)[-1]
    drawn = file_row(bob.conversation_model.index(bob.conversation_model.row_of(message.rowid)))
    assert [s.words for s in drawn.states][1] == "Verified sender"
    assert drawn.states[0].words == CONFIDENTIALITY["plaintext"].words


def test_cancel_mid_transfer_is_clear_on_both_sides(demo, qtbot, tmp_path):
    alice = make_window(qtbot, demo, ALICE)
    bob = make_window(qtbot, demo, BOB)
    source = random_file(tmp_path, "big.bin", 24 * MB)
    received: list = []
    bob.bridge.messageReceived.connect(received.append)
    cancelled: list[bool] = []

    def on_progress(event) -> None:
        running = event.direction == "out" and event.state == "running" and event.done > 0
        if running and not cancelled:
            # the keyboard action cancels the file being sent
            alice.cancel_action.trigger()
            cancelled.append(True)

    alice.bridge.transfer.connect(on_progress)
    assert alice.cancel_action.shortcut().toString() == "Ctrl+Shift+X"
    result = send_until_aborted(qtbot, alice, bob, source)
    assert cancelled and not result.delivered and "cancelled" in result.explanation

    # Alice: the row says it was cancelled, in words, with what to do
    [(_, item)] = file_rows(alice)
    assert item.state == "cancelled" and not item.can_cancel
    assert "discard" in item.words and "Send the file again" in item.words

    # Bob: a row that says so; nothing is presented as received, nothing kept
    qtbot.waitUntil(lambda: any(i.state == "cancelled" for _, i in file_rows(bob)))
    [(message, item)] = file_rows(bob)
    assert message.rowid < 0 and not item.can_save and item.path is None
    assert "Nothing of it was kept" in item.words
    model = bob.conversation_model
    spoken = model.data(model.index(model.rowCount() - 1), ACCESSIBLE)
    assert "Cancelled" in spoken and "Verified" not in spoken
    assert_nothing_kept(bob, received)
    assert not bob.save_file_as(message, tmp_path / "nothing.bin")
    assert not (tmp_path / "nothing.bin").exists()
    # the row can be removed from the view
    assert bob.transfers.dismiss(message.message_id)
    assert file_rows(bob) == []


def test_the_receiver_cancels_from_its_window(demo, qtbot, tmp_path):
    alice = make_window(qtbot, demo, ALICE)
    bob = make_window(qtbot, demo, BOB)
    source = random_file(tmp_path, "holiday.mov", 24 * MB)
    received: list = []
    bob.bridge.messageReceived.connect(received.append)
    shown: list = []  # Bob's row when he cancelled

    def on_progress(event) -> None:
        arriving = event.direction == "in" and event.state == "running"
        if arriving and 0 < event.done < (event.total or 0) and not shown:
            [(_, item)] = file_rows(bob)
            shown.append(item)
            # the person presses Ctrl+Shift+X once the window got back to its loop
            QTimer.singleShot(0, bob.cancel_action.trigger)

    bob.bridge.transfer.connect(on_progress)
    result = send_until_aborted(qtbot, alice, bob, source)
    [arriving] = shown
    assert arriving.state == "receiving" and arriving.can_cancel and "Cancel" in arriving.words

    # Alice: the receiver stopped it, in words, with what to do
    assert not result.delivered and result.status == 413
    assert STOPPED_RECEIVING in result.explanation
    [(_, item)] = file_rows(alice)
    assert item.state == "stopped" and not item.can_cancel and not item.can_save
    assert "Stopped by bob@example.test" in item.words and "Send it again" in item.words
    model = alice.conversation_model
    spoken = model.data(model.index(model.rowCount() - 1), ACCESSIBLE)
    assert "Stopped by" in spoken and "Delivered" not in spoken
    assert alice.notice_bar.isVisible() and "holiday.mov" in alice.notice_bar.text.text()

    # Bob: his row says he cancelled it; nothing is presented as received, nothing kept
    qtbot.waitUntil(lambda: any(i.state == "cancelled" for _, i in file_rows(bob)))
    [(message, item)] = file_rows(bob)
    assert message.rowid < 0 and not item.can_save and not item.can_cancel
    assert item.path is None and item.words.startswith("You cancelled it after")
    assert "nothing of it was kept" in item.words and "send no more" in item.words
    model = bob.conversation_model
    spoken = model.data(model.index(model.rowCount() - 1), ACCESSIBLE)
    assert "You cancelled it" in spoken and "Verified" not in spoken
    assert file_row(model.index(model.rowCount() - 1)).states is None
    assert not bob.view.grab().isNull()  # the row paints
    assert_nothing_kept(bob, received)
    # nothing left to cancel
    bob.cancel_action.trigger()
    assert "No file is being sent or received" in bob.statusBar().currentMessage()


def test_the_conversation_list_names_files_in_words(tmp_path, qtbot):
    from datetime import UTC, datetime

    from messenger.gui.conversation_list_model import ConversationListModel
    from messenger.ua.files import file_reference
    from messenger.ua.store import MessageStore

    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(bytes(3 * MB + 200_000))
    store = MessageStore(tmp_path / "messages.sqlite")
    try:
        at = datetime.now(UTC)
        store.add_incoming(
            peer=BOB,
            local=ALICE,
            message_id="f1",
            content_type=FILE_REFERENCE_TYPE,
            content=file_reference(photo),
            report={"confidentiality": "encrypted", "authenticity": "verified"},
            at=at,
            transport="msrp",
        )
        carol = "sip:carol@example.test"
        gone = tmp_path / "gone.bin"
        store.add_outgoing(
            peer=carol,
            local=ALICE,
            message_id="f2",
            content_type=FILE_REFERENCE_TYPE,
            content=file_reference(gone),
            at=at,
            transport="msrp",
        )
        dave = "sip:dave@example.test"
        store.add_incoming(  # text that merely looks like a file reference stays text
            peer=dave,
            local=ALICE,
            message_id="t1",
            content_type="text/plain",
            content=photo.as_uri().encode(),
            report={"confidentiality": "encrypted", "authenticity": "verified"},
            at=at,
        )
        model = ConversationListModel(store)
        shown = {model.peer(r): model.data(model.index(r)) for r in range(model.rowCount())}
        spoken = {
            model.peer(r): model.data(model.index(r), ACCESSIBLE) for r in range(model.rowCount())
        }
        assert shown[BOB].splitlines()[1] == (
            f"{AUTHENTICITY['verified'].words} · File: holiday.jpg (3.2 MB)"
        )
        assert "last message: File: holiday.jpg (3.2 MB)" in spoken[BOB]
        assert AUTHENTICITY["verified"].accessible in spoken[BOB]
        assert shown[carol].endswith("· File: gone.bin") and "file:" not in shown[carol]
        assert "· file:///" in shown[dave] and "File:" not in shown[dave]
    finally:
        store.close()


def test_chat_session_carries_the_messages(demo, qtbot):
    alice = make_window(qtbot, demo, ALICE)
    bob = make_window(qtbot, demo, BOB)
    assert alice.chat_action.text() == "Start chat &session"
    with qtbot.waitSignal(alice.sessionChanged, timeout=15000) as changed:
        alice.chat_action.trigger()
    assert changed.args == [BOB, True]
    assert alice.composer.session_label.isVisible()
    assert alice.chat_action.text() == "End the chat &session"
    with (
        qtbot.waitSignal(bob.bridge.messageReceived, timeout=15000) as received,
        qtbot.waitSignal(alice.sendFinished, timeout=15000) as sent,
    ):
        alice.composer.edit.setPlainText("over the session")
        qtbot.keyClick(alice.composer.edit, Qt.Key.Key_Return)
    assert sent.args[0].delivered
    event = received.args[0]
    assert event.transport == "msrp" and event.content == b"over the session"
    assert event.report["authenticity"] == "verified"
    with qtbot.waitSignal(alice.sessionChanged, timeout=15000) as changed:
        alice.chat_action.trigger()
    assert changed.args == [BOB, False]
    assert not alice.composer.session_label.isVisible()


def test_the_msrp_relay_setting_round_trips_and_is_used(demo, qtbot, tmp_path):
    relay = "msrps://relay.example.test:2855;tcp"
    form = AccountForm()
    qtbot.addWidget(form)
    assert form.msrp_relay.accessibleName() == "MSRP relay URI"
    form.msrp_relay.setText(relay)
    settings = form.settings(ALICE)
    assert settings.msrp_relay == relay
    save_settings(tmp_path, settings)
    assert json.loads((tmp_path / "account.json").read_text())["msrp_relay"] == relay
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / "cert.pem").write_bytes(b"")
    loaded = load_settings(tmp_path)
    assert loaded is not None and loaded.msrp_relay == relay
    again = AccountForm(loaded)
    qtbot.addWidget(again)
    assert again.msrp_relay.text() == relay

    # the agent of the profile routes its sessions through it
    agent = demo.agents[ALICE]
    config = account_config(tmp_path, loaded, agent.identity)
    assert config.msrp_relay == relay
    assert config.downloads == tmp_path / "received"

    # the window applies it to the sessions started from now on
    alice = make_window(qtbot, demo, ALICE)
    alice.apply_account_settings(loaded)
    assert alice.agent.sessions.relay == MsrpUri.parse(relay)
    assert relay in alice.statusBar().currentMessage()
    alice.apply_account_settings(AccountSettings(aor=ALICE))
    assert alice.agent.sessions.relay is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("relay.example.test:2855", "is not an MSRP URI"),
        ("msrp://relay.example.test:2855", "transport parameter is missing"),
        ("msrp://relay.example.test:2855/abcd;tcp", "names a session"),
    ],
)
def test_a_bad_relay_is_refused_with_words(qtbot, tmp_path, text, words):
    settings = AccountSettings(aor=ALICE)
    dialog = AccountSettingsDialog(tmp_path, settings)
    qtbot.addWidget(dialog)
    dialog.form.msrp_relay.setText(text)
    dialog.accept()
    shown = dialog.form.error.text()
    assert shown.startswith("Not saved:") and words in shown and "msrps://" in shown
    assert not (tmp_path / "account.json").exists()
    with pytest.raises(ValueError, match="MSRP relay"):
        AccountSettings(aor=ALICE, msrp_relay=text).validate()


def test_a_message_that_looks_like_a_file_never_points_outside_downloads(tmp_path):
    from datetime import UTC, datetime

    downloads = tmp_path / "received"
    downloads.mkdir()
    inside = downloads / "photo.jpg"
    inside.write_bytes(b"jpeg")
    outside = tmp_path / "account.json"
    outside.write_bytes(b"{}")
    book = TransferBook(downloads)

    def row(path: Path, direction: str = "in") -> StoredMessage:
        return StoredMessage(
            rowid=1,
            direction=direction,
            peer=BOB,
            local=ALICE,
            message_id="m1",
            content_type=FILE_REFERENCE_TYPE,
            content=(path.as_uri() + "\r\n").encode(),
            report={"confidentiality": "plaintext", "authenticity": "verified"},
            delivery="received",
            status=None,
            reason="",
            at=datetime.now(UTC),
            transport="msrp",
        )

    item = file_item(row(inside), book)
    assert item is not None and item.can_save and item.size == 4
    assert file_item(row(outside), book) is None
    assert file_item(row(downloads / ".." / "account.json"), book) is None
    # without a transfer book (the window has none) nothing is a file
    assert file_item(row(inside), None) is None
    # a sent file that was never finished says so
    sent = row(outside, "out")
    sent = StoredMessage(**{**sent.__dict__, "delivery": "pending"})
    item = file_item(sent, book)
    assert item is not None and item.state == "interrupted" and "Send the file again" in item.words
    assert human_size(512) == "512 bytes" and human_size(3 * MB + 200_000) == "3.2 MB"


def test_save_copy_writes_whole_or_nothing(tmp_path):
    source = random_file(tmp_path, "a.bin", 300_000)
    assert save_copy(source, tmp_path / "b.bin") == 300_000
    assert sha(tmp_path / "b.bin") == sha(source)
    with pytest.raises(OSError):
        save_copy(source, tmp_path / "missing-folder" / "c.bin")
    with pytest.raises(OSError):
        save_copy(tmp_path / "no-such-file", tmp_path / "d.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]


def test_the_window_sends_through_the_relay_it_was_given(demo, qtbot, tmp_path):
    """With a relay in the account settings, the window's sessions go through it: here
    one that nobody answers, and the row and the notice say so in words."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nobody listens there
    alice = make_window(qtbot, demo, ALICE)
    alice.apply_account_settings(
        AccountSettings(aor=ALICE, msrp_relay=f"msrp://127.0.0.1:{port};tcp")
    )
    source = random_file(tmp_path, "via-relay.bin", 10_000)
    with qtbot.waitSignal(alice.fileFinished, timeout=30000) as finished:
        alice.send_file(source)
    result = finished.args[0]
    assert not result.delivered
    assert f"127.0.0.1:{port}" in result.explanation and "relay" in result.explanation
    [(_, item)] = file_rows(alice)
    assert item.state == "failed" and "Send the file again" in item.words
    assert alice.notice_bar.isVisible() and "via-relay.bin" in alice.notice_bar.text.text()
