"""The conversation model and view over 100,000 stored messages: paged, never all loaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtCore import Qt

from messenger.gui.conversation_list_model import ConversationListModel, PeerRole
from messenger.gui.conversation_model import ConversationModel, MessageRole
from messenger.gui.main_window import ConversationView
from messenger.ua.store import MessageStore

PEER = "sip:alice@example.test"
LOCAL = "sip:bob@example.test"
COUNT = 100_000
REPORT = {
    "confidentiality": "encrypted",
    "authenticity": "verified",
    "layers": ["authEnveloped-data", "signed-data"],
    "algorithms": [],
    "checks": [],
    "reason": "Signed by sip:alice@example.test.",
}


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    store = MessageStore.open(folder)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    store.bulk_add_incoming(
        {
            "peer": PEER,
            "local": LOCAL,
            "message_id": f"id{i}",
            "content_type": "text/plain",
            "content": f"message {i}".encode(),
            "report": REPORT,
            "at": start + timedelta(seconds=i),
        }
        for i in range(COUNT)
    )
    store.add_incoming(
        peer="sip:carol@example.test",
        local=LOCAL,
        message_id="c1",
        content_type="text/plain",
        content=b"hello from carol",
        report={**REPORT, "authenticity": "unverified-new"},
        at=start + timedelta(days=30),
    )
    yield store
    store.close()


def test_opening_loads_only_the_newest_page(big_store, qtbot):
    model = ConversationModel(big_store)
    model.set_peer(PEER)
    assert model.total() == COUNT
    assert model.rowCount() == ConversationModel.PAGE
    newest = model.data(model.index(model.rowCount() - 1), MessageRole)
    assert newest.text == f"message {COUNT - 1}"
    assert model.data(model.index(0), Qt.ItemDataRole.DisplayRole) == (
        f"message {COUNT - ConversationModel.PAGE}"
    )


def test_scrolling_to_the_top_pages_in_older_messages(big_store, qtbot):
    model = ConversationModel(big_store)
    view = ConversationView(model)
    qtbot.addWidget(view)
    view.resize(600, 400)
    model.set_peer(PEER)
    view.show()
    qtbot.waitExposed(view)
    view.scrollToBottom()
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    for pages in (2, 3):
        with qtbot.waitSignal(model.rowsInserted, timeout=5000):
            bar.setValue(bar.minimum())
        assert model.rowCount() == pages * ConversationModel.PAGE
        # the view kept its place instead of jumping to the new top
        assert bar.value() > bar.minimum()
    assert model.message(0).text == f"message {COUNT - 3 * ConversationModel.PAGE}"
    assert model.total() == COUNT


def test_fetching_every_page_reaches_the_first_message(big_store):
    model = ConversationModel(big_store)
    model.PAGE = 5000
    model.set_peer(PEER)
    while model.can_fetch_older():
        model.fetch_older()
    assert model.rowCount() == COUNT
    assert model.message(0).text == "message 0"


def test_new_messages_are_appended_at_the_end(tmp_path, qtbot):
    store = MessageStore.open(tmp_path)
    model = ConversationModel(store)
    model.set_peer(PEER)
    assert model.rowCount() == 0
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        store.add_incoming(
            peer=PEER,
            local=LOCAL,
            message_id=f"m{i}",
            content_type="text/plain",
            content=f"m{i}".encode(),
            report=REPORT,
            at=at + timedelta(seconds=i),
        )
    with qtbot.waitSignal(model.rowsInserted):
        assert model.refresh_tail() == 3
    assert [model.message(r).text for r in range(3)] == ["m0", "m1", "m2"]
    assert model.refresh_tail() == 0
    store.close()


def test_conversation_list_shows_state_and_unread(big_store):
    model = ConversationListModel(big_store, contacts=["sip:dave@example.test"])
    peers = [model.data(model.index(r), PeerRole) for r in range(model.rowCount())]
    assert peers == ["sip:carol@example.test", PEER, "sip:dave@example.test"]
    carol = model.data(model.index(0), Qt.ItemDataRole.DisplayRole)
    assert "1 unread" in carol and "Not yet verified" in carol
    alice = model.data(model.index(1), Qt.ItemDataRole.AccessibleTextRole)
    assert f"{COUNT} unread" in alice and "Verified" in alice
    assert "No messages yet" in model.data(model.index(2), Qt.ItemDataRole.DisplayRole)
    assert model.data(model.index(0), Qt.ItemDataRole.DecorationRole) is not None
