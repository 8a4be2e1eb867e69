"""Property tests of the session endpoint: its input split at every position gives the same
result, and arbitrary or mutated bytes only ever give the session's own events."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.msrp.frame import MsrpRequest, MsrpResponse
from messenger.msrp.session import (
    IncomingMessage,
    MsrpSession,
    ProtocolError,
    SessionEvent,
)
from messenger.msrp.uri import MsrpUri

A = MsrpUri.parse("msrp://alicepc.example.com:7777/iau39soe2843z;tcp")
B = MsrpUri.parse("msrp://bobpc.example.org:8888/9di4eae923wzd;tcp")


def _stream() -> bytes:
    """What Alice's session writes to Bob: binary bodies holding look-alike end-lines,
    chunked, interleaved with an interruption, plus a REPORT and a stray response."""
    rng = random.Random(1)
    alice = MsrpSession(local_uri=A, to_path=[B], now=0, chunk_size=300, rng=rng)
    tricky = b"\r\n-------abcd$\r\n" + rng.randbytes(200) + b"\r\n-------"
    alice.send_message(tricky * 3, "application/octet-stream", success_report=True)
    out = bytearray()
    for buffer in alice.pull(100):
        out += buffer
    alice.send_message("héllo".encode(), "text/plain;charset=utf-8")
    while buffers := alice.pull(250):
        for buffer in buffers:
            out += buffer
    out += MsrpRequest(
        "REPORT",
        "rep0001x",
        (
            ("To-Path", str(B)),
            ("From-Path", str(A)),
            ("Message-ID", "unknown1"),
            ("Status", "000 200 OK"),
        ),
    ).to_bytes()
    out += MsrpResponse(
        "stray001", 200, "OK", (("To-Path", str(B)), ("From-Path", str(A)))
    ).to_bytes()
    return bytes(out)


STREAM = _stream()


def _bob() -> MsrpSession:
    return MsrpSession(local_uri=B, to_path=[A], now=0, rng=random.Random(2))


def _outcome(pieces: list[bytes]) -> tuple[list[SessionEvent], bytes]:
    bob = _bob()
    events: list[SessionEvent] = []
    for piece in pieces:
        events += bob.feed(piece, now=1)
    written = b"".join(bytes(b) for b in bob.pull(1 << 30))
    return events, written


WHOLE = _outcome([STREAM])


def test_the_stream_is_what_it_should_be() -> None:
    events, written = WHOLE
    messages = [e for e in events if isinstance(e, IncomingMessage)]
    assert len(messages) == 2 and not any(isinstance(e, ProtocolError) for e in events)
    assert written.count(b" 200 OK\r\n") >= 5 and b" REPORT\r\n" in written


def test_split_at_every_position_gives_the_same_result() -> None:
    for cut in range(len(STREAM) + 1):
        assert _outcome([STREAM[:cut], STREAM[cut:]]) == WHOLE, cut


def test_byte_by_byte_gives_the_same_result() -> None:
    assert _outcome([STREAM[i : i + 1] for i in range(len(STREAM))]) == WHOLE


def _feed_all(data: bytes, cuts: list[int]) -> list[SessionEvent]:
    bob = _bob()
    events: list[SessionEvent] = []
    last = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        events += bob.feed(data[last:cut], now=1)
        last = cut
        bob.pull(1 << 20)
    events += bob.tick(now=1000)
    events += bob.connection_lost("end of test", now=1001)
    assert all(isinstance(e, SessionEvent) for e in events)
    return events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.lists(st.integers(min_value=0), max_size=6))
def test_arbitrary_bytes_only_give_session_events(data: bytes, cuts: list[int]) -> None:
    _feed_all(data, cuts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0),
            st.sampled_from(["flip", "drop", "insert"]),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.integers(min_value=0), max_size=6),
)
def test_mutated_streams_only_give_session_events(mutations, cuts) -> None:
    data = bytearray(STREAM)
    for where, how, value in mutations:
        i = where % len(data)
        if how == "flip":
            data[i] ^= value or 1
        elif how == "drop":
            del data[i]
        else:
            data.insert(i, value)
    events = _feed_all(bytes(data), cuts)
    for e in events:
        if isinstance(e, IncomingMessage):
            assert isinstance(e.body, bytes) and len(e.body) == e.total
