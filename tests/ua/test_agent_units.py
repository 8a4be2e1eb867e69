"""The pieces of the agent on their own: the incoming pipeline against arbitrary bodies,
group commit, the verdict cache, routing and listen addresses."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.net.sip_transport import Peer
from messenger.pki.trust import CachingTrustStore, TrustStore
from messenger.sip.message import SipRequest
from messenger.ua import pipeline
from messenger.ua.agent import Listen, UserAgent
from messenger.ua.commit import IncomingCommits
from messenger.ua.store import MessageStore, StoreError

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"


def _request(body: bytes, content_type: str) -> SipRequest:
    return SipRequest(
        "MESSAGE",
        BOB,
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1"),
            ("From", f"<{ALICE}>;tag=1"),
            ("To", f"<{BOB}>"),
            ("Call-ID", "c"),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", content_type),
        ],
        body,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=200).map(lambda b: b"\x30\x82\x01\x00" + b),
        st.binary(max_size=200).map(lambda b: b"From: <sip:a@b>\r\nTo: <sip:c@d>\r\n" + b),
    ),
    content_type=st.sampled_from(
        [
            "application/pkcs7-mime; smime-type=signed-data",
            "application/pkcs7-mime; smime-type=authEnveloped-data",
            'multipart/signed; boundary=x; protocol="application/pkcs7-signature"',
            "message/cpim",
            "text/plain",
            "application/pkcs7-signature",
            "image/png",
            "application/pkcs7-mime; x",
        ]
    ),
)
def test_arbitrary_bodies_are_opened_or_refused(pki, body, content_type):
    try:
        opened = pipeline.open_body(
            _request(body, content_type),
            sender=ALICE,
            local_aor=BOB,
            identity=pki.bob,
            trust=TrustStore(),
            at=pki.now,
            known_certificate=None,
            replay_window=timedelta(minutes=10),
            seen=lambda peer, message_id: False,
        )
    except pipeline.Refusal as refusal:
        assert refusal.status in (400, 403, 415, 493)
        assert refusal.words
    else:
        assert opened.report is not None


def _incoming_row(message_id: str) -> dict:
    """The keyword arguments of `MessageStore.add_incoming` for a small text from Alice."""
    return {
        "peer": ALICE,
        "local": BOB,
        "message_id": message_id,
        "content_type": "text/plain",
        "content": b"x",
        "report": {},
        "at": datetime.now(UTC),
    }


def test_group_commit_writes_a_batch_and_answers_each(tmp_path):
    async def body():
        store = MessageStore.open(tmp_path)
        commits = IncomingCommits(MessageStore.open(tmp_path))
        results: list = []
        for index in range(20):
            row = _incoming_row(f"id-{index}")
            commits.add(row, lambda rowid, error, i=index: results.append((i, rowid, error)))
            assert commits.pending(ALICE, f"id-{index}")
        await commits.idle()
        assert [i for i, _, _ in results] == list(range(20))
        assert all(error is None and rowid for _, rowid, error in results)
        assert len({rowid for _, rowid, _ in results}) == 20
        assert not commits.pending(ALICE, "id-0")
        assert store.has_message_id(ALICE, "id-19")
        commits.close()
        commits.store.close()
        store.close()

    asyncio.run(body())


def test_messages_arriving_together_share_one_transaction(tmp_path):
    """The first message waits briefly for others: those added meanwhile, and those added
    while a write is under way, go in as few transactions as that allows."""

    async def body(linger: float) -> list[int]:
        store = MessageStore.open(tmp_path / str(linger))
        batches: list[int] = []
        original = store.add_incoming_batch

        def recording(rows):
            rows = list(rows)
            batches.append(len(rows))
            return original(rows)

        store.add_incoming_batch = recording  # type: ignore[method-assign]
        commits = IncomingCommits(store, linger=linger)
        answered: list[int] = []
        for index in range(5):
            commits.add(
                _incoming_row(f"id-{index}"), lambda rowid, error, i=index: answered.append(i)
            )
            await asyncio.sleep(0)  # a turn of the loop between arrivals
        await commits.idle()
        assert answered == list(range(5))
        assert store.has_message_id(ALICE, "id-4")
        commits.close()
        store.close()
        return batches

    assert asyncio.run(body(0.05)) == [5]
    without = asyncio.run(body(0.0))
    assert without[0] == 1 and sum(without) == 5  # the first one went alone


def test_group_commit_reports_a_store_failure(tmp_path):
    async def body():
        commits = IncomingCommits(MessageStore.open(tmp_path))
        commits.store.close()
        results: list = []
        commits.add(_incoming_row("m"), lambda rowid, error: results.append((rowid, error)))
        await commits.idle()
        assert results[0][0] is None
        assert isinstance(results[0][1], StoreError)
        commits.close()

    asyncio.run(body())


def test_verdict_cache_is_forgotten_when_trust_changes(pki):
    calls = []

    class Counting(CachingTrustStore):
        pass

    store = Counting()
    original = TrustStore.evaluate

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    TrustStore.evaluate = counting
    try:
        store.add_anchor(pki.ca.certificate)
        first = store.evaluate(pki.alice.certificate, sender=ALICE, at=pki.now)
        again = store.evaluate(pki.alice.certificate, sender=ALICE, at=pki.now)
        assert first is again and len(calls) == 1
        # another sender is another question
        other = store.evaluate(pki.alice.certificate, sender=BOB, at=pki.now)
        assert other.authenticity == "sender-mismatch" and len(calls) == 2
        store.distrust(ALICE, pki.alice.certificate, now=pki.now)
        after = store.evaluate(pki.alice.certificate, sender=ALICE, at=pki.now)
        assert len(calls) == 3 and after.authenticity != first.authenticity
        # a question asked past the reuse window is answered afresh
        store.evaluate(pki.alice.certificate, sender=ALICE, at=pki.now + timedelta(minutes=1))
        assert len(calls) == 4
    finally:
        TrustStore.evaluate = original


def test_listen_parse():
    assert Listen.parse("udp:127.0.0.1:5070") == Listen("udp", "127.0.0.1", 5070)
    assert Listen.parse("TLS:[::1]:5061") == Listen("tls", "::1", 5061)
    assert str(Listen("tcp", "::1", 0)) == "tcp:[::1]:0"
    for bad in ("127.0.0.1:5060", "sctp:h:1", "udp:h", "udp:h:99999", "udp::5"):
        with pytest.raises(ValueError, match="udp"):
            Listen.parse(bad)


def test_routing_rules():
    assert UserAgent._uri_peer("sip:bob@127.0.0.1:5070", None) == (
        Peer("udp", "127.0.0.1", 5070),
        False,
    )
    assert UserAgent._uri_peer("sip:p.test;transport=tcp", None) == (
        Peer("tcp", "p.test", 5060),
        True,
    )
    assert UserAgent._uri_peer("sips:bob@h", None) == (Peer("tls", "h", 5061), False)
    assert UserAgent._contact_peer("udp:10.0.0.1:5080", None) == (
        Peer("udp", "10.0.0.1", 5080),
        True,
    )
    assert UserAgent._contact_peer("10.0.0.1:5080", None) == (
        Peer("udp", "10.0.0.1", 5080),
        False,
    )
    assert UserAgent._contact_peer("10.0.0.1:5080", "tcp") == (
        Peer("tcp", "10.0.0.1", 5080),
        True,
    )
