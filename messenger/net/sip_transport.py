"""SIP over UDP, TCP and TLS on asyncio, driving the sans-IO transaction layer.

`SipTransport` owns the listening sockets, the stream connections (reused in both
directions: a connection is keyed by the remote address it talks to), and one
`messenger.sip.transaction.TransactionLayer`. It feeds the layer bytes with the loop's
clock, sends what the layer hands back, and arms one timer for the layer's deadlines.
What the layer reports (requests, responses, timeouts) goes to the ``on_event`` callback;
every SIP message that crosses the wire also goes to ``on_trace``.

Remote addresses are `Peer` values: transport, host and port. The transaction layer keeps
the `Peer` a request came from and answers there (RFC 3261 section 18.2.2 with RFC 3581
``rport``: the source address, not the Via).

Nothing here knows about users, bodies or security: this module moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from messenger.sip.events import SipEvent
from messenger.sip.framing import KEEPALIVE_PONG, StreamFramer, is_keepalive
from messenger.sip.message import SipRequest, SipResponse
from messenger.sip.transaction import TransactionKey, TransactionLayer

__all__ = [
    "TRANSPORTS",
    "UDP_MAX_REQUEST",
    "Peer",
    "SipTransport",
    "SipTransportError",
    "Trace",
    "advertised_host",
    "client_tls_context",
    "server_tls_context",
]

TRANSPORTS = ("udp", "tcp", "tls")

#: RFC 3261 section 18.1.1 / RFC 8591 section 7: a request larger than this never goes
#: over UDP.
UDP_MAX_REQUEST = 1300

#: Deadlines of the transaction layer are served in batches at most this often (seconds):
#: retransmission timers start at 500 ms, so a 50 ms lateness is harmless, and walking the
#: transactions once per batch keeps the cost flat under load.
_TIMER_BATCH = 0.05

#: How long name resolutions (and failures) are remembered, in seconds.
_NAME_TTL = 60.0
_NAME_FAILURE_TTL = 30.0


def client_tls_context(trust: Sequence[x509.Certificate] = ()) -> ssl.SSLContext:
    """A context for connecting to TLS servers: the server certificate must chain to one
    of ``trust`` (or, when it is empty, to the system's CAs) and name the host."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if trust:
        ctx.load_verify_locations(cadata=_pem(trust))
    return ctx


def server_tls_context(
    certificate: x509.Certificate, key: object, chain: Sequence[x509.Certificate] = ()
) -> ssl.SSLContext:
    """A context for a TLS listener presenting ``certificate`` (and ``chain``)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    key_pem = key.private_bytes(  # type: ignore[attr-defined]
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    # the ssl module loads a certificate chain only from a file: a private temporary one,
    # removed as soon as it is read
    fd, path = tempfile.mkstemp(prefix="sip-tls-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem + _pem([certificate, *chain]).encode("ascii"))
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
    return ctx


#: Bytes the kernel may queue for the UDP socket: a burst of protected MESSAGEs (about 2 kB
#: each) must wait there, not be dropped, while the agent verifies the ones before it.
UDP_RECEIVE_BUFFER = 8 * 1024 * 1024


def _enlarge_receive_buffer(sock: socket.socket | None) -> None:
    if sock is None:
        return
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            return
        except OSError:  # SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped
            continue


def advertised_host(bound: str, towards: str) -> str:
    """The address to put in Via and Contact for a socket bound to ``bound``: itself,
    unless it is a wildcard (0.0.0.0, ::), then the local address that routes to
    ``towards`` (no packet is sent to find it)."""
    if bound not in ("0.0.0.0", "::", ""):
        return bound
    family = socket.AF_INET6 if bound == "::" else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((towards, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1" if family == socket.AF_INET else "::1"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _pem(certificates: Sequence[x509.Certificate]) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certificates)


class SipTransportError(Exception):
    """A message could not be sent: no listener for the transport, connection refused,
    TLS verification failed. The text says what and where."""


@dataclass(frozen=True)
class Peer:
    """Where SIP bytes go or come from."""

    transport: str  # udp, tcp, tls
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True)
class Trace:
    """One SIP message that crossed the wire."""

    direction: str  # in, out
    peer: Peer
    data: bytes


class _Connection:
    """One TCP or TLS connection: a framer for what comes in, the writer for what goes out."""

    def __init__(self, owner: SipTransport, peer: Peer, writer: asyncio.StreamWriter) -> None:
        self.owner = owner
        self.peer = peer
        self.writer = writer
        self.framer = StreamFramer()
        self.task: asyncio.Task | None = None

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    messages = self.framer.feed(data)
                except Exception:  # SipParseError: the stream cannot be resynchronized
                    break
                if self.framer.take_pings():
                    self.writer.write(KEEPALIVE_PONG)
                for message in messages:
                    self.owner._incoming(message, self.peer)
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self.owner._forget(self)
            with contextlib.suppress(Exception):
                self.writer.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()


#: Datagrams read in one go when the UDP socket is readable: under load one wake-up of the
#: loop serves a burst of requests (and their answers share one group commit), while other
#: work still gets its turn between bursts.
UDP_BURST = 16
#: The largest SIP datagram read (a UDP payload cannot be larger).
_UDP_MAX = 65535


class _UdpSocket:
    """The UDP listener: a non-blocking socket the loop watches, read in bursts."""

    def __init__(self, owner: SipTransport, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        recvfrom = self.sock.recvfrom
        for _ in range(UDP_BURST):
            try:
                data, addr = recvfrom(_UDP_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error for something sent earlier: read on
                continue
            if self._closed:
                return
            if not is_keepalive(data):
                self.owner._incoming(data, Peer("udp", addr[0], addr[1]))

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            pass  # the send buffer is full: lost like any datagram (retransmissions cover it)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


async def _bind_udp(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``host``:``port`` (IPv4 or IPv6 by the host)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
    )
    if not infos:
        raise OSError(f"no address for {host}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class SipTransport:
    """Listeners, connections and the transaction layer of one user agent.

    ``on_event`` receives every `messenger.sip.events.SipEvent` the layer produces, in
    order, on the loop thread. ``on_trace`` receives a `Trace` per message in or out.
    ``client_tls`` is the context used to connect to TLS servers (it decides which server
    certificates are accepted); ``server_tls`` is needed to listen on TLS.
    """

    def __init__(
        self,
        *,
        on_event: Callable[[SipEvent], None],
        on_trace: Callable[[Trace], None] | None = None,
        client_tls: ssl.SSLContext | None = None,
        server_tls: ssl.SSLContext | None = None,
        layer: TransactionLayer | None = None,
    ) -> None:
        self.layer = layer or TransactionLayer()
        self.on_event = on_event
        self.on_trace = on_trace
        self.client_tls = client_tls
        self.server_tls = server_tls
        self.addresses: dict[str, tuple[str, int]] = {}
        self._udp: _UdpSocket | None = None
        self._servers: list[asyncio.Server] = []
        self._connections: dict[Peer, _Connection] = {}
        self._connecting: dict[Peer, asyncio.Future] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self._names: dict[str, tuple[float, str | None, str]] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    # -- listening -----------------------------------------------------------------------

    async def listen(self, transport: str, host: str, port: int) -> tuple[str, int]:
        """Bind a listener; returns the bound (host, port) (port 0 picks a free one)."""
        if transport == "udp":
            if self._udp is not None:
                raise SipTransportError("this agent already listens on UDP")
            try:
                sock = await _bind_udp(host, port)
            except OSError as exc:
                raise SipTransportError(f"cannot listen on udp:{host}:{port}: {exc}") from None
            _enlarge_receive_buffer(sock)
            self._udp = _UdpSocket(self, sock)
            bound = sock.getsockname()
        elif transport in ("tcp", "tls"):
            if transport == "tls" and self.server_tls is None:
                raise SipTransportError(
                    "listening on TLS needs a server certificate and key (none configured)"
                )
            if transport in self.addresses:
                raise SipTransportError(f"this agent already listens on {transport.upper()}")
            ctx = self.server_tls if transport == "tls" else None
            try:
                server = await asyncio.start_server(
                    lambda r, w: self._accepted(transport, r, w), host, port, ssl=ctx
                )
            except OSError as exc:
                raise SipTransportError(
                    f"cannot listen on {transport}:{host}:{port}: {exc}"
                ) from None
            self._servers.append(server)
            bound = server.sockets[0].getsockname()
        else:
            raise SipTransportError(f"unknown transport {transport!r} (udp, tcp or tls)")
        self.addresses[transport] = (bound[0], bound[1])
        return self.addresses[transport]

    def _accepted(
        self, transport: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        addr = writer.get_extra_info("peername")
        peer = Peer(transport, addr[0], addr[1])
        conn = _Connection(self, peer, writer)
        self._connections[peer] = conn
        conn.task = asyncio.ensure_future(conn.read_loop(reader))

    def _forget(self, conn: _Connection) -> None:
        if self._connections.get(conn.peer) is conn:
            del self._connections[conn.peer]

    # -- connections ---------------------------------------------------------------------

    async def resolve(self, peer: Peer) -> Peer:
        """``peer`` with its host name resolved to an address (without blocking the loop;
        answers are kept for a minute, failures for half a minute)."""
        if _is_ip(peer.host):
            return peer
        now = time.monotonic()
        cached = self._names.get(peer.host)
        if cached is None or cached[0] < now:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    peer.host, peer.port, type=socket.SOCK_DGRAM
                )
                cached = (now + _NAME_TTL, str(infos[0][4][0]), "")
            except (OSError, IndexError) as exc:
                cached = (now + _NAME_FAILURE_TTL, None, str(exc) or type(exc).__name__)
            self._names[peer.host] = cached
        _, address, problem = cached
        if address is None:
            raise SipTransportError(f"cannot resolve {peer.host}: {problem}")
        return Peer(peer.transport, address, peer.port)

    async def connect(self, peer: Peer) -> None:
        """Make sure a connection to ``peer`` exists (no-op for UDP). ``peer`` holds an
        address, not a name: see `resolve`."""
        if peer.transport == "udp":
            if self._udp is None:
                raise SipTransportError("no UDP listener: cannot send over UDP")
            return
        if peer in self._connections:
            return
        pending = self._connecting.get(peer)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future = asyncio.get_running_loop().create_future()
        self._connecting[peer] = future
        try:
            await self._open(peer)
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            del self._connecting[peer]

    async def _open(self, peer: Peer) -> None:
        ctx = None
        if peer.transport == "tls":
            ctx = self.client_tls
            if ctx is None:
                raise SipTransportError("no TLS trust configured: cannot connect over TLS")
        elif peer.transport != "tcp":
            raise SipTransportError(f"unknown transport {peer.transport!r}")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    peer.host,
                    peer.port,
                    ssl=ctx,
                    server_hostname=peer.host if ctx is not None else None,
                ),
                timeout=10,
            )
        except ssl.SSLCertVerificationError as exc:
            raise SipTransportError(
                f"the TLS server at {peer.host}:{peer.port} presented a certificate that is "
                f"not trusted ({exc.verify_message}); add its CA with --trust"
            ) from None
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise SipTransportError(
                f"cannot connect to {peer}: {exc or type(exc).__name__}"
            ) from None
        conn = _Connection(self, peer, writer)
        self._connections[peer] = conn
        conn.task = asyncio.ensure_future(conn.read_loop(reader))

    def local_address(self, peer: Peer) -> tuple[str, int]:
        """The sent-by address for a request to ``peer``: our listener for its transport,
        or the local end of the connection when we do not listen on it. A listener bound
        to every interface is named by the interface that leads to ``peer``."""
        if peer.transport in self.addresses:
            host, port = self.addresses[peer.transport]
        else:
            conn = self._connections.get(peer)
            if conn is not None:
                name = conn.writer.get_extra_info("sockname")
                return (name[0], name[1])
            if not self.addresses:
                raise SipTransportError("the agent has no listener")
            host, port = next(iter(self.addresses.values()))
        return (advertised_host(host, peer.host), port)

    # -- sending -------------------------------------------------------------------------

    async def send_request(self, request: SipRequest, peer: Peer) -> TransactionKey:
        """Start a client transaction for ``request`` towards ``peer``."""
        if self._closed:
            raise SipTransportError("the transport is closed")
        peer = await self.resolve(peer)
        await self.connect(peer)
        now = self.loop.time()
        key = self.layer.send_request(request, remote=peer, reliable=peer.reliable, now=now)
        tx = self.layer.transaction(key)
        self._pump(now, tx.next_timer() if tx is not None else None)
        return key

    def send_response(self, key: TransactionKey, response: SipResponse) -> None:
        """Answer the request of server transaction ``key``."""
        now = self.loop.time()
        self.layer.send_response(key, response, now)
        self._pump(now)

    def cancel(self, key: TransactionKey) -> bool:
        """Cancel the pending INVITE of client transaction ``key`` (RFC 3261 section 9.1);
        False when there is nothing left to cancel."""
        now = self.loop.time()
        cancelled = self.layer.cancel(key, now) is not None
        self._pump(now, self.layer.next_timer())
        return cancelled

    def send_stateless(self, message: SipRequest | SipResponse | bytes, peer: Peer) -> None:
        self.layer.send_stateless(message, peer)
        self._pump(self.loop.time())

    def _write(self, data: bytes, peer: object) -> bool:
        if not isinstance(peer, Peer):
            return False
        try:
            if peer.transport == "udp":
                if self._udp is None:
                    return False
                self._udp.sendto(data, (peer.host, peer.port))
            else:
                conn = self._connections.get(peer)
                if conn is None:
                    return False
                conn.write(data)
        except (OSError, RuntimeError):
            return False
        if self.on_trace is not None:
            self.on_trace(Trace("out", peer, data))
        return True

    # -- receiving -----------------------------------------------------------------------

    def _incoming(self, data: bytes, peer: Peer) -> None:
        if self._closed:
            return
        if self.on_trace is not None:
            self.on_trace(Trace("in", peer, data))
        now = self.loop.time()
        self.layer.receive_data(data, remote=peer, reliable=peer.reliable, now=now)
        self._pump(now)

    def inject(self, data: bytes, peer: Peer) -> None:
        """Feed bytes as if they had arrived from ``peer`` (responses go back to it)."""
        self._incoming(data, peer)

    # -- the layer's output --------------------------------------------------------------

    def _pump(self, now: float, hint: float | None = None) -> None:
        layer = self.layer
        while True:
            outgoing = layer.messages_to_send()
            events = layer.events()
            if not outgoing and not events:
                break
            for out in outgoing:
                self._write(out.data, out.remote)
            for event in events:  # a callback may answer at once: loop for its output
                self.on_event(event)
        if len(layer) and not self._closed:
            self._arm(now, hint)

    def _arm(self, now: float, hint: float | None) -> None:
        """Arm the timer for the layer's earliest deadline. ``hint`` is the deadline of a
        transaction just created: it may be earlier than the one armed."""
        if self._timer is not None:
            if hint is None or self._timer_at is None or hint >= self._timer_at:
                return
            self._timer.cancel()
            deadline: float | None = hint
        else:
            deadline = self.layer.next_timer()
            if deadline is None:
                return
        at = max(deadline, now + _TIMER_BATCH)
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self.loop.time()
        self.layer.handle_timer(now)
        self._pump(now)

    # -- closing -------------------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for conn in list(self._connections.values()):
            conn.close()
        self._connections.clear()
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
