"""A receiver stops an incoming message part-way (RFC 4975 sections 7.1.2 and 10.5): it
discards what arrived, answers the message's next chunks with 413 and sends a failure
REPORT; the sender stops at once, ends a chunk it is writing with ``#``, and says the
receiver stopped it. Two sans-IO sessions wired in memory."""

from __future__ import annotations

import random

from messenger.msrp.frame import FrameParser, MsrpRequest, MsrpResponse
from messenger.msrp.session import (
    STOPPED_BY_RECEIVER,
    IncomingAborted,
    IncomingMessage,
    IncomingProgress,
    MsrpSession,
    OutgoingDelivered,
    OutgoingFailed,
)
from messenger.msrp.uri import MsrpUri

A = MsrpUri.parse("msrp://alicepc.example.com:7777/iau39soe2843z;tcp")
B = MsrpUri.parse("msrp://bobpc.example.org:8888/9di4eae923wzd;tcp")
RELAY = MsrpUri.parse("msrp://relay.example.net:2855/r3lay5e55ion;tcp")
BODY = random.Random(4975).randbytes(1000)


def pair(a_kw=None, b_kw=None, *, relay: bool = False):
    rng = random.Random(11)
    a_path = [RELAY, B] if relay else [B]
    b_path = [RELAY, A] if relay else [A]
    a = MsrpSession(local_uri=A, to_path=a_path, now=0.0, rng=rng, **(a_kw or {}))
    b = MsrpSession(local_uri=B, to_path=b_path, now=0.0, rng=rng, **(b_kw or {}))
    return a, b


def written(session: MsrpSession, budget: int = 1 << 20) -> bytes:
    out = bytearray()
    while buffers := session.pull(budget):
        for buffer in buffers:
            out += buffer
    return bytes(out)


def frames(data: bytes) -> list:
    return FrameParser(max_body_size=1 << 30).feed(data)


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_refused_message_is_discarded_and_the_report_stops_the_sender() -> None:
    a, b = pair({"chunk_size": 100})
    mid = a.send_message(BODY, "application/octet-stream")
    first = b"".join(bytes(x) for x in a.pull(100))  # exactly the first chunk
    eb = b.feed(first, now=1)
    assert of(eb, IncomingProgress)[0].received == 100
    [ok] = frames(written(b))
    assert isinstance(ok, MsrpResponse) and ok.status == 200
    a.feed(ok.to_bytes(), now=1)

    [aborted] = b.refuse(mid, now=2)
    assert aborted == IncomingAborted(mid, 100, 1000, STOPPED_BY_RECEIVER)
    [report] = frames(written(b))
    assert report.method == "REPORT" and report.message_id == mid
    assert report.status.code == 413 and report.get("Byte-Range") == "1-100/1000"
    assert report.get("To-Path") == str(A)

    ea = a.feed(report.to_bytes(), now=2)
    [failed] = of(ea, OutgoingFailed)
    assert failed.stopped and not failed.cancelled and failed.status == 413
    assert "receiver stopped" in failed.reason
    assert not a.has_output() and written(a) == b""  # not one more chunk
    assert a.next_deadline() is None


def test_next_chunk_is_answered_413_and_the_sender_stops() -> None:
    """The REPORT is lost: the 413 to the next chunk stops the sender just the same."""
    a, b = pair({"chunk_size": 100})
    mid = a.send_message(BODY, "application/octet-stream")
    b.feed(b"".join(bytes(x) for x in a.pull(100)), now=1)
    a.feed(written(b), now=1)  # the 200 of chunk 1
    b.refuse(mid, now=2)
    written(b)  # the REPORT goes nowhere
    second = b"".join(bytes(x) for x in a.pull(100))
    [chunk] = frames(second)
    assert chunk.get("Byte-Range") == "101-200/1000"
    eb = b.feed(second, now=3)
    assert not of(eb, IncomingProgress) and not of(eb, IncomingMessage)
    [answer] = frames(written(b))
    assert isinstance(answer, MsrpResponse) and answer.status == 413
    assert answer.transaction_id == chunk.transaction_id
    ea = a.feed(answer.to_bytes(), now=3)
    [failed] = of(ea, OutgoingFailed)
    assert failed.stopped and failed.sent == 200
    assert written(a) == b""


def test_sender_inside_a_chunk_ends_it_with_hash() -> None:
    a, b = pair({"chunk_size": 400})
    mid = a.send_message(BODY, "application/octet-stream")
    b.feed(b"".join(bytes(x) for x in a.pull(400)), now=1)
    a.feed(written(b), now=1)
    b.refuse(mid, now=2)
    report = written(b)
    partial = b"".join(bytes(x) for x in a.pull(150))  # chunk 2 is open: 150 of 400 bytes
    ea = a.feed(report, now=2)
    assert of(ea, OutgoingFailed)[0].stopped
    rest = written(a)
    [chunk] = frames(partial + rest)
    assert chunk.continuation == "#" and len(chunk.body) == 150
    assert chunk.get("Byte-Range") == "401-*/1000"
    eb = b.feed(partial + rest, now=3)
    assert eb == [] and written(b) == b""  # an aborted chunk of it needs no answer


def test_the_last_chunk_of_a_refused_message_never_completes_it() -> None:
    a, b = pair({"chunk_size": 100}, {"report_interval": 100})
    mid = a.send_message(BODY, "application/octet-stream", success_report=True)
    data = written(a)  # every chunk written before any answer came back
    chunks = frames(data)
    eb = b.feed(b"".join(c.to_bytes() for c in chunks[:3]), now=1)
    assert of(eb, IncomingProgress)[-1].received == 300
    written(b)
    eb = b.refuse(mid, now=2)
    assert of(eb, IncomingAborted)[0].received == 300
    eb = b.feed(b"".join(c.to_bytes() for c in chunks[3:]), now=3)
    assert eb == []
    answers = frames(written(b))
    responses = [f for f in answers if isinstance(f, MsrpResponse)]
    assert [r.status for r in responses] == [413] * 7
    reports = [f for f in answers if isinstance(f, MsrpRequest)]
    assert [r.status.code for r in reports] == [413]  # no success REPORT after the stop
    assert b.refuse(mid, now=4) == []  # already stopped


def test_refuse_of_a_message_not_arriving_does_nothing() -> None:
    a, b = pair()
    assert b.refuse("never-seen-1", now=1) == []
    mid = a.send_message(b"hello", "text/plain")
    eb = b.feed(written(a), now=1)
    assert of(eb, IncomingMessage)
    written(b)
    assert b.refuse(mid, now=2) == []  # already whole: nothing to stop
    assert written(b) == b""


def test_failure_report_no_gets_no_report_but_the_receiver_still_ends_clearly() -> None:
    a, b = pair({"chunk_size": 100})
    mid = a.send_message(BODY, "application/octet-stream", failure_report="no")
    b.feed(b"".join(bytes(x) for x in a.pull(100)), now=1)
    assert written(b) == b""
    [aborted] = b.refuse(mid, now=2)
    assert aborted.reason == STOPPED_BY_RECEIVER and aborted.received == 100
    assert written(b) == b""  # it asked for no failure reports
    eb = b.feed(written(a), now=3)
    assert eb == [] and written(b) == b""  # the rest is dropped without a word
    assert b.next_deadline() is None


def test_through_a_relay_the_reports_byte_range_says_the_receiver_took_some() -> None:
    """A relay answers every chunk with its own 200, so 200s say nothing about the
    receiver; the Byte-Range of its failure REPORT does."""
    a, b = pair({"chunk_size": 100}, relay=True)
    mid = a.send_message(BODY, "application/octet-stream", success_report=True)
    sent = frames(b"".join(bytes(x) for _ in range(3) for x in a.pull(100)))
    # the relay answers the chunks itself
    relay_ok = b"".join(
        MsrpResponse(
            c.transaction_id, 200, "OK", (("To-Path", str(A)), ("From-Path", str(RELAY)))
        ).to_bytes()
        for c in sent
    )
    a.feed(relay_ok, now=1)
    relayed = [
        MsrpRequest(
            "SEND",
            c.transaction_id,
            (("To-Path", str(B)), ("From-Path", f"{RELAY} {A}"), *c.headers[2:]),
            c.body,
            c.continuation,
        )
        for c in sent
    ]
    b.feed(b"".join(r.to_bytes() for r in relayed[:1]), now=1)
    written(b)
    b.refuse(mid, now=2)
    [report] = [f for f in frames(written(b)) if isinstance(f, MsrpRequest)]
    assert report.get("To-Path") == f"{RELAY} {A}"
    back = MsrpRequest(
        "REPORT",
        "relay0003",
        (("To-Path", str(A)), ("From-Path", f"{RELAY} {B}"), *report.headers[2:]),
    )
    [failed] = of(a.feed(back.to_bytes(), now=2), OutgoingFailed)
    assert failed.stopped and "receiver stopped" in failed.reason


def test_an_oversized_message_refused_up_front_is_not_called_stopped() -> None:
    a, b = pair(b_kw={"max_message_size": 500})
    a.send_message(BODY, "application/octet-stream")
    b.feed(written(a), now=1)
    [failed] = of(a.feed(written(b), now=1), OutgoingFailed)
    assert failed.status == 413 and not failed.stopped
    assert "larger than the peer accepts" in failed.reason


def test_other_messages_of_the_session_are_untouched() -> None:
    a, b = pair({"chunk_size": 100})
    stopped = a.send_message(BODY, "application/octet-stream")
    b.feed(b"".join(bytes(x) for x in a.pull(100)), now=1)
    a.feed(written(b), now=1)
    b.refuse(stopped, now=2)
    a.feed(written(b), now=2)
    other = a.send_message(b"still here", "text/plain")
    eb = b.feed(written(a), now=3)
    [msg] = of(eb, IncomingMessage)
    assert msg.message_id == other and msg.body == b"still here"
    ea = a.feed(written(b), now=3)
    assert of(ea, OutgoingDelivered)[0].message_id == other
