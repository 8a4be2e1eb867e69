"""The window over two real user agents on loopback (pytest-qt, offscreen)."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from messenger.demo import ALICE, BOB
from messenger.gui.agent_bridge import AgentBridge
from messenger.gui.conversation_model import MessageRole
from messenger.gui.main_window import MainWindow
from messenger.gui.message_delegate import bubble_states
from messenger.gui.security_dialog import CHECKLIST
from messenger.gui.states import AUTHENTICITY, CONFIDENTIALITY, authenticity_style
from messenger.ua.agent import UserAgent
from messenger.ua.simulate import CASES, Simulator

ACCESSIBLE = Qt.ItemDataRole.AccessibleTextRole


def make_window(qtbot, demo, aor: str) -> MainWindow:
    agent = demo.agents[aor]
    other = demo.other(aor)
    simulator = Simulator(agent, peer=other, authority=demo.authority)
    window = MainWindow(AgentBridge(agent), contacts=[other], simulator=simulator)
    window.destroyed.connect(simulator.close)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def last_row(window: MainWindow) -> int:
    return window.conversation_model.rowCount() - 1


def send_from(qtbot, window: MainWindow, text: str):
    with qtbot.waitSignal(window.sendFinished, timeout=15000) as sent:
        window.composer.edit.setPlainText(text)
        qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    return sent.args[0]


def test_exchange_shows_the_verified_bubble(demo, qtbot):
    alice = make_window(qtbot, demo, ALICE)
    bob = make_window(qtbot, demo, BOB)
    assert alice.peer == BOB and bob.peer == ALICE
    assert "encrypted to bob@example.test's certificate" in alice.composer.plan_label.text()
    with qtbot.waitSignal(bob.bridge.messageReceived, timeout=15000) as received:
        result = send_from(qtbot, alice, "Watson, come here")
    assert result.delivered and result.signed and result.encrypted, result
    event = received.args[0]
    assert event.report["confidentiality"] == "encrypted"
    assert event.report["authenticity"] == "verified"

    model = bob.conversation_model
    row = last_row(bob)
    message = model.message(row)
    assert message.text == "Watson, come here"
    spoken = model.data(model.index(row), ACCESSIBLE)
    assert CONFIDENTIALITY["encrypted"].accessible in spoken
    assert AUTHENTICITY["verified"].accessible in spoken
    conf, auth = bubble_states(message, model.expected_to_sign)
    assert (conf.words, auth.words) == ("Encrypted", "Verified sender")
    assert bob.header.state.text().startswith("Last message: Verified sender")
    # the bubble is painted by the delegate (no widget per message)
    assert bob.view.indexWidget(model.index(row)) is None
    assert not bob.view.grab().isNull()
    # the sender's own bubble says what was applied
    sent = alice.conversation_model
    conf, auth = bubble_states(
        sent.message(last_row(alice)),
        False,
        sent.sent_protection[result.message_id],
    )
    assert (conf.words, auth.words) == ("Encrypted", "Signed by you")


STORED = [c for c in CASES if c.key != "tampered"]


@pytest.mark.parametrize("case", STORED, ids=[c.key for c in STORED])
def test_each_simulated_case_shows_its_state(demo, qtbot, case):
    bob = make_window(qtbot, demo, BOB)
    with qtbot.waitSignal(bob.bridge.messageReceived, timeout=15000) as received:
        bob.simulate_actions[case.key].trigger()
    event = received.args[0]
    assert event.report["authenticity"] == case.expected
    bob.open_conversation(event.sender)
    model = bob.conversation_model
    row = model.row_of(event.rowid)
    assert row is not None
    message = model.message(row)
    style = authenticity_style(case.expected, expected_to_sign=model.expected_to_sign)
    assert style.accessible in model.data(model.index(row), ACCESSIBLE)
    assert bubble_states(message, model.expected_to_sign)[1].words == style.words
    if case.key == "unsigned":
        # Alice is known to sign: the unsigned state is the loud one
        assert style.words == "Not signed (this contact signs)" and style.family == "red"
    if case.key == "bad-signature":
        assert "Altered" in style.words
    warnings = bob.agent.store.events(kind="warning-shown")
    assert any(e["data"].get("message_id") == event.message_id for e in warnings)


def test_a_tampered_message_is_refused_and_said_in_words(demo, qtbot):
    bob = make_window(qtbot, demo, BOB)
    rows = bob.conversation_model.rowCount()
    with qtbot.waitSignal(bob.bridge.messageRefused, timeout=15000) as refused:
        bob.simulate_actions["tampered"].trigger()
    event = refused.args[0]
    assert event.status == 400 and event.report["confidentiality"] == "tampered"
    assert bob.notice_bar.isVisible()
    words = bob.notice_bar.text.text()
    assert "was refused (400)" in words and CONFIDENTIALITY["tampered"].words in words
    assert bob.conversation_model.rowCount() == rows  # nothing of it is shown
    shown = bob.agent.store.events(kind="warning-shown")
    assert any("was refused" in e["data"].get("text", "") for e in shown)


def test_key_change_banner_stays_until_decided_and_the_decision_persists(demo, qtbot, arun):
    bob = make_window(qtbot, demo, BOB)
    with qtbot.waitSignal(bob.bridge.messageReceived, timeout=15000) as received:
        bob.simulate_actions["key-changed"].trigger()
    new_sha = received.args[0].report["signer"]["sha256"]
    qtbot.waitUntil(bob.banner.isVisible)
    assert "Key changed" in bob.banner.title.text()
    assert bob.banner.accessibleName() == "Key change warning"

    # closing and opening the window again: still waiting for a decision
    bob.close()
    bob = make_window(qtbot, demo, BOB)
    assert bob.peer == ALICE
    qtbot.waitUntil(bob.banner.isVisible)

    with qtbot.waitSignal(bob.bridge.trustDecided, timeout=5000):
        qtbot.mouseClick(bob.banner.trust_button, Qt.MouseButton.LeftButton)
    assert not bob.banner.isVisible()

    # a full restart of the agent and the window: the decision is still there
    config = demo.agents[BOB].config
    bob.close()
    arun(demo.agents[BOB].stop())
    demo.agents[BOB] = UserAgent(config)
    arun(demo.agents[BOB].start())
    bob = make_window(qtbot, demo, BOB)
    assert bob.peer == ALICE
    assert not bob.banner.isVisible()
    pin = bob.agent.trust.pin_for(ALICE)
    assert pin is not None and pin.sha256 == new_sha
    decisions = bob.agent.store.events(kind="trust-decision")
    assert decisions[-1]["data"] == {"peer": ALICE, "sha256": new_sha, "decision": "trust"}
    shown = [e for e in bob.agent.store.events(kind="warning-shown")]
    assert any(e["data"].get("warning") == "key-changed" for e in shown)


def test_security_dialog_lists_the_algorithms_of_the_report(demo, qtbot):
    alice = make_window(qtbot, demo, ALICE)
    bob = make_window(qtbot, demo, BOB)
    with qtbot.waitSignal(bob.bridge.messageReceived, timeout=15000):
        send_from(qtbot, alice, "What hath God wrought")
    message = bob.conversation_model.message(last_row(bob))
    bob.view.setCurrentIndex(bob.conversation_model.index(last_row(bob)))
    with qtbot.waitSignal(bob.view.securityRequested) as requested:
        qtbot.keyClick(bob.view, Qt.Key.Key_Return)
    assert requested.args[0].rowid == message.rowid
    dialog = bob.open_security(message)
    names = dialog.algorithm_names()
    assert names == [a["name"] for a in message.report["algorithms"]]
    assert len(names) >= 4
    assert any("AES" in n.upper() for n in names)
    first = dialog.layers_list.item(0).text()
    assert first.startswith("1. AuthEnvelopedData") and "outermost" in first
    rows = {label: (outcome, reason) for label, outcome, reason in dialog.checklist()}
    for name, label in CHECKLIST[:6]:
        assert label in rows, name
    assert rows["Signature valid"][0] == "pass"
    assert rows["Signer matches the sender"][0] == "pass"
    assert rows["Not a replay"][0] == "pass"
    assert all(reason for _o, reason in rows.values())
    assert "MESSAGE sip:bob@example.test SIP/2.0" in dialog.raw_edit.toPlainText()
    assert "authenticated_enveloped_data" in dialog.cms_edit.toPlainText()
    dialog.close()


def test_verify_dialog_stores_the_decision(demo, qtbot):
    alice = make_window(qtbot, demo, ALICE)
    dialog = alice.verify_contact()
    assert dialog is not None
    bob_cert = demo.agents[BOB].identity.certificate
    assert dialog.peer_certificate == bob_cert
    with qtbot.waitSignal(alice.bridge.trustDecided):
        qtbot.mouseClick(dialog.match_button, Qt.MouseButton.LeftButton)
    pin = alice.agent.trust.pin_for(BOB)
    assert pin is not None and pin.certificate == bob_cert
    kinds = [e["kind"] for e in alice.agent.store.events()]
    assert "verify-shown" in kinds and "trust-decision" in kinds


def test_usability_log_exports_json_lines(demo, qtbot, tmp_path):
    bob = make_window(qtbot, demo, BOB)
    with qtbot.waitSignal(bob.bridge.messageReceived, timeout=15000):
        bob.simulate_actions["sender-mismatch"].trigger()
    path = tmp_path / "log.jsonl"
    count = bob.export_usability_log(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert count == len(lines) >= 1
    assert all({"at", "kind", "data"} <= set(line) for line in lines)
    assert any(line["data"].get("warning") == "sender-mismatch" for line in lines)


def test_trace_panel_shows_and_filters_sip(demo, qtbot):
    alice = make_window(qtbot, demo, ALICE)
    bob = make_window(qtbot, demo, BOB)
    with qtbot.waitSignal(bob.bridge.messageReceived, timeout=15000):
        send_from(qtbot, alice, "trace me")
    panel = alice.trace_panel
    qtbot.waitUntil(lambda: panel.model.rowCount() >= 2)
    summaries = [panel.model.trace(r).summary for r in range(panel.model.rowCount())]
    assert any(s.startswith("MESSAGE sip:bob@example.test") for s in summaries)
    assert any(s.startswith("SIP/2.0 200") for s in summaries)
    panel.direction.setCurrentIndex(panel.direction.findData("in"))
    assert 0 < panel.visible_rows() < panel.model.rowCount()
    panel.direction.setCurrentIndex(0)
    panel.filter.setText("MESSAGE sip:bob")
    assert panel.visible_rows() == 1
    dialog = panel.open_row(panel.proxy.index(0, 0))
    assert dialog.raw_edit.toPlainText().startswith("MESSAGE sip:bob@example.test SIP/2.0")
    assert "authenticated_enveloped_data" in dialog.decoded_edit.toPlainText()
    dialog.close()


def test_geometry_and_last_conversation_are_remembered(demo, qtbot):
    bob = make_window(qtbot, demo, BOB)
    with qtbot.waitSignal(bob.bridge.messageReceived, timeout=15000) as received:
        bob.simulate_actions["unverified-new"].trigger()
    carol = received.args[0].sender
    bob.open_conversation(carol)
    bob.resize(777, 555)
    bob.close()
    again = make_window(qtbot, demo, BOB)
    assert again.peer == carol
    assert (again.width(), again.height()) == (777, 555)
    assert again.header.name.text() == "carol@example.test"


def test_an_unreachable_contact_is_explained_in_words(demo, qtbot):
    import socket

    alice = make_window(qtbot, demo, ALICE)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    nobody = "sip:nobody@example.test"
    alice.agent.config.contacts[nobody] = f"tcp:127.0.0.1:{port}"
    alice.list_model.add_contact(nobody)
    alice.open_conversation(nobody)
    result = send_from(qtbot, alice, "anyone there?")
    assert not result.delivered
    assert alice.notice_bar.isVisible()
    words = alice.notice_bar.text.text()
    assert words.startswith("Error: Not delivered to nobody@example.test")
    assert len(words) > len("Error: Not delivered to nobody@example.test: ") + 10
    message = alice.conversation_model.message(last_row(alice))
    assert message.delivery == "failed"
    shown = alice.agent.store.events(kind="warning-shown")
    assert any("Not delivered" in e["data"].get("text", "") for e in shown)


def test_every_control_has_a_name_for_assistive_technology(demo, qtbot):
    from PySide6.QtWidgets import (
        QAbstractButton,
        QComboBox,
        QLineEdit,
        QListView,
        QPlainTextEdit,
        QTableView,
    )

    alice = make_window(qtbot, demo, ALICE)
    dialogs = [alice.verify_contact(), alice.show_contact_certificate()]
    for root in (alice, *dialogs):
        for kind in (QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit, QListView, QTableView):
            for widget in root.findChildren(kind):
                if not widget.isVisibleTo(root):
                    continue
                name = widget.accessibleName() or getattr(widget, "text", lambda: "")()
                assert name.replace("&", "").strip(), f"{kind.__name__} without a name in {root}"


def restart(qtbot, demo, arun, window: MainWindow, aor: str) -> MainWindow:
    """Close the window, stop the user agent, start a new one on the same profile and open
    a new window over it: only what the store kept is left."""
    config = demo.agents[aor].config
    window.close()
    arun(demo.agents[aor].stop())
    demo.agents[aor] = UserAgent(config)
    arun(demo.agents[aor].start())
    return make_window(qtbot, demo, aor)


def test_security_dialog_after_a_restart_shows_the_request_and_the_layers(demo, qtbot, arun):
    alice = make_window(qtbot, demo, ALICE)
    bob = make_window(qtbot, demo, BOB)
    with qtbot.waitSignal(bob.bridge.messageReceived, timeout=15000) as received:
        result = send_from(qtbot, alice, "Mr. Watson, come here")
    rowid = received.args[0].rowid
    sent_rowid = alice.agent.store.message(result.message_id).rowid

    bob = restart(qtbot, demo, arun, bob, BOB)
    model = bob.conversation_model
    row = model.row_of(rowid)
    assert row is not None
    message = model.data(model.index(row), MessageRole)
    assert message.text == "Mr. Watson, come here" and message.report["layers"]
    dialog = bob.open_security(message)
    raw = dialog.raw_edit.toPlainText()
    assert raw.startswith("MESSAGE sip:bob@example.test SIP/2.0")
    assert "Content-Type: application/pkcs7-mime" in raw
    assert "[" in raw and "bytes of binary" in raw  # the CMS body, shown in base64
    first = dialog.layers_list.item(0).text()
    assert first.startswith("1. AuthEnvelopedData") and "outermost" in first
    assert dialog.layers_list.count() == len(message.report["layers"])
    assert "authenticated_enveloped_data" in dialog.cms_edit.toPlainText()
    assert dialog.algorithm_names() == [a["name"] for a in message.report["algorithms"]]
    dialog.close()

    # what Bob's dialog shows is what Alice sent, byte for byte, and Alice's own dialog
    # for the sent message shows the same request, from her store
    kept_in = bob.agent.raw_request(rowid)
    kept_out = alice.agent.raw_request(sent_rowid)
    assert kept_in is not None and kept_out is not None and kept_in.data == kept_out.data
    alice = restart(qtbot, demo, arun, alice, ALICE)
    mine = alice.conversation_model.message(alice.conversation_model.row_of(sent_rowid))
    dialog = alice.open_security(mine)
    assert dialog.raw_edit.toPlainText() == raw
    assert "authenticated_enveloped_data" in dialog.cms_edit.toPlainText()
    dialog.close()


def test_a_part_beside_the_signed_one_is_drawn_outside_the_frame_after_a_restart(demo, qtbot, arun):
    from datetime import UTC, datetime

    from PySide6.QtWidgets import QStyleOptionViewItem

    from messenger.gui.message_delegate import outside_parts
    from messenger.im.cpim import CpimMessage, new_message_id
    from messenger.sip.ids import new_branch
    from messenger.sip.message import SipRequest
    from messenger.smime.mime import build_multipart
    from messenger.smime.protect import protect

    bob = make_window(qtbot, demo, BOB)
    now = datetime.now(UTC)
    cpim = CpimMessage.build(
        ALICE,
        [BOB],
        b"the signed words",
        "text/plain;charset=utf-8",
        when=now,
        message_id=new_message_id(),
        disposition=(),
    ).to_bytes()
    signed = protect(
        cpim,
        content_type="message/cpim",
        signer=demo.agents[ALICE].identity,
        signing_time=now,
    )
    mixed = build_multipart(
        "mixed", [b"Content-Type: text/plain\r\n\r\nP.S. added on the way", signed.to_bytes()]
    )
    port = demo.agents[ALICE].addresses["udp"][1]
    request = SipRequest(
        "MESSAGE",
        BOB,
        [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<{ALICE}>;tag=mixed"),
            ("To", f"<{BOB}>"),
            ("Call-ID", f"{new_branch()}@test"),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", mixed.header("Content-Type")),
        ],
        mixed.body,
    ).to_bytes()
    with qtbot.waitSignal(bob.bridge.messageReceived, timeout=15000) as received:
        arun(bob.agent.receive_bytes(request, transport="udp", remote=("127.0.0.1", port)))
    rowid = received.args[0].rowid

    bob = restart(qtbot, demo, arun, bob, BOB)
    bob.open_conversation(ALICE)
    model = bob.conversation_model
    row = model.row_of(rowid)
    assert row is not None
    message = model.message(row)
    assert message.text == "the signed words"
    assert outside_parts(message) == ["P.S. added on the way"]
    option = QStyleOptionViewItem()
    option.initFrom(bob.view)
    option.rect = bob.view.visualRect(model.index(row))
    layout = bob.view.itemDelegate()._layout(option, message, model.expected_to_sign)
    assert layout.outside is not None and layout.outside.top() > layout.bubble.bottom()
    spoken = model.data(model.index(row), ACCESSIBLE)
    assert "unprotected part came with it: P.S. added on the way" in spoken
    assert "P.S." not in message.text  # not inside the frame
    assert bob.agent.raw_request(rowid).data == request
