"""SIP over UDP, TCP and TLS on loopback, through the transaction layer."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.net.sip_transport import (
    Peer,
    SipTransport,
    SipTransportError,
    client_tls_context,
    server_tls_context,
)
from messenger.pki.authority import create_authority
from messenger.sip.events import RequestReceived, ResponseReceived, TransactionTimeout
from messenger.sip.ids import new_branch
from messenger.sip.message import SipRequest


def run(coro, timeout: float = 30.0):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class Endpoint:
    """A transport that records its events and answers requests with ``status``."""

    def __init__(self, status: int | None = 200, **kw) -> None:
        self.status = status
        self.events: list = []
        self.traces: list = []
        self.changed = asyncio.Event()
        self.transport = SipTransport(on_event=self.on_event, on_trace=self.traces.append, **kw)

    def on_event(self, event) -> None:
        self.events.append(event)
        self.changed.set()
        if isinstance(event, RequestReceived) and event.key is not None and self.status:
            self.transport.send_response(event.key, event.request.make_response(self.status))

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait(self, kind, count: int = 1, timeout: float = 10) -> list:
        async def until():
            while len(self.of(kind)) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout)
        return self.of(kind)


def request(to: Peer, via: tuple[str, int], body: bytes = b"hello") -> SipRequest:
    return SipRequest(
        "MESSAGE",
        f"sip:bob@{to.host}:{to.port}",
        [
            ("Via", f"SIP/2.0/{to.transport.upper()} {via[0]}:{via[1]};branch={new_branch()}"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.test>;tag=a1"),
            ("To", "<sip:bob@example.test>"),
            ("Call-ID", new_branch()),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", "text/plain"),
        ],
        body,
    )


@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_request_and_response(kind):
    async def body():
        server, client = Endpoint(), Endpoint()
        host, port = await server.transport.listen(kind, "127.0.0.1", 0)
        via = await client.transport.listen(kind, "127.0.0.1", 0)
        to = Peer(kind, host, port)
        await client.transport.send_request(request(to, via, b"x" * 3000), to)
        (got,) = await client.wait(ResponseReceived)
        assert got.response.status == 200
        (incoming,) = server.of(RequestReceived)
        assert incoming.request.body == b"x" * 3000
        assert [t.direction for t in client.traces] == ["out", "in"]
        await server.transport.close()
        await client.transport.close()

    run(body())


def test_tcp_connection_is_reused_both_ways():
    async def body():
        server, client = Endpoint(), Endpoint()
        host, port = await server.transport.listen("tcp", "127.0.0.1", 0)
        to = Peer("tcp", host, port)
        for _ in range(3):
            via = ("127.0.0.1", 9)
            await client.transport.send_request(request(to, via), to)
        await client.wait(ResponseReceived, 3)
        remotes = {e.remote for e in server.of(RequestReceived)}
        assert len(remotes) == 1  # one connection carried the three requests and answers
        await server.transport.close()
        await client.transport.close()

    run(body())


def test_stream_framing_split_writes_and_keepalive():
    async def body():
        server = Endpoint()
        host, port = await server.transport.listen("tcp", "127.0.0.1", 0)
        wire = request(Peer("tcp", host, port), ("127.0.0.1", 9), b"split body").to_bytes()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"\r\n\r\n")  # a keep-alive ping first: answered with a pong
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"
        for piece in (wire[:10], wire[10:200], wire[200:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        (got,) = await server.wait(RequestReceived)
        assert got.request.body == b"split body"
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert response.startswith(b"SIP/2.0 200")
        # garbage on a stream cannot be resynchronized: the connection is closed
        writer.write(b"NOT SIP AT ALL\r\nContent-Length: x\r\n\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await server.transport.close()

    run(body())


def test_malformed_datagram_is_answered_400():
    async def body():
        server = Endpoint()
        host, port = await server.transport.listen("udp", "127.0.0.1", 0)
        wire = request(Peer("udp", host, port), ("127.0.0.1", 9)).to_bytes()
        bad = wire.replace(b"CSeq: 1 MESSAGE", b"CSeq: x MESSAGE")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_sendto(sock, bad, (host, port))
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
        assert data.startswith(b"SIP/2.0 400 ")
        await server.transport.close()

    run(body())


def test_udp_request_is_retransmitted_until_answered():
    async def body():
        server, client = Endpoint(status=None), Endpoint()
        host, port = await server.transport.listen("udp", "127.0.0.1", 0)
        via = await client.transport.listen("udp", "127.0.0.1", 0)
        to = Peer("udp", host, port)
        await client.transport.send_request(request(to, via), to)
        # timer E: 500 ms, then 1 s: the second copy arrives, absorbed by the same
        # server transaction (one RequestReceived)
        await asyncio.sleep(1.2)
        copies = [t for t in server.traces if t.direction == "in"]
        assert len(copies) >= 2
        assert len(server.of(RequestReceived)) == 1
        key = server.of(RequestReceived)[0].key
        server.transport.send_response(
            key, server.of(RequestReceived)[0].request.make_response(200)
        )
        (got,) = await client.wait(ResponseReceived)
        assert got.response.status == 200
        assert not client.of(TransactionTimeout)
        await server.transport.close()
        await client.transport.close()

    run(body())


def test_tcp_connect_failure_is_a_typed_error():
    async def body():
        client = Endpoint()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        to = Peer("tcp", "127.0.0.1", free)
        with pytest.raises(SipTransportError, match="cannot connect"):
            await client.transport.send_request(request(to, ("127.0.0.1", 9)), to)
        with pytest.raises(SipTransportError, match="no UDP listener"):
            await client.transport.connect(Peer("udp", "127.0.0.1", free))
        with pytest.raises(SipTransportError, match="cannot resolve"):
            await client.transport.resolve(Peer("udp", "no-such-host.invalid", 5060))
        await client.transport.close()

    run(body())


def _tls_pair():
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca = create_authority("TLS Test CA", now=now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    other = create_authority("Someone Else", now=now)
    return ca, cert, key, other


def test_tls_server_checked_against_the_configured_trust():
    ca, cert, key, other = _tls_pair()

    async def body():
        server = Endpoint(server_tls=server_tls_context(cert, key))
        host, port = await server.transport.listen("tls", "127.0.0.1", 0)
        to = Peer("tls", host, port)
        good = Endpoint(client_tls=client_tls_context([ca.certificate]))
        await good.transport.send_request(request(to, ("127.0.0.1", 9)), to)
        (got,) = await good.wait(ResponseReceived)
        assert got.response.status == 200
        bad = Endpoint(client_tls=client_tls_context([other.certificate]))
        with pytest.raises(SipTransportError, match="not trusted"):
            await bad.transport.send_request(request(to, ("127.0.0.1", 9)), to)
        for endpoint in (server, good, bad):
            await endpoint.transport.close()

    run(body())


def test_tls_listener_needs_a_certificate():
    async def body():
        endpoint = Endpoint()
        with pytest.raises(SipTransportError, match="server certificate"):
            await endpoint.transport.listen("tls", "127.0.0.1", 0)
        with pytest.raises(SipTransportError, match="unknown transport"):
            await endpoint.transport.listen("sctp", "127.0.0.1", 0)
        await endpoint.transport.close()

    run(body())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.sampled_from(["udp", "tcp"]))
def test_arbitrary_bytes_never_break_the_receive_path(data, kind):
    async def body():
        endpoint = Endpoint()
        endpoint.transport.inject(data, Peer(kind, "127.0.0.1", 9))
        sip = b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n" + data
        endpoint.transport.inject(sip, Peer(kind, "127.0.0.1", 9))
        await endpoint.transport.close()

    asyncio.run(body())


def test_a_burst_of_datagrams_is_read_and_answered_in_full():
    """More datagrams than one read takes (UDP_BURST), with keepalives and a request from
    a peer that is gone among them: every request is handled, each answered once."""
    from messenger.net.sip_transport import UDP_BURST

    async def body():
        server = Endpoint()
        host, port = await server.transport.listen("udp", "127.0.0.1", 0)
        count = UDP_BURST * 3 + 1
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            via = sock.getsockname()
            # a request from a peer gone before its answer: the answer goes nowhere
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
                gone.bind(("127.0.0.1", 0))
                stray = request(Peer("udp", host, port), gone.getsockname()).to_bytes()
                gone.sendto(stray, (host, port))
            for _ in range(count):
                sock.sendto(b"\r\n\r\n", (host, port))  # keepalive: ignored
                sock.sendto(request(Peer("udp", host, port), via).to_bytes(), (host, port))
            answers = []
            while len(answers) < count:
                data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
                answers.append(data)
        assert all(a.startswith(b"SIP/2.0 200 ") for a in answers)
        received = server.of(RequestReceived)
        assert len(received) == count + 1  # the stray one too
        assert server.transport._udp is not None
        await server.transport.close()
        assert server.transport._udp is None

    run(body())


def test_udp_listens_on_ipv6_loopback_and_by_name():
    async def body():
        named = Endpoint()
        host, _ = await named.transport.listen("udp", "localhost", 0)
        assert host in ("127.0.0.1", "::1")
        await named.transport.close()
        server, client = Endpoint(), Endpoint()
        try:
            host, port = await server.transport.listen("udp", "::1", 0)
        except SipTransportError as exc:
            pytest.skip(f"no IPv6 loopback on this machine: {exc}")
        via = await client.transport.listen("udp", "::1", 0)
        to = Peer("udp", host, port)
        written = Peer("udp", f"[{host}]", port)  # how a URI writes an IPv6 address
        await client.transport.send_request(request(written, (f"[{via[0]}]", via[1])), to)
        (got,) = await client.wait(ResponseReceived)
        assert got.response.status == 200
        await server.transport.close()
        await client.transport.close()

    run(body())
