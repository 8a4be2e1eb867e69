"""The user agent's durable store (messenger/ua/store.py)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from messenger.ua import store as store_mod
from messenger.ua.store import (
    DB_FILENAME,
    SCHEMA_VERSION,
    ConversationSummary,
    MessageStore,
    StoredMessage,
    StoreError,
    UnknownMessageError,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"
CAROL = "sip:carol@example.org"


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def store(tmp_path: Path):
    s = MessageStore.open(tmp_path / "profile")
    yield s
    s.close()


def out(store: MessageStore, n: int, *, peer: str = BOB, at: datetime | None = None, **kw):
    return store.add_outgoing(
        peer=peer,
        local=ALICE,
        message_id=f"out-{n}",
        content_type="text/plain",
        content=f"hello {n}".encode(),
        at=at or t(n),
        **kw,
    )


def inc(store: MessageStore, n: int, *, peer: str = BOB, at: datetime | None = None, **kw):
    kw.setdefault("report", {"authenticity": "verified", "confidentiality": "encrypted"})
    return store.add_incoming(
        peer=peer,
        local=ALICE,
        message_id=kw.pop("message_id", f"in-{n}"),
        content_type="text/plain",
        content=kw.pop("content", f"hi {n}".encode()),
        at=at or t(n),
        **kw,
    )


# ---- opening, schema, errors ---------------------------------------------------------


def test_open_creates_the_profile_folder_and_one_history_file_in_wal_mode_with_full_sync(
    tmp_path: Path,
):
    profile = tmp_path / "a" / "profile"
    with MessageStore.open(profile) as s:
        assert s.path == profile / DB_FILENAME
        assert s.path.is_file()
        assert s.schema_version == SCHEMA_VERSION
        conn = s._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with sqlite3.connect(profile / DB_FILENAME) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_history_file_and_profile_folder_are_owner_only(tmp_path: Path):
    with MessageStore.open(tmp_path / "p") as s:
        assert stat.S_IMODE(s.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(s.path.parent.stat().st_mode) == 0o700


def test_reopening_keeps_everything(tmp_path: Path):
    with MessageStore.open(tmp_path) as s:
        out(s, 1)
        inc(s, 2)
        s.set_setting("geometry", [1, 2, 3, 4])
    with MessageStore.open(tmp_path) as s:
        assert [m.message_id for m in s.messages(BOB)] == ["out-1", "in-2"]
        assert s.get_setting("geometry") == [1, 2, 3, 4]
        assert s.schema_version == SCHEMA_VERSION


def test_database_from_a_newer_version_is_refused_with_a_clear_message(tmp_path: Path):
    MessageStore.open(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as raw:
        raw.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer version"):
        MessageStore.open(tmp_path)


def test_corrupt_file_is_refused_with_a_clear_message(tmp_path: Path):
    (tmp_path / DB_FILENAME).write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match="corrupt"):
        MessageStore.open(tmp_path)


def test_another_sqlite_database_is_refused(tmp_path: Path):
    with sqlite3.connect(tmp_path / DB_FILENAME) as raw:
        raw.execute("CREATE TABLE something_else (x)")
    with pytest.raises(StoreError, match="not a messenger history"):
        MessageStore.open(tmp_path)


def test_profile_path_that_is_a_file_is_refused(tmp_path: Path):
    (tmp_path / "profile").write_text("x")
    with pytest.raises(StoreError, match="not a folder"):
        MessageStore.open(tmp_path / "profile")


def test_store_in_a_missing_folder_is_refused(tmp_path: Path):
    with pytest.raises(StoreError, match="does not exist"):
        MessageStore(tmp_path / "missing" / DB_FILENAME)


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0,
    reason="needs a non-root POSIX user: root ignores folder permissions "
    "(the next test covers the same check for root)",
)
def test_unwritable_profile_folder_is_refused(tmp_path: Path):
    profile = tmp_path / "ro"
    profile.mkdir()
    profile.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="not writable"):
            MessageStore.open(profile)
    finally:
        profile.chmod(0o700)


def test_profile_folder_without_write_access_is_refused_before_sqlite_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # the real permission check, for root too (root may write anywhere)
    monkeypatch.setattr(store_mod.os, "access", lambda path, mode: False)
    with pytest.raises(StoreError, match=r"profile folder .* is not writable"):
        MessageStore.open(tmp_path)
    assert not (tmp_path / DB_FILENAME).exists()


def test_closed_store_raises_store_error_and_close_is_idempotent(tmp_path: Path):
    s = MessageStore.open(tmp_path)
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(StoreError, match="closed"):
        s.count(BOB)


def test_naive_datetime_is_rejected(store: MessageStore):
    with pytest.raises(ValueError, match="timezone-aware"):
        out(store, 1, at=datetime(2025, 1, 1))


def test_times_round_trip_as_aware_utc_with_microseconds(store: MessageStore):
    at = datetime(2025, 6, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    m = out(store, 1, at=at)
    assert m.at == at
    assert m.at.tzinfo is UTC
    assert m.at.hour == 12


def test_check_integrity_of_a_fresh_store_is_clean(store: MessageStore):
    out(store, 1)
    assert store.check_integrity() == []


# ---- outgoing ------------------------------------------------------------------------


def test_add_outgoing_round_trip_is_pending_and_read(store: MessageStore):
    m = out(store, 1, transport="msrp")
    assert isinstance(m, StoredMessage)
    assert (m.direction, m.peer, m.local, m.message_id) == ("out", BOB, ALICE, "out-1")
    assert (m.content_type, m.content, m.text) == ("text/plain", b"hello 1", "hello 1")
    assert (m.delivery, m.status, m.reason, m.report) == ("pending", None, "", None)
    assert (m.at, m.transport, m.unread) == (t(1), "msrp", False)
    assert store.message("out-1") == m
    assert store.by_rowid(m.rowid) == m


def test_outgoing_message_id_is_unique(store: MessageStore):
    out(store, 1)
    with pytest.raises(StoreError, match="already stored"):
        out(store, 1)
    assert store.count(BOB) == 1


def test_set_delivery_round_trip_with_status_and_reason(store: MessageStore):
    out(store, 1)
    store.set_delivery("out-1", "failed", at=t(5), status=415, reason="Unsupported Media Type")
    m = store.message("out-1")
    assert (m.delivery, m.status, m.reason) == ("failed", 415, "Unsupported Media Type")
    store.set_delivery("out-1", "pending", at=t(6))  # re-send after learning
    assert store.message("out-1").delivery == "pending"
    m = store.message("out-1")  # the last response stays until another one comes
    assert (m.status, m.reason) == (415, "Unsupported Media Type")
    store.set_delivery("out-1", "sent", at=t(7), status=200, reason="OK")
    m = store.message("out-1")
    assert (m.delivery, m.status, m.reason) == ("sent", 200, "OK")


def test_set_delivery_does_not_move_back_from_displayed_or_delivered(store: MessageStore):
    out(store, 1)
    store.set_delivery("out-1", "displayed", at=t(3))
    store.set_delivery("out-1", "delivered", at=t(4))  # IMDNs out of order
    store.set_delivery("out-1", "sent", at=t(5), status=200)  # late 200
    m = store.message("out-1")
    assert (m.delivery, m.status) == ("displayed", 200)


@pytest.mark.parametrize(
    "state", ["pending", "sent", "delivered", "displayed", "failed", "refused"]
)
def test_every_delivery_state_is_accepted(store: MessageStore, state: str):
    out(store, 1)
    store.set_delivery("out-1", state, at=t(2))
    assert store.message("out-1").delivery == state


def test_set_delivery_rejects_unknown_state_and_unknown_message(store: MessageStore):
    out(store, 1)
    with pytest.raises(ValueError, match="unknown delivery state"):
        store.set_delivery("out-1", "lost", at=t(2))
    with pytest.raises(UnknownMessageError):
        store.set_delivery("nope", "sent", at=t(2))
    inc(store, 2)
    with pytest.raises(UnknownMessageError):  # only outgoing messages have a delivery
        store.set_delivery("in-2", "sent", at=t(2))


def test_set_report_round_trip(store: MessageStore):
    out(store, 1)
    report = {"authenticity": "verified", "layers": ["authEnveloped-data", "signed-data"]}
    store.set_report("out-1", report)
    assert store.message("out-1").report == report
    with pytest.raises(UnknownMessageError):
        store.set_report("nope", report)
    with pytest.raises(TypeError, match="not JSON-able"):
        store.set_report("out-1", {"x": object()})


def test_pending_outgoing_lists_only_pending_messages_oldest_first(store: MessageStore):
    out(store, 3, peer=CAROL)
    out(store, 1)
    out(store, 2)
    inc(store, 4)
    store.set_delivery("out-2", "sent", at=t(9))
    assert [m.message_id for m in store.pending_outgoing()] == ["out-1", "out-3"]


# ---- incoming ------------------------------------------------------------------------


def test_add_incoming_round_trip_with_report_and_raw(store: MessageStore):
    report = {"authenticity": "key-changed", "replay": "fresh", "nested": {"a": [1, 2]}}
    m = store.add_incoming(
        peer=BOB,
        local=ALICE,
        message_id="abc",
        content_type="text/plain;charset=utf-8",
        content="grüße".encode(),
        report=report,
        at=t(1),
        raw=b"MESSAGE sip:alice@example.com SIP/2.0\r\n...",
        transport="msrp",
    )
    assert (m.direction, m.peer, m.local, m.message_id) == ("in", BOB, ALICE, "abc")
    assert (m.text, m.report, m.delivery, m.transport) == ("grüße", report, "received", "msrp")
    assert m.unread and m.read_at is None
    assert store.raw(m.rowid).startswith(b"MESSAGE ")
    assert store.by_rowid(m.rowid) == m
    assert store.message("abc") == m


def test_add_incoming_without_message_id_or_content(store: MessageStore):
    m = store.add_incoming(
        peer=BOB,
        local=ALICE,
        message_id=None,
        content_type=None,
        content=None,
        report={"confidentiality": "undecipherable"},
        at=t(1),
    )
    assert (m.message_id, m.content, m.text, m.content_type) == (None, None, "", None)
    assert store.raw(m.rowid) is None


def test_text_decodes_utf8_with_replacement(store: MessageStore):
    m = inc(store, 1, content=b"ok \xff\xfe end")
    assert m.text == "ok \ufffd\ufffd end"


def test_replay_check_finds_a_message_id_per_peer_among_received_messages(store: MessageStore):
    assert not store.has_message_id(BOB, "in-1")
    inc(store, 1)
    assert store.has_message_id(BOB, "in-1")
    assert not store.has_message_id(CAROL, "in-1")
    out(store, 2)
    assert not store.has_message_id(BOB, "out-2")  # our own ids are not replays
    inc(store, 3, report={"replay": "duplicate"}, message_id="in-1")  # duplicates are kept
    assert store.count(BOB) == 3


def test_message_by_id_prefers_the_outgoing_then_the_latest(store: MessageStore):
    a = inc(store, 1, message_id="same")
    b = inc(store, 2, message_id="same", peer=CAROL)
    assert store.message("same") == b
    assert a != b
    c = store.add_outgoing(
        peer=BOB, local=ALICE, message_id="same", content_type="text/plain", content=b"x", at=t(0)
    )
    assert store.message("same") == c
    assert store.message("missing") is None
    assert store.by_rowid(999_999) is None


def test_mark_read_clears_unread_of_one_conversation(store: MessageStore):
    inc(store, 1)
    inc(store, 2)
    inc(store, 3, peer=CAROL)
    store.mark_read(BOB, at=t(10))
    assert [(m.unread, m.read_at) for m in store.messages(BOB)] == [(False, t(10))] * 2
    assert store.messages(CAROL)[0].unread
    store.mark_read(BOB, at=t(20))  # already read: the first reading time stays
    assert store.messages(BOB)[0].read_at == t(10)


# ---- conversations and pages ---------------------------------------------------------


def test_conversation_summary_counts_unread(store: MessageStore):
    assert store.conversations() == []
    inc(store, 1)
    inc(store, 2)
    out(store, 3)
    inc(store, 4, peer=CAROL, report={"authenticity": "sender-mismatch"})
    store.mark_read(CAROL, at=t(5))
    inc(store, 6)
    summaries = store.conversations()
    assert summaries == [
        ConversationSummary(BOB, "hi 6", t(6), 3, "verified"),
        ConversationSummary(CAROL, "hi 4", t(4), 0, "sender-mismatch"),
    ]


def test_conversation_summary_is_the_most_recent_conversation_first(store: MessageStore):
    inc(store, 5, peer=BOB)
    inc(store, 9, peer=CAROL)
    out(store, 1, peer="sip:dave@example.net")
    assert [c.peer for c in store.conversations()] == [CAROL, BOB, "sip:dave@example.net"]


def test_conversation_summary_text_is_the_first_200_characters(store: MessageStore):
    text = "ä€😀" * 300  # 2-, 3- and 4-byte characters
    inc(store, 1, content=text.encode())
    (summary,) = store.conversations()
    assert summary.last_text == text[:200]
    out(store, 2)  # an outgoing message without a report is the last one now
    (summary,) = store.conversations()
    assert (summary.last_text, summary.last_authenticity, summary.unread) == ("hello 2", None, 1)


def test_conversation_last_message_ties_on_time_are_broken_by_insertion_order(
    store: MessageStore,
):
    inc(store, 1, at=t(0), content=b"first")
    inc(store, 2, at=t(0), content=b"second")
    assert store.conversations()[0].last_text == "second"


def test_messages_are_oldest_first_by_time_then_insertion_and_paginated(store: MessageStore):
    inc(store, 3, at=t(3))
    out(store, 1, at=t(1))
    inc(store, 2, at=t(1))  # same time as out-1: inserted later, comes later
    out(store, 0, at=t(0))
    inc(store, 9, peer=CAROL)
    ids = [m.message_id for m in store.messages(BOB)]
    assert ids == ["out-0", "out-1", "in-2", "in-3"]
    assert [m.message_id for m in store.messages(BOB, offset=1, limit=2)] == ["out-1", "in-2"]
    assert store.messages(BOB, offset=4) == []
    assert store.messages("sip:nobody@example.com") == []
    assert store.count(BOB) == 4
    assert store.count(CAROL) == 1
    with pytest.raises(ValueError):
        store.messages(BOB, offset=-1)


def test_bulk_add_incoming_is_one_transaction(store: MessageStore):
    rows = [dict(peer=BOB, local=ALICE, message_id=f"b{i}", at=t(i)) for i in range(10)]
    rows.append(dict(peer=BOB, local=ALICE, message_id="naive", at=datetime(2025, 1, 1)))
    with pytest.raises(ValueError):
        store.bulk_add_incoming(rows)
    assert store.count(BOB) == 0
    assert store.bulk_add_incoming(rows[:10]) == 10
    assert store.count(BOB) == 10


# ---- 100,000 messages -----------------------------------------------------------------

BIG = 100_000


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("big")
    s = MessageStore.open(path)

    def rows():
        for i in range(BIG):
            yield dict(
                peer=BOB,
                local=ALICE,
                message_id=f"m{i:06d}",
                content_type="text/plain",
                content=f"message number {i}".encode(),
                report={"authenticity": "verified"},
                # two messages per second: pairs share a time, order falls back to the id
                at=t(i // 2),
            )
        for i in range(1000):
            yield dict(peer=CAROL, local=ALICE, message_id=f"c{i}", at=t(i))

    assert s.bulk_add_incoming(rows()) == BIG + 1000
    yield s
    s.close()


def test_pagination_over_100000_messages_returns_correct_pages(big_store: MessageStore):
    s = big_store
    assert s.count(BOB) == BIG
    first = s.messages(BOB, limit=100)
    assert [m.message_id for m in first] == [f"m{i:06d}" for i in range(100)]
    middle = s.messages(BOB, offset=50_000, limit=100)
    assert [m.message_id for m in middle] == [f"m{i:06d}" for i in range(50_000, 50_100)]
    last = s.messages(BOB, offset=BIG - 50, limit=100)
    assert [m.message_id for m in last] == [f"m{i:06d}" for i in range(BIG - 50, BIG)]
    assert last[-1].text == f"message number {BIG - 1}"
    assert s.has_message_id(BOB, "m099999")
    assert not s.has_message_id(BOB, "m100000")
    summaries = s.conversations()
    assert [(c.peer, c.unread) for c in summaries] == [(BOB, BIG), (CAROL, 1000)]
    assert summaries[0].last_text == f"message number {BIG - 1}"


def _plans(db: Path, sql: str, params: tuple) -> dict[str, list[str]]:
    """The query plan without statistics and with them (ANALYZE, then rolled back)."""
    raw = sqlite3.connect(db, isolation_level=None)
    try:
        plans = {"no-stats": [r[3] for r in raw.execute("EXPLAIN QUERY PLAN " + sql, params)]}
        raw.execute("BEGIN")
        raw.execute("ANALYZE")
        plans["analyzed"] = [r[3] for r in raw.execute("EXPLAIN QUERY PLAN " + sql, params)]
        raw.execute("ROLLBACK")
    finally:
        raw.close()
    return plans


@pytest.mark.parametrize(
    ("name", "params", "may_sort"),
    [
        ("messages_page", (BOB, 100, 50_000), False),
        ("count", (BOB,), False),
        ("has_message_id", (BOB, "m000001"), False),
        ("unread", (BOB,), False),
        ("mark_read", (0, BOB), False),
        ("pending", (), False),
        ("last_message", (800, BOB), False),
        ("peers", (), False),
        ("message_by_id", ("m000001",), True),  # sorts the few rows with that id
    ],
)
def test_queries_over_100000_messages_use_an_index(
    big_store: MessageStore, name: str, params: tuple, may_sort: bool
):
    for stats, plan in _plans(big_store.path, store_mod._SQL[name], params).items():
        on_messages = [line for line in plan if "messages" in line]
        assert on_messages, (stats, plan)
        for line in on_messages:
            assert "INDEX" in line, (stats, plan)  # never a full table scan
        if not may_sort:
            assert not any("TEMP B-TREE" in line for line in plan), (stats, plan)


# ---- peers ---------------------------------------------------------------------------


def test_learn_certificate_latest_wins_and_history_is_kept(store: MessageStore):
    assert store.certificate(BOB) is None
    assert store.certificate_history(BOB) == []
    store.learn_certificate(BOB, b"\x30\x01cert-1", at=t(1))
    store.learn_certificate(BOB, b"\x30\x01cert-1", at=t(2))  # seen again: no new entry
    store.learn_certificate(BOB, b"\x30\x01cert-2", at=t(3))
    store.learn_certificate(CAROL, b"\x30\x01cert-c", at=t(4))
    assert store.certificate(BOB) == b"\x30\x01cert-2"
    assert store.certificate(CAROL) == b"\x30\x01cert-c"
    assert store.certificate_history(BOB) == [(t(1), b"\x30\x01cert-1"), (t(3), b"\x30\x01cert-2")]


def test_capability_round_trip(store: MessageStore):
    assert store.capability(BOB, "smime") is None
    store.set_capability(BOB, "smime", False, at=t(1), reason="415 Unsupported Media Type")
    assert store.capability(BOB, "smime") is False
    assert store.capability(CAROL, "smime") is None
    store.set_capability(BOB, "smime", True, at=t(2))
    assert store.capability(BOB, "smime") is True
    assert store.capabilities(BOB) == {"smime": (True, t(2), "")}


def test_peer_has_certificate_round_trip_and_reset_when_our_certificate_changes(
    store: MessageStore,
):
    assert store.peer_has_certificate(BOB) is False
    store.set_peer_has_certificate(BOB, at=t(1))
    assert store.peer_has_certificate(BOB) is True
    assert store.peer_has_certificate(CAROL) is False
    store.set_peer_has_certificate(BOB, False, at=t(2), reason="493 Undecipherable")
    assert store.peer_has_certificate(BOB) is False
    store.set_peer_has_certificate(BOB, at=t(3))
    store.set_peer_has_certificate(CAROL, at=t(3))
    store.forget_peers_have_certificate()
    assert not store.peer_has_certificate(BOB)
    assert not store.peer_has_certificate(CAROL)


# ---- trust, events, settings ---------------------------------------------------------


def test_trust_store_round_trip_replaces(store: MessageStore):
    assert store.load_trust() is None
    store.save_trust({"anchors": ["abc"], "pins": {BOB: "ff00"}})
    store.save_trust({"anchors": [], "pins": {BOB: "ee11"}, "decisions": [1]})
    assert store.load_trust() == {"anchors": [], "pins": {BOB: "ee11"}, "decisions": [1]}


def test_event_log_round_trip_since_and_kind(store: MessageStore):
    store.log_event("warning-shown", {"peer": BOB, "state": "key-changed"}, at=t(1))
    store.log_event("trust-decision", {"peer": BOB, "decision": "trust-new-key"}, at=t(2))
    store.log_event("warning-shown", {"peer": CAROL, "state": "unsigned"}, at=t(3))
    events = store.events()
    assert [e["kind"] for e in events] == ["warning-shown", "trust-decision", "warning-shown"]
    assert events[1]["data"] == {"peer": BOB, "decision": "trust-new-key"}
    assert datetime.fromisoformat(events[1]["at"]) == t(2)
    assert [e["data"]["peer"] for e in store.events(since=t(2))] == [BOB, CAROL]
    assert len(store.events(kind="warning-shown")) == 2


def test_export_events_jsonl_is_one_json_object_per_line(store: MessageStore):
    assert store.export_events_jsonl() == ""
    store.log_event("warning-shown", {"text": "Schlüssel geändert\nzweite Zeile"}, at=t(1))
    store.log_event("trust-decision", {"decision": "keep-distrusting"}, at=t(2))
    lines = store.export_events_jsonl().splitlines()
    assert len(lines) == 2
    parsed = [json.loads(line) for line in lines]
    assert parsed == store.events()
    assert parsed[0]["data"]["text"] == "Schlüssel geändert\nzweite Zeile"


def test_settings_round_trip_json_values(store: MessageStore):
    assert store.get_setting("geometry") is None
    assert store.get_setting("geometry", {"w": 800}) == {"w": 800}
    for value in [{"x": 1, "y": [2, 3]}, "sip:bob@example.com", 3, 2.5, True, None, []]:
        store.set_setting("k", value)
        assert store.get_setting("k", "default") == value
    store.delete_setting("k")
    assert store.get_setting("k", "default") == "default"
    with pytest.raises(TypeError):
        store.set_setting("k", {1, 2})


# ---- threads -------------------------------------------------------------------------


def test_store_is_usable_from_several_threads(store: MessageStore):
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                inc(store, i, peer=f"sip:p{n}@example.com", message_id=f"{n}-{i}")
                store.conversations()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    assert [store.count(f"sip:p{n}@example.com") for n in range(4)] == [50] * 4


# ---- what carried a message, and what came beside its protected part ------------------


def test_the_request_is_kept_apart_and_bounded(store: MessageStore):
    from messenger.ua.store import RAW_REQUEST_MAX

    request = b"MESSAGE sip:alice@example.com SIP/2.0\r\nContent-Length: 2\r\n\r\nhi"
    m = inc(store, 1, raw_request=request)
    kept = store.raw_request(m.rowid)
    assert (kept.kind, kept.data, kept.size, kept.truncated) == (
        "sip-request",
        request,
        len(request),
        False,
    )
    big = b"MESSAGE sip:a@b SIP/2.0\r\n\r\n" + b"x" * (RAW_REQUEST_MAX + 10)
    n = inc(store, 2, raw_request=big)
    cut = store.raw_request(n.rowid)
    assert len(cut.data) == RAW_REQUEST_MAX and cut.size == len(big) and cut.truncated
    assert cut.data == big[:RAW_REQUEST_MAX]
    assert store.raw_request(inc(store, 3).rowid) is None
    with pytest.raises(ValueError, match="raw request kind"):
        inc(store, 4, raw_request=b"x", raw_kind="carrier-pigeon")
    assert store.count(BOB) == 3  # the refused row was rolled back with its request


def test_the_request_sent_last_replaces_the_earlier_one(store: MessageStore):
    m = out(store, 1)
    assert store.raw_request(m.rowid) is None
    store.set_delivery("out-1", "pending", at=t(2), status=493, raw_request=b"MESSAGE first")
    store.set_delivery("out-1", "delivered", at=t(3), status=200, raw_request=b"MESSAGE again")
    assert store.raw_request(m.rowid).data == b"MESSAGE again"
    store.set_delivery("out-1", "displayed", at=t(4))  # no request: the kept one stays
    assert store.raw_request(m.rowid).data == b"MESSAGE again"
    store.set_raw_request(m.rowid, b"MSRP abc SEND\r\n", kind="msrp-headers")
    assert store.raw_request(m.rowid).kind == "msrp-headers"
    with pytest.raises(UnknownMessageError):
        store.set_raw_request(999_999, b"MESSAGE nowhere")


def test_batches_keep_each_request_with_its_message(store: MessageStore):
    rows = [
        dict(
            peer=BOB,
            local=ALICE,
            message_id=f"b{i}",
            content_type="text/plain",
            content=b"x",
            report={},
            at=t(i),
            raw_request=f"MESSAGE {i}".encode() if i % 2 else None,
        )
        for i in range(6)
    ]
    rowids = store.add_incoming_batch(rows)
    kept = [store.raw_request(r) for r in rowids]
    assert [k.data if k else None for k in kept] == [
        None,
        b"MESSAGE 1",
        None,
        b"MESSAGE 3",
        None,
        b"MESSAGE 5",
    ]
    assert store.bulk_add_incoming(rows[1:2]) == 1
    newest = max(m.rowid for m in store.messages(BOB))
    assert store.raw_request(newest).data == b"MESSAGE 1"


def test_unprotected_parts_are_stored_with_the_message_and_bounded(store: MessageStore):
    from messenger.ua.store import OUTSIDE_PART_MAX, OUTSIDE_PARTS_MAX, OutsidePart

    m = inc(store, 1, outside=[("text/plain", b"added on the way")])
    assert m.outside == (OutsidePart("text/plain", b"added on the way", 16),)
    assert m.outside[0].describe() == "added on the way"
    assert store.messages(BOB)[0].outside == m.outside  # the conversation page has them
    many = [("application/octet-stream", bytes(OUTSIDE_PART_MAX + 5))] * (OUTSIDE_PARTS_MAX + 3)
    n = inc(store, 2, outside=many)
    assert len(n.outside) == OUTSIDE_PARTS_MAX
    part = n.outside[0]
    assert len(part.content) == OUTSIDE_PART_MAX and part.size == OUTSIDE_PART_MAX + 5
    assert part.truncated and part.describe() == (
        f"(application/octet-stream, {OUTSIDE_PART_MAX + 5} bytes)"
    )
    long_text = inc(store, 3, outside=[("text/plain", b"y" * (OUTSIDE_PART_MAX + 1))])
    assert long_text.outside[0].describe().endswith(f"(cut; {OUTSIDE_PART_MAX + 1} bytes in all)")
    assert inc(store, 4).outside == () and inc(store, 5, outside=[]).outside == ()
    with pytest.raises(TypeError, match="outside part"):
        inc(store, 6, outside=["not a pair"])


def test_a_version_1_history_is_brought_up_to_date(tmp_path: Path):
    folder = tmp_path / "old"
    folder.mkdir()
    raw = sqlite3.connect(folder / DB_FILENAME)
    raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    raw.execute("INSERT INTO schema_version (version) VALUES (1)")
    for statement in store_mod._MIGRATIONS[0]:
        raw.execute(statement)
    raw.execute(
        "INSERT INTO messages (direction, peer, local, message_id, content_type, content, "
        "report, delivery, at_us, transport) VALUES "
        "('in', ?, ?, 'old-1', 'text/plain', X'6869', '{}', 'received', 0, 'sip')",
        (BOB, ALICE),
    )
    raw.commit()
    raw.close()
    with MessageStore.open(folder) as s:
        assert s.schema_version == SCHEMA_VERSION == 2
        (old,) = s.messages(BOB)
        assert (old.text, old.outside) == ("hi", ())
        assert s.raw_request(old.rowid) is None
        s.set_raw_request(old.rowid, b"MESSAGE later")
        assert s.raw_request(old.rowid).data == b"MESSAGE later"
        assert s.check_integrity() == []


def test_a_request_ending_with_the_kept_body_is_written_once(store: MessageStore):
    body = b"\x30\x82binary cms" * 50
    entity = b"Content-Type: application/pkcs7-mime\r\n\r\n" + body
    request = b"MESSAGE sip:alice@example.com SIP/2.0\r\nContent-Length: 550\r\n\r\n" + body
    m = inc(store, 1, raw=entity, raw_request=request)
    assert store.raw_request(m.rowid).data == request
    with store._db("look") as conn:
        head, shared = conn.execute(
            "SELECT data, shared FROM message_raw WHERE message = ?", (m.rowid,)
        ).fetchone()
    assert bytes(head) == request[: -len(body)] and shared == len(body)
    # a request whose body differs from the kept one is written whole
    other = inc(store, 2, raw=entity, raw_request=request[:-1] + b"!")
    assert store.raw_request(other.rowid).data == request[:-1] + b"!"
    rowid = store.add_incoming_batch(
        [
            dict(
                peer=BOB,
                local=ALICE,
                message_id="b",
                content_type=None,
                content=None,
                report={},
                at=t(3),
                raw=entity,
                raw_request=request,
            )
        ]
    )[0]
    assert store.raw_request(rowid).data == request
