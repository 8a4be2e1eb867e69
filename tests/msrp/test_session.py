"""The sans-IO MSRP session endpoint (messenger.msrp.session): two sessions wired together
in memory, a time value passed in, every byte visible."""

from __future__ import annotations

import random

import pytest

from messenger.msrp.errors import MsrpError
from messenger.msrp.frame import FrameParser, MsrpRequest, MsrpResponse
from messenger.msrp.session import (
    STOPPED_BY_RECEIVER,
    IncomingAborted,
    IncomingMessage,
    IncomingProgress,
    IncomingRefused,
    MsrpSession,
    OutgoingDelivered,
    OutgoingFailed,
    OutgoingProgress,
    ProtocolError,
    RelayAuthorized,
    ReportReceived,
)
from messenger.msrp.uri import MsrpUri

A = MsrpUri.parse("msrp://alicepc.example.com:7777/iau39soe2843z;tcp")
B = MsrpUri.parse("msrp://bobpc.example.org:8888/9di4eae923wzd;tcp")
RELAY = MsrpUri.parse("msrp://relay.example.net:2855/r3lay5e55ion;tcp")


def pair(*, relay: bool = False, **kw):
    """Alice's and Bob's sessions (``a``, ``b``: their options), direct or through RELAY."""
    rng = random.Random(7)
    a_path, b_path = ([RELAY, B], [RELAY, A]) if relay else ([B], [A])
    a = MsrpSession(local_uri=A, to_path=a_path, now=0.0, rng=rng, **kw.pop("a", {}))
    b = MsrpSession(local_uri=B, to_path=b_path, now=0.0, rng=rng, **kw.pop("b", {}))
    return a, b


def wire(session: MsrpSession, budget: int = 1 << 20) -> bytes:
    out = bytearray()
    while True:
        buffers = session.pull(budget)
        if not buffers:
            return bytes(out)
        for buffer in buffers:
            out += buffer


def run(a: MsrpSession, b: MsrpSession, budget: int = 1 << 20, now: float = 1.0):
    """Exchange until quiet; return (events of a, events of b)."""
    ea, eb = [], []
    for _ in range(10_000):
        to_b = wire(a, budget)
        ea += a.take_events()
        if to_b:
            eb += b.feed(to_b, now=now)
        to_a = wire(b, budget)
        eb += b.take_events()
        if to_a:
            ea += a.feed(to_a, now=now)
        if not to_a and not to_b:
            return ea, eb
    raise AssertionError("the sessions never went quiet")


def frames(data: bytes) -> list:
    return FrameParser(max_body_size=1 << 30).feed(data)


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


# -- sending and receiving -----------------------------------------------------------------


def test_text_message_round_trip_with_success_report() -> None:
    a, b = pair()
    mid = a.send_message(b"hello", "text/plain", success_report=True)
    ea, eb = run(a, b)
    [msg] = of(eb, IncomingMessage)
    assert (msg.message_id, msg.body, msg.content_type) == (mid, b"hello", "text/plain")
    [report] = of(ea, ReportReceived)
    assert report.status.code == 200 and str(report.byte_range) == "1-5/5"
    assert of(ea, OutgoingDelivered) == [OutgoingDelivered(mid, 5, True)]


def test_every_chunk_has_message_id_and_byte_range_with_total() -> None:
    a, b = pair(a={"chunk_size": 1000})
    body = random.Random(1).randbytes(4500)
    mid = a.send_message(body, "application/octet-stream")
    sent = frames(wire(a))
    assert [f.get("Byte-Range") for f in sent] == [
        "1-1000/4500",
        "1001-2000/4500",
        "2001-3000/4500",
        "3001-4000/4500",
        "4001-4500/4500",
    ]
    assert [f.continuation for f in sent] == ["+", "+", "+", "+", "$"]
    assert {f.message_id for f in sent} == {mid}
    assert len({f.transaction_id for f in sent}) == 5
    eb = []
    for f in sent:
        eb += b.feed(f.to_bytes(), now=1)
    assert of(eb, IncomingMessage)[0].body == body
    assert [e.received for e in of(eb, IncomingProgress)] == [1000, 2000, 3000, 4000, 4500]


def test_delivered_without_success_report_after_every_200() -> None:
    a, b = pair(a={"chunk_size": 100})
    mid = a.send_message(bytes(350), "application/octet-stream")
    ea, _ = run(a, b)
    assert [e.acknowledged for e in of(ea, OutgoingProgress)] == [100, 200, 300, 350]
    assert of(ea, OutgoingDelivered) == [OutgoingDelivered(mid, 350, False)]
    assert not of(ea, ReportReceived)


def test_failure_report_no_and_partial_suppress_responses() -> None:
    a, b = pair()
    a.send_message(b"x" * 10, "text/plain", failure_report="no")
    a.send_message(b"y" * 10, "text/plain", failure_report="partial")
    ea, eb = run(a, b)
    assert len(of(eb, IncomingMessage)) == 2
    assert not wire(b)  # nothing was answered
    assert len(of(ea, OutgoingDelivered)) == 2


def test_failure_report_header_is_written() -> None:
    a, _ = pair()
    a.send_message(b"z" * 4, "text/plain", failure_report="partial", success_report=True)
    [f] = frames(wire(a))
    assert f.get("Failure-Report") == "partial" and f.get("Success-Report") == "yes"


def test_empty_send_binds_and_is_answered_without_a_message() -> None:
    a, b = pair()
    a.bind()
    [bind] = frames(wire(a))
    assert bind.method == "SEND" and not bind.has_body_section
    assert bind.get("Byte-Range") == "1-0/0"
    assert b.feed(bind.to_bytes(), now=1) == []
    [resp] = frames(wire(b))
    assert isinstance(resp, MsrpResponse) and resp.status == 200


def test_mime_headers_travel_on_every_chunk_and_reach_the_receiver() -> None:
    a, b = pair(a={"chunk_size": 3})
    disposition = ("Content-Disposition", 'attachment; filename="smime.p7m"')
    a.send_message(b"abcdefg", "application/pkcs7-mime", headers=[disposition])
    sent = frames(wire(a))
    assert all(f.get("Content-Disposition") == disposition[1] for f in sent)
    assert all(f.headers[-1][0] == "Content-Type" for f in sent)
    eb = b.feed(b"".join(f.to_bytes() for f in sent), now=1)
    assert of(eb, IncomingMessage)[0].headers == (disposition,)


def test_send_message_refuses_bad_arguments() -> None:
    a, _ = pair()
    with pytest.raises(MsrpError):
        a.send_message(b"x", "text/plain", failure_report="maybe")
    with pytest.raises(MsrpError):
        a.send_message(b"x", "text/plain", message_id="no")
    with pytest.raises(MsrpError):
        a.send_message(b"x", "text/plain", headers=[("To-Path", "x")])
    with pytest.raises(MsrpError):
        a.send_message(b"x", "text/plain\r\nEvil: 1")
    a.send_message(b"x", "text/plain", message_id="dup1")
    with pytest.raises(MsrpError):
        a.send_message(b"x", "text/plain", message_id="dup1")


# -- interruption and streaming ------------------------------------------------------------


def test_long_chunk_is_interrupted_for_a_newer_message_and_resumed() -> None:
    a, b = pair(a={"chunk_size": 10_000})
    big = random.Random(2).randbytes(25_000)
    big_id = a.send_message(big, "application/octet-stream")
    out = bytearray()
    for buffer in a.pull(4000):  # the head and the first 4000 body bytes of chunk 1
        out += buffer
    small_id = a.send_message(b"urgent", "text/plain")
    out += wire(a, 4000)
    sent = frames(bytes(out))
    first = sent[0]
    assert first.get("Byte-Range") == "1-*/25000" and first.continuation == "+"
    assert len(first.body) == 4000  # interrupted after 4000 bytes
    assert sent[1].message_id == small_id and sent[1].body == b"urgent"
    assert sent[2].get("Byte-Range").startswith("4001-")
    eb = b.feed(bytes(out), now=1)
    got = {m.message_id: m.body for m in of(eb, IncomingMessage)}
    assert got == {small_id: b"urgent", big_id: big}


def test_responses_are_not_written_inside_an_open_chunk() -> None:
    a, b = pair(a={"chunk_size": 50_000}, b={"chunk_size": 50_000})
    body_a = random.Random(3).randbytes(120_000)
    body_b = random.Random(4).randbytes(120_000)
    a.send_message(body_a, "application/octet-stream")
    b.send_message(body_b, "application/octet-stream")
    ea, eb = run(a, b, budget=7000)
    assert of(eb, IncomingMessage)[0].body == body_a
    assert of(ea, IncomingMessage)[0].body == body_b
    assert len(of(ea, OutgoingDelivered)) == 1 and len(of(eb, OutgoingDelivered)) == 1


def test_body_with_end_line_look_alikes_gets_another_transaction_id() -> None:
    rng = random.Random(5)
    a = MsrpSession(local_uri=A, to_path=[B], now=0, rng=rng)
    taken = random.Random(5).choice  # the id the session would draw first
    first = "".join(
        taken("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(16)
    )
    body = b"\r\n-------" + first.encode() + b"$\r\n" + b"tail"
    a.send_message(body, "application/octet-stream", message_id="look4like")
    [f] = frames(wire(a))
    assert f.transaction_id != first and f.body == body


# -- refusals --------------------------------------------------------------------------------


def test_oversized_total_is_refused_with_413_before_any_allocation() -> None:
    allocated = []

    def factory(total: int) -> bytearray:
        allocated.append(total)
        return bytearray(total)

    a, b = pair(a={"chunk_size": 100}, b={"max_message_size": 1000, "buffer_factory": factory})
    mid = a.send_message(bytes(5000), "application/octet-stream")
    first = a.pull()
    eb = b.feed(b"".join(bytes(x) for x in first), now=1)
    assert of(eb, IncomingRefused)[0].status == 413
    assert allocated == []
    [resp] = frames(wire(b))
    assert resp.status == 413
    ea = a.feed(resp.to_bytes(), now=1)
    [failed] = of(ea, OutgoingFailed)
    assert failed.status == 413 and "larger than the peer accepts" in failed.reason
    assert failed.message_id == mid and failed.sent == 100
    assert not a.has_output()  # no further chunk of the refused message


def test_a_lying_byte_range_is_refused_413_without_allocation() -> None:
    _, b = pair(b={"max_message_size": 1 << 20})
    headers = (
        ("To-Path", str(B)),
        ("From-Path", str(A)),
        ("Message-ID", "huge0001"),
        ("Byte-Range", "1-4/999999999999999"),
        ("Content-Type", "application/octet-stream"),
    )
    events = b.feed(MsrpRequest("SEND", "tx000001", headers, b"abcd", "+").to_bytes(), now=1)
    assert [e.status for e in of(events, IncomingRefused)] == [413]
    assert frames(wire(b))[0].status == 413
    assert b._reassembler.pending() == ()


def test_unaccepted_type_gets_415() -> None:
    a, b = pair(b={"accept_types": ["text/plain", "message/*"]})
    mid = a.send_message(b"\x30\x80", "application/pkcs7-mime; smime-type=enveloped-data")
    a.send_message(b"ok", "message/cpim")
    ea, eb = run(a, b)
    assert [e.status for e in of(eb, IncomingRefused)] == [415]
    [failed] = of(ea, OutgoingFailed)
    assert failed.message_id == mid and failed.status == 415
    assert "does not accept this type" in failed.reason
    assert of(eb, IncomingMessage)[0].body == b"ok"


def _request(to: str, frm: str, method: str = "SEND", **extra: str) -> bytes:
    headers = [("To-Path", to), ("From-Path", frm), ("Message-ID", "msg00001")]
    headers += [(k.replace("_", "-"), v) for k, v in extra.items()]
    body = b""
    if method == "SEND":
        headers.append(("Content-Type", "text/plain"))
        body = b"hi"
    return MsrpRequest(method, "tx000002", tuple(headers), body).to_bytes()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (_request("msrp://bobpc.example.org:8888/0therSession;tcp", str(A)), 481),
        (_request(str(B), "msrp://mallory.example.net:1/x1y2z3;tcp"), 403),
        (_request(str(B), str(A), Byte_Range="2-1/0"), 400),
        (_request(str(B), str(A), Byte_Range="oops"), 400),
        (_request(str(B), str(A), "FROB"), 501),
        (_request(str(B), "not a uri"), 400),
    ],
)
def test_refusals_are_answered_with_their_status(data: bytes, status: int) -> None:
    _, b = pair()
    events = b.feed(data, now=1)
    assert [e.status for e in of(events, IncomingRefused)] == [status]
    [resp] = frames(wire(b))
    assert isinstance(resp, MsrpResponse) and resp.status == status
    assert not of(events, IncomingMessage)


def test_malformed_stream_is_a_protocol_error_with_a_400() -> None:
    _, b = pair()
    events = b.feed(b"MSRP abcd1234 SEND\r\nTo-Path: " + str(B).encode() + b"\r\nbroken\r\n", now=1)
    [err] = of(events, ProtocolError)
    assert err.status == 400
    [resp] = frames(wire(b))
    assert resp.status == 400 and resp.transaction_id == "abcd1234"
    assert b.feed(b"more", now=2) == []


# -- aborts, timeouts, lost connections -------------------------------------------------------


def test_cancel_between_chunks_sends_hash_and_receiver_discards() -> None:
    a, b = pair(a={"chunk_size": 100})
    mid = a.send_message(bytes(1000), "application/octet-stream")
    data = b"".join(bytes(x) for x in a.pull(150))  # chunk 1 and part of chunk 2
    data += b"".join(bytes(x) for x in a.pull(150))
    [failed] = a.cancel(mid, now=2)
    assert failed.cancelled and failed.status == 0
    data += wire(a)
    sent = frames(data)
    assert sent[-1].continuation == "#"
    eb = b.feed(data, now=2)
    [aborted] = of(eb, IncomingAborted)
    assert aborted.message_id == mid and "aborted" in aborted.reason
    assert not of(eb, IncomingMessage)


def test_cancel_inside_an_open_chunk_ends_it_with_hash() -> None:
    a, b = pair(a={"chunk_size": 10_000})
    mid = a.send_message(bytes(30_000), "application/octet-stream")
    data = b"".join(bytes(x) for x in a.pull(500))
    a.cancel(mid)
    data += wire(a)
    [only] = frames(data)
    assert only.continuation == "#" and len(only.body) == 500
    eb = b.feed(data, now=1)
    assert of(eb, IncomingAborted)[0].message_id == mid


def test_missing_response_fails_the_message_with_408() -> None:
    a, _ = pair()
    mid = a.send_message(b"hello", "text/plain")
    wire(a)
    assert a.next_deadline() == pytest.approx(30.0)
    assert a.tick(now=10.0) == []
    [failed] = a.tick(now=31.0)
    assert (failed.message_id, failed.status) == (mid, 408)


def test_incomplete_incoming_message_times_out_with_a_failure_report() -> None:
    a, b = pair(a={"chunk_size": 10}, b={"incomplete_timeout": 5.0})
    mid = a.send_message(bytes(100), "application/octet-stream")
    first = b"".join(bytes(x) for x in a.pull(10))
    b.feed(first, now=1.0)
    wire(b)
    events = b.tick(now=7.0)
    [aborted] = of(events, IncomingAborted)
    assert aborted.message_id == mid and aborted.received == 10
    [report] = frames(wire(b))
    assert report.method == "REPORT" and report.status.code == 408


def test_connection_lost_fails_everything_unfinished() -> None:
    a, b = pair(a={"chunk_size": 10})
    mid = a.send_message(bytes(100), "application/octet-stream")
    b.feed(b"".join(bytes(x) for x in a.pull(30)), now=1)
    ea = a.connection_lost("reset by peer", now=2)
    eb = b.connection_lost("reset by peer", now=2)
    assert of(ea, OutgoingFailed)[0].message_id == mid
    [aborted] = of(eb, IncomingAborted)
    assert aborted.message_id == mid and "connection was lost" in aborted.reason
    assert not of(eb, IncomingMessage)
    with pytest.raises(MsrpError):
        a.send_message(b"late", "text/plain")


def test_failure_report_from_the_far_end_fails_the_message() -> None:
    a, _ = pair()
    mid = a.send_message(b"hello", "text/plain", success_report=True)
    wire(a)
    report = MsrpRequest(
        "REPORT",
        "rep00001",
        (
            ("To-Path", str(A)),
            ("From-Path", str(B)),
            ("Message-ID", mid),
            ("Status", "000 415 Unsupported Media Type"),
        ),
    )
    events = a.feed(report.to_bytes(), now=1)
    assert of(events, ReportReceived)[0].status.code == 415
    assert of(events, OutgoingFailed)[0].status == 415
    assert not wire(a)  # a REPORT is never answered


# -- relays (RFC 4976) -----------------------------------------------------------------------


def test_paths_through_a_relay() -> None:
    rng = random.Random(9)
    a = MsrpSession(local_uri=A, to_path=[RELAY, B], now=0, rng=rng)
    b = MsrpSession(local_uri=B, to_path=[RELAY, A], now=0, rng=rng)
    mid = a.send_message(b"via relay", "text/plain", success_report=True)
    [out] = frames(wire(a))
    assert out.get("To-Path") == f"{RELAY} {B}" and out.get("From-Path") == str(A)
    # the relay takes itself off the To-Path and puts itself on the From-Path
    relayed = MsrpRequest(
        "SEND",
        "relay0001",
        (("To-Path", str(B)), ("From-Path", f"{RELAY} {A}"), *out.headers[2:]),
        out.body,
    )
    eb = b.feed(relayed.to_bytes(), now=1)
    assert of(eb, IncomingMessage)[0].body == b"via relay"
    response, report = frames(wire(b))
    assert response.get("To-Path") == str(RELAY) and response.get("From-Path") == str(B)
    assert report.method == "REPORT" and report.get("To-Path") == f"{RELAY} {A}"
    back = MsrpRequest(
        "REPORT",
        "relay0002",
        (("To-Path", str(A)), ("From-Path", f"{RELAY} {B}"), *report.headers[2:]),
    )
    ea = a.feed(back.to_bytes(), now=1)
    assert of(ea, ReportReceived)[0].message_id == mid


def test_auth_to_a_relay_gives_its_use_path() -> None:
    a = MsrpSession(local_uri=A, to_path=[B], now=0)
    a.authorize(RELAY)
    [auth] = frames(wire(a))
    assert auth.method == "AUTH" and auth.get("To-Path") == str(RELAY)
    use = "msrp://relay.example.net:2855/as8fjw3kdk;tcp"
    answer = MsrpResponse(
        auth.transaction_id,
        200,
        "OK",
        (("To-Path", str(A)), ("From-Path", str(RELAY)), ("Use-Path", use), ("Expires", "900")),
    )
    [granted] = a.feed(answer.to_bytes(), now=1)
    assert granted == RelayAuthorized((MsrpUri.parse(use),), 900)
    a.set_to_path([*granted.use_path, B])
    a.send_message(b"x", "text/plain")
    [send] = frames(wire(a))
    assert send.get("To-Path") == f"{use} {B}"


# -- reassembly under reordering, re-chunking and overlap -----------------------------------


def test_reordered_rechunked_overlapping_delivery_reassembles() -> None:
    rng = random.Random(11)
    a, b = pair(a={"chunk_size": 700})
    body = rng.randbytes(10_000)
    mid = a.send_message(body, "application/octet-stream")
    original = frames(wire(a))
    pieces = []
    for f in original:  # a relay re-chunks: cut every chunk again, some overlapping
        start = int(f.get("Byte-Range").split("-")[0]) - 1
        cut = rng.randrange(1, len(f.body))
        spans = [(0, cut), (max(0, cut - 50), len(f.body))]
        for a0, b0 in spans:
            headers = (
                *f.headers[:3],
                ("Byte-Range", f"{start + a0 + 1}-{start + b0}/{len(body)}"),
                f.headers[-1],
            )
            tid = f"re{len(pieces):06d}"
            pieces.append(MsrpRequest("SEND", tid, headers, f.body[a0:b0], "+"))
    rng.shuffle(pieces)
    events = []
    for p in pieces:
        events += b.feed(p.to_bytes(), now=1)
    [msg] = of(events, IncomingMessage)
    assert msg.message_id == mid and msg.body == body
    responses = frames(wire(b))
    assert {r.status for r in responses} == {200} and len(responses) == len(pieces)


def test_duplicate_chunks_after_completion_are_answered_and_ignored() -> None:
    a, b = pair()
    a.send_message(b"once", "text/plain")
    data = wire(a)
    assert len(of(b.feed(data, now=1), IncomingMessage)) == 1
    assert b.feed(data, now=1) == []
    assert [r.status for r in frames(wire(b))] == [200, 200]


# -- end-to-end pacing through relays --------------------------------------------------------


def test_window_is_paced_by_the_receivers_partial_reports() -> None:
    a, b = pair(a={"chunk_size": 1000, "window": 3000}, b={"report_interval": 2000})
    body = random.Random(12).randbytes(20_000)
    mid = a.send_message(body, "application/octet-stream", success_report=True)
    first = frames(wire(a))
    assert sum(len(f.body) for f in first) == 3000  # the window, then nothing more
    assert not a.has_output()
    assert a.next_deadline() == pytest.approx(30.0)  # 200s and the stall both watched
    eb = []
    for f in first:
        eb += b.feed(f.to_bytes(), now=1)
    back = frames(wire(b))
    reports = [f for f in back if isinstance(f, MsrpRequest)]
    assert [r.get("Byte-Range") for r in reports] == ["1-2000/20000"]
    ea = a.feed(b"".join(f.to_bytes() for f in back), now=1)
    assert of(ea, ReportReceived)[0].byte_range.end == 2000
    more = wire(a)
    assert sum(len(f.body) for f in frames(more)) == 2000  # the window moved on
    b.feed(more, now=1)
    ea, eb = run(a, b)
    assert of(eb, IncomingMessage)[0].body == body
    assert of(ea, OutgoingDelivered) == [OutgoingDelivered(mid, 20_000, True)]


def test_a_window_without_reports_fails_with_408_instead_of_hanging() -> None:
    a, b = pair(a={"chunk_size": 1000, "window": 2000})  # b sends no partial reports
    mid = a.send_message(bytes(10_000), "application/octet-stream", success_report=True)
    b.feed(wire(a), now=1)
    a.feed(wire(b), now=1)  # the 200s: nothing outstanding, the window is shut
    assert a.next_deadline() == pytest.approx(30.0)
    [failed] = a.tick(now=31.0)
    assert failed.message_id == mid and failed.status == 408
    assert "REPORT" in failed.reason


def test_incomplete_timeout_counts_from_the_last_chunk() -> None:
    a, b = pair(a={"chunk_size": 10}, b={"incomplete_timeout": 5.0})
    a.send_message(bytes(100), "application/octet-stream")
    b.feed(b"".join(bytes(x) for x in a.pull(10)), now=1.0)
    b.feed(b"".join(bytes(x) for x in a.pull(10)), now=4.0)
    assert b.tick(now=7.0) == []
    assert of(b.tick(now=9.5), IncomingAborted)


# -- the receiver stops a message part-way (RFC 4975 sections 7.1.2 and 10.5) ---------------
# It discards what arrived, answers the message's next chunks with 413 and sends a failure
# REPORT; the sender stops at once, ends a chunk it is writing with "#", and says the
# receiver stopped it.

PARTWAY_BODY = random.Random(4975).randbytes(1000)


def stopped_after_first_chunk(chunk_size: int = 100):
    """Alice sends PARTWAY_BODY in chunks of ``chunk_size``; Bob takes the first (Alice has
    its 200) and stops the message. Returns (a, b, Bob's failure REPORT as written)."""
    a, b = pair(a={"chunk_size": chunk_size})
    mid = a.send_message(PARTWAY_BODY, "application/octet-stream")
    b.feed(b"".join(bytes(x) for x in a.pull(chunk_size)), now=1)
    a.feed(wire(b), now=1)  # the 200 of chunk 1
    b.refuse(mid, now=2)
    return a, b, wire(b)


def test_refused_message_is_discarded_and_the_report_stops_the_sender() -> None:
    a, b = pair(a={"chunk_size": 100})
    mid = a.send_message(PARTWAY_BODY, "application/octet-stream")
    first = b"".join(bytes(x) for x in a.pull(100))  # exactly the first chunk
    eb = b.feed(first, now=1)
    assert of(eb, IncomingProgress)[0].received == 100
    [ok] = frames(wire(b))
    assert isinstance(ok, MsrpResponse) and ok.status == 200
    a.feed(ok.to_bytes(), now=1)

    [aborted] = b.refuse(mid, now=2)
    assert aborted == IncomingAborted(mid, 100, 1000, STOPPED_BY_RECEIVER)
    [report] = frames(wire(b))
    assert report.method == "REPORT" and report.message_id == mid
    assert report.status.code == 413 and report.get("Byte-Range") == "1-100/1000"
    assert report.get("To-Path") == str(A)

    ea = a.feed(report.to_bytes(), now=2)
    [failed] = of(ea, OutgoingFailed)
    assert failed.stopped and not failed.cancelled and failed.status == 413
    assert "receiver stopped" in failed.reason
    assert not a.has_output() and wire(a) == b""  # not one more chunk
    assert a.next_deadline() is None


def test_next_chunk_is_answered_413_and_the_sender_stops() -> None:
    """The REPORT is lost: the 413 to the next chunk stops the sender just the same."""
    a, b, _ = stopped_after_first_chunk()  # the REPORT goes nowhere
    second = b"".join(bytes(x) for x in a.pull(100))
    [chunk] = frames(second)
    assert chunk.get("Byte-Range") == "101-200/1000"
    eb = b.feed(second, now=3)
    assert not of(eb, IncomingProgress) and not of(eb, IncomingMessage)
    [answer] = frames(wire(b))
    assert isinstance(answer, MsrpResponse) and answer.status == 413
    assert answer.transaction_id == chunk.transaction_id
    ea = a.feed(answer.to_bytes(), now=3)
    [failed] = of(ea, OutgoingFailed)
    assert failed.stopped and failed.sent == 200
    assert wire(a) == b""


def test_sender_inside_a_chunk_ends_it_with_hash() -> None:
    a, b, report = stopped_after_first_chunk(400)
    partial = b"".join(bytes(x) for x in a.pull(150))  # chunk 2 is open: 150 of 400 bytes
    ea = a.feed(report, now=2)
    assert of(ea, OutgoingFailed)[0].stopped
    rest = wire(a)
    [chunk] = frames(partial + rest)
    assert chunk.continuation == "#" and len(chunk.body) == 150
    assert chunk.get("Byte-Range") == "401-*/1000"
    eb = b.feed(partial + rest, now=3)
    assert eb == [] and wire(b) == b""  # an aborted chunk of it needs no answer


def test_the_last_chunk_of_a_refused_message_never_completes_it() -> None:
    a, b = pair(a={"chunk_size": 100}, b={"report_interval": 100})
    mid = a.send_message(PARTWAY_BODY, "application/octet-stream", success_report=True)
    data = wire(a)  # every chunk written before any answer came back
    chunks = frames(data)
    eb = b.feed(b"".join(c.to_bytes() for c in chunks[:3]), now=1)
    assert of(eb, IncomingProgress)[-1].received == 300
    wire(b)
    eb = b.refuse(mid, now=2)
    assert of(eb, IncomingAborted)[0].received == 300
    eb = b.feed(b"".join(c.to_bytes() for c in chunks[3:]), now=3)
    assert eb == []
    answers = frames(wire(b))
    responses = [f for f in answers if isinstance(f, MsrpResponse)]
    assert [r.status for r in responses] == [413] * 7
    reports = [f for f in answers if isinstance(f, MsrpRequest)]
    assert [r.status.code for r in reports] == [413]  # no success REPORT after the stop
    assert b.refuse(mid, now=4) == []  # already stopped


def test_refuse_of_a_message_not_arriving_does_nothing() -> None:
    a, b = pair()
    assert b.refuse("never-seen-1", now=1) == []
    mid = a.send_message(b"hello", "text/plain")
    eb = b.feed(wire(a), now=1)
    assert of(eb, IncomingMessage)
    wire(b)
    assert b.refuse(mid, now=2) == []  # already whole: nothing to stop
    assert wire(b) == b""


def test_failure_report_no_gets_no_report_but_the_receiver_still_ends_clearly() -> None:
    a, b = pair(a={"chunk_size": 100})
    mid = a.send_message(PARTWAY_BODY, "application/octet-stream", failure_report="no")
    b.feed(b"".join(bytes(x) for x in a.pull(100)), now=1)
    assert wire(b) == b""
    [aborted] = b.refuse(mid, now=2)
    assert aborted.reason == STOPPED_BY_RECEIVER and aborted.received == 100
    assert wire(b) == b""  # it asked for no failure reports
    eb = b.feed(wire(a), now=3)
    assert eb == [] and wire(b) == b""  # the rest is dropped without a word
    assert b.next_deadline() is None


def test_through_a_relay_the_reports_byte_range_says_the_receiver_took_some() -> None:
    """A relay answers every chunk with its own 200, so 200s say nothing about the
    receiver; the Byte-Range of its failure REPORT does."""
    a, b = pair(a={"chunk_size": 100}, relay=True)
    mid = a.send_message(PARTWAY_BODY, "application/octet-stream", success_report=True)
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
    wire(b)
    b.refuse(mid, now=2)
    [report] = [f for f in frames(wire(b)) if isinstance(f, MsrpRequest)]
    assert report.get("To-Path") == f"{RELAY} {A}"
    back = MsrpRequest(
        "REPORT",
        "relay0003",
        (("To-Path", str(A)), ("From-Path", f"{RELAY} {B}"), *report.headers[2:]),
    )
    [failed] = of(a.feed(back.to_bytes(), now=2), OutgoingFailed)
    assert failed.stopped and "receiver stopped" in failed.reason


def test_an_oversized_message_refused_up_front_is_not_called_stopped() -> None:
    a, b = pair(b={"max_message_size": 500})
    a.send_message(PARTWAY_BODY, "application/octet-stream")
    b.feed(wire(a), now=1)
    [failed] = of(a.feed(wire(b), now=1), OutgoingFailed)
    assert failed.status == 413 and not failed.stopped
    assert "larger than the peer accepts" in failed.reason


def test_other_messages_of_the_session_are_untouched() -> None:
    a, b, report = stopped_after_first_chunk()
    a.feed(report, now=2)
    other = a.send_message(b"still here", "text/plain")
    eb = b.feed(wire(a), now=3)
    [msg] = of(eb, IncomingMessage)
    assert msg.message_id == other and msg.body == b"still here"
    ea = a.feed(wire(b), now=3)
    assert of(ea, OutgoingDelivered)[0].message_id == other
