"""MSRP over real loopback sockets (messenger.net.msrp_transport): TCP and TLS, the
active side binding first, backpressure, refusal of unknown sessions, and connections
that drop mid-transfer."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ua"))

from msrp_harness import tls_contexts

from messenger.msrp.frame import FrameParser
from messenger.msrp.ids import new_session_id
from messenger.msrp.session import (
    IncomingAborted,
    IncomingMessage,
    MsrpSession,
    OutgoingDelivered,
    OutgoingFailed,
    ProtocolError,
)
from messenger.msrp.uri import MsrpUri
from messenger.net.msrp_transport import (
    ConnectionClosed,
    MsrpListener,
    MsrpTransportError,
    _Acceptor,
    connect,
)


def arun(fn):
    """Run an async test on a fresh loop, bounded in time."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 60))

    return wrapper


class Recorder:
    def __init__(self) -> None:
        self.events: list = []
        self.changed = asyncio.Event()

    def __call__(self, event) -> None:
        self.events.append(event)
        self.changed.set()

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind, timeout: float = 20.0):
        async def loop():
            while not self.of(kind):
                self.changed.clear()
                await self.changed.wait()
            return self.of(kind)[0]

        return await asyncio.wait_for(loop(), timeout)


async def _pair(tls: bool = False, tmp: Path | None = None, **bob_kw):
    server_ctx = client_ctx = None
    if tls:
        assert tmp is not None
        server_ctx, client_ctx = tls_contexts(tmp)
    listener = await MsrpListener.start("127.0.0.1", 0, ssl=server_ctx)
    bob_uri = listener.uri(new_session_id())
    scheme = "msrps" if tls else "msrp"
    alice_uri = MsrpUri.parse(f"{scheme}://127.0.0.1:9/{new_session_id()};tcp")
    alice_rec, bob_rec = Recorder(), Recorder()
    bob = MsrpSession(local_uri=bob_uri, to_path=[alice_uri], now=0, **bob_kw)
    bob_conn = listener.expect(bob, bob_rec)
    alice = MsrpSession(local_uri=alice_uri, to_path=[bob_uri], now=0, chunk_size=64 * 1024)
    alice_conn = await connect(alice, alice_rec, ssl=client_ctx)
    await bob_conn.wait_open(5)
    return listener, alice_conn, alice_rec, bob_conn, bob_rec


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@arun
async def test_message_over_loopback(tls: bool, tmp_path: Path) -> None:
    listener, alice, alice_rec, bob, bob_rec = await _pair(tls, tmp_path)
    body = os.urandom(3 * 1024 * 1024 + 17)
    mid = alice.send_message(body, "application/octet-stream", success_report=True)
    delivered = await alice_rec.wait_for(OutgoingDelivered)
    assert delivered.message_id == mid and delivered.reported
    [msg] = bob_rec.of(IncomingMessage)
    assert msg.body == body
    alice.close()
    await alice.wait_closed()
    await bob.wait_closed()
    assert alice_rec.of(ConnectionClosed)[0].clean
    assert "closed the connection" in bob_rec.of(ConnectionClosed)[0].reason
    await listener.close()


@arun
async def test_active_side_binds_with_an_empty_send() -> None:
    listener, alice, _, bob, bob_rec = await _pair()
    assert bob.state == "open" and not bob_rec.events  # the empty SEND gives no message
    alice.close()
    await bob.wait_closed()
    await listener.close()


@arun
async def test_backpressure_keeps_the_write_buffer_bounded() -> None:
    listener = await MsrpListener.start()
    bob_uri = listener.uri(new_session_id())
    alice_uri = MsrpUri.parse(f"msrp://127.0.0.1:9/{new_session_id()};tcp")
    bob = MsrpSession(local_uri=bob_uri, to_path=[alice_uri], now=0, max_message_size=1 << 30)
    bob_rec, alice_rec = Recorder(), Recorder()
    bob_conn = listener.expect(bob, bob_rec)
    alice = MsrpSession(local_uri=alice_uri, to_path=[bob_uri], now=0)
    conn = await connect(alice, alice_rec, high_water=256 * 1024, write_budget=64 * 1024)
    await bob_conn.wait_open(5)
    bob_conn._transport.pause_reading()  # a slow reader
    body = os.urandom(40 * 1024 * 1024)
    conn.send_message(body, "application/octet-stream")
    await asyncio.sleep(0.3)
    buffered = conn._transport.get_write_buffer_size()
    assert conn._paused and buffered < 512 * 1024, buffered
    assert alice._open is not None or alice._queue  # most of the message is still unsent
    bob_conn._transport.resume_reading()
    await alice_rec.wait_for(OutgoingDelivered)
    assert bob_rec.of(IncomingMessage)[0].body == body
    conn.close()
    await bob_conn.wait_closed()
    await listener.close()


@arun
async def test_unknown_session_gets_481_and_is_closed() -> None:
    listener = await MsrpListener.start()
    alice_uri = MsrpUri.parse(f"msrp://127.0.0.1:9/{new_session_id()};tcp")
    stranger = listener.uri("nobodyexpectsthis1")
    rec = Recorder()
    session = MsrpSession(local_uri=alice_uri, to_path=[stranger], now=0)
    conn = await connect(session, rec)
    closed = await rec.wait_for(ConnectionClosed)
    assert not closed.clean
    await listener.close()
    del conn


@arun
async def test_raw_unknown_session_response_is_481() -> None:
    listener = await MsrpListener.start()
    host, port = listener.address
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"MSRP abcd1234 SEND\r\nTo-Path: msrp://127.0.0.1:1/unknownsess;tcp\r\n"
        b"From-Path: msrp://127.0.0.1:2/mine1234;tcp\r\nMessage-ID: m1234567\r\n"
        b"Byte-Range: 1-0/0\r\n-------abcd1234$\r\n"
    )
    data = await asyncio.wait_for(reader.read(), 5)
    [response] = FrameParser().feed(data)
    assert response.status == 481 and response.get("To-Path") == "msrp://127.0.0.1:2/mine1234;tcp"
    writer.close()
    await listener.close()


@arun
async def test_connection_dropped_mid_transfer_fails_both_sides() -> None:
    listener, alice, alice_rec, bob, bob_rec = await _pair(max_message_size=1 << 30)
    body = os.urandom(30 * 1024 * 1024)
    mid = alice.send_message(body, "application/octet-stream")
    while not any(e for e in bob_rec.events):
        bob_rec.changed.clear()
        await asyncio.wait_for(bob_rec.changed.wait(), 10)
    bob.abort("simulated network failure")
    failed = await alice_rec.wait_for(OutgoingFailed)
    assert failed.message_id == mid and failed.status == 0
    assert "connection" in failed.reason
    aborted = await bob_rec.wait_for(IncomingAborted)
    assert aborted.message_id == mid and "simulated network failure" in aborted.reason
    assert not bob_rec.of(IncomingMessage)
    assert bob.state == "closed" and bob.close_reason == "simulated network failure"
    await listener.close()


@arun
async def test_garbage_from_the_peer_is_a_protocol_error_and_closes() -> None:
    listener = await MsrpListener.start()
    session_id = new_session_id()
    bob_uri = listener.uri(session_id)
    rec = Recorder()
    bob = MsrpSession(
        local_uri=bob_uri,
        to_path=[MsrpUri.parse("msrp://127.0.0.1:2/mine1234;tcp")],
        now=0,
        check_from_path=False,
    )
    conn = listener.expect(bob, rec)
    reader, writer = await asyncio.open_connection(*listener.address)
    writer.write(
        f"MSRP abcd1234 SEND\r\nTo-Path: {bob_uri}\r\nFrom-Path: msrp://127.0.0.1:2/mine1234;tcp"
        "\r\nBroken header\r\n".encode()
    )
    await rec.wait_for(ConnectionClosed)
    assert rec.of(ProtocolError) and conn.state == "closed"
    data = await asyncio.wait_for(reader.read(), 5)
    assert FrameParser().feed(data)[0].status == 400
    writer.close()
    await listener.close()


@arun
async def test_connect_failure_is_a_clear_error() -> None:
    listener = await MsrpListener.start()
    host, port = listener.address
    await listener.close()
    uri = MsrpUri.parse(f"msrp://{host}:{port}/gone1234;tcp")
    session = MsrpSession(
        local_uri=MsrpUri.parse("msrp://127.0.0.1:9/me123456;tcp"), to_path=[uri], now=0
    )
    with pytest.raises(MsrpTransportError, match="cannot connect to the MSRP peer"):
        await connect(session, Recorder())


@arun
async def test_passive_side_times_out_with_words() -> None:
    listener = await MsrpListener.start()
    session = MsrpSession(
        local_uri=listener.uri(new_session_id()),
        to_path=[MsrpUri.parse("msrp://127.0.0.1:9/me123456;tcp")],
        now=0,
    )
    conn = listener.expect(session, Recorder())
    with pytest.raises(MsrpTransportError, match="did not connect"):
        await conn.wait_open(0.2)
    await listener.close()


class _FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda a, b: a + b,
            st.sampled_from(
                [
                    b"MSRP abcd1234 SEND\r\nTo-Path: ",
                    b"MSRP abcd1234 SEND\r\nTo-Path: msrp://h:1/s;tcp\r\nFrom-Path: ",
                    b"MSRP x SEND\r\nFrom-Path: msrp://h:1/s;tcp\r\nTo-Path: msrp://h:2/t;tcp\r\n",
                ]
            ),
            st.binary(max_size=200),
        ),
    ),
    st.lists(st.integers(min_value=0, max_value=600), max_size=5),
)
def test_first_request_reader_takes_any_bytes(data: bytes, cuts: list[int]) -> None:
    """The listener reads the first request of a connection to find its session: any
    bytes, in any split, end in waiting, a 400/481 answer and close, never an exception."""

    async def scenario() -> None:
        listener = MsrpListener()
        acceptor = _Acceptor(listener)
        transport = _FakeTransport()
        acceptor.connection_made(transport)  # type: ignore[arg-type]
        last = 0
        for cut in [*sorted({min(c, len(data)) for c in cuts}), len(data)]:
            if transport.closed:
                break
            acceptor.data_received(data[last:cut])
            last = cut
        if transport.written:
            [response] = FrameParser().feed(bytes(transport.written))
            assert response.status in (400, 481) and transport.closed

    asyncio.run(scenario())
