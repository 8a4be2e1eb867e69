"""MSRP over TCP and TLS with asyncio (RFC 4975 section 6, RFC 6135 connection setup).

This module moves bytes between a socket and an `messenger.msrp.session.MsrpSession`, arms
its timer and applies backpressure; every protocol decision is the session's.

* Active side (``a=setup:active``, or a client of a relay): `connect` opens the connection
  to the first hop of the session's To-Path and writes first; when nothing is queued it
  writes an empty SEND so the passive side can tie the connection to the session.
* Passive side: an `MsrpListener` accepts connections on one port for any number of
  sessions; `MsrpListener.expect` returns the `MsrpConnection` that a connection is
  attached to once its first request names the session's session-id in its To-Path.
  A first request naming no expected session gets 481 and the connection is closed.

Backpressure: frames are pulled from the session only while the socket's write buffer is
below its high-water mark (``pause_writing``/``resume_writing``, the mechanism under
``drain()``), so a large message is never copied ahead of the socket.

Every event of the session is handed, in order and on the loop's thread, to the
``on_event`` callback, followed by one `ConnectionClosed` when the connection ends. A
connection that drops mid-transfer fails every unfinished message in both directions
(`OutgoingFailed`, `IncomingAborted`): nothing incomplete is ever delivered.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from messenger.msrp.errors import MsrpError, MsrpParseError
from messenger.msrp.frame import MsrpResponse
from messenger.msrp.session import MsrpSession, ProtocolError, SessionEvent
from messenger.msrp.uri import MsrpUri, parse_path

__all__ = [
    "ConnectionClosed",
    "MsrpConnection",
    "MsrpListener",
    "MsrpTransportError",
    "connect",
]

DEFAULT_WRITE_BUDGET = 1 << 20
DEFAULT_HIGH_WATER = 4 << 20
_FIRST_FRAME_LIMIT = 16 * 1024

EventCallback = Callable[[SessionEvent], None]


class MsrpTransportError(MsrpError):
    """A connection could not be opened or attached (with words saying why)."""


@dataclass(frozen=True)
class ConnectionClosed(SessionEvent):
    """The connection of a session ended. ``clean`` when we closed it ourselves with
    nothing in flight; otherwise ``reason`` says what happened."""

    reason: str
    clean: bool


class MsrpConnection(asyncio.Protocol):
    """One session on one connection. States: ``waiting`` (passive, no connection yet),
    ``open``, ``closed`` (``close_reason`` says why)."""

    def __init__(
        self,
        session: MsrpSession,
        on_event: EventCallback,
        *,
        write_budget: int = DEFAULT_WRITE_BUDGET,
        high_water: int = DEFAULT_HIGH_WATER,
    ) -> None:
        self.session = session
        self._on_event = on_event
        self.write_budget = write_budget
        self.high_water = high_water
        self.state = "waiting"
        self.close_reason = ""
        self.peername: tuple[Any, ...] | None = None
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._opened.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._closing_reason: str | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.peername = transport.get_extra_info("peername")
        transport.set_write_buffer_limits(high=self.high_water)
        self.state = "open"
        if not self._opened.done():
            self._opened.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.state != "open":
            return
        self._emit(self.session.feed(data, now=self._loop.time()))
        self._flush()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._flush()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        self._cancel_timer()
        if self._closing_reason is not None:
            reason = self._closing_reason
        elif exc is not None:
            reason = f"the connection failed: {exc}"
        else:
            reason = "the peer closed the connection"
        self.close_reason = reason
        events = self.session.connection_lost(reason, now=self._loop.time())
        clean = self._closing_reason is not None and not events
        self._emit(events)
        self._emit([ConnectionClosed(reason, clean)])
        if not self._opened.done():
            self._opened.set_exception(MsrpTransportError(reason))
        if not self._closed.done():
            self._closed.set_result(None)

    # -- driving the session -----------------------------------------------------------------
    def _emit(self, events: Sequence[SessionEvent]) -> None:
        for event in events:
            self._on_event(event)
            if isinstance(event, ProtocolError):
                self._closing_reason = event.reason
                self._flush()
                if self._transport is not None:
                    self._transport.close()
        self._arm_timer()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None or self.state != "open" or transport.is_closing():
            return
        while not self._paused and self.session.has_output():
            buffers = self.session.pull(self.write_budget)
            if not buffers:
                break
            for buffer in buffers:
                transport.write(buffer)
        events = self.session.take_events()
        if events:
            self._emit(events)
        else:
            self._arm_timer()

    def _arm_timer(self) -> None:
        self._cancel_timer()
        if self.state != "open":
            return
        deadline = self.session.next_deadline()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self.state == "open":
            self._emit(self.session.tick(now=self._loop.time()))
            self._flush()

    # -- public ------------------------------------------------------------------------------
    def send_message(
        self,
        body: bytes | bytearray | memoryview,
        content_type: str,
        **kwargs: Any,
    ) -> str:
        """Queue a message on the session (see `MsrpSession.send_message`) and start
        writing it; returns the Message-ID. Progress and the outcome arrive as events."""
        if self.state == "closed":
            raise MsrpTransportError(f"the MSRP connection is closed: {self.close_reason}")
        message_id = self.session.send_message(body, content_type, **kwargs)
        self._flush()
        return message_id

    def cancel(self, message_id: str) -> None:
        """Abort an outgoing message (``#`` on the wire when part of it was written)."""
        self._emit(self.session.cancel(message_id, now=self._loop.time()))
        self._flush()

    def authorize(self, relay: MsrpUri) -> None:
        """Send AUTH to a relay (RFC 4976); a `RelayAuthorized` event carries its answer."""
        self.session.authorize(relay)
        self._flush()

    def flush(self) -> None:
        """Write whatever the session has queued (after calling the session directly)."""
        self._flush()

    async def wait_open(self, timeout: float | None = None) -> None:
        """Wait until a connection is attached. Raises `MsrpTransportError` on timeout."""
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), timeout)
        except TimeoutError:
            raise MsrpTransportError(
                f"no MSRP connection arrived within {timeout:g} s: the peer did not connect"
            ) from None

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def close(self, reason: str = "the session was closed") -> None:
        """Close the connection after writing what is queued. Unfinished transfers fail."""
        if self.state == "closed":
            return
        if self._closing_reason is None:
            self._closing_reason = reason
        if self._transport is None:
            self.connection_lost(None)
            return
        self._flush()
        self._transport.close()

    def abort(self, reason: str) -> None:
        """Drop the connection at once, without writing what is queued."""
        if self._closing_reason is None:
            self._closing_reason = reason
        if self._transport is None:
            self.connection_lost(None)
        else:
            self._transport.abort()


async def connect(
    session: MsrpSession,
    on_event: EventCallback,
    *,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    host: str | None = None,
    port: int | None = None,
    bind: bool = True,
    timeout: float = 10.0,
    **kwargs: Any,
) -> MsrpConnection:
    """Open the active side: connect to the first hop of the session's To-Path (or to
    ``host``/``port``), over TLS when ``ssl`` is given (needed for ``msrps`` URIs), and
    write an empty SEND when ``bind`` and nothing else is queued."""
    first = session.to_path[0]
    if first.secure and ssl is None:
        raise MsrpTransportError(f"{first} needs TLS: pass an ssl context")
    loop = asyncio.get_running_loop()
    host = host or first.host.strip("[]")
    port = port or first.effective_port
    connection = MsrpConnection(session, on_event, **kwargs)
    try:
        await asyncio.wait_for(
            loop.create_connection(
                lambda: connection,
                host,
                port,
                ssl=ssl,
                server_hostname=(server_hostname or host) if ssl is not None else None,
            ),
            timeout,
        )
    except (OSError, TimeoutError, ssl_module.SSLError) as exc:
        raise MsrpTransportError(
            f"cannot connect to the MSRP peer at {host}:{port}: {exc or 'timed out'}"
        ) from None
    if bind and not session.has_output():
        session.bind()
    connection.flush()
    return connection


class _Acceptor(asyncio.Protocol):
    """A fresh incoming connection, until its first request names a session."""

    def __init__(self, listener: MsrpListener) -> None:
        self._listener = listener
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._listener._acceptors.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener._acceptors.discard(self)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        end_line = self._buf.find(b"\r\n-------")
        cut = min(i for i in (end, end_line, len(self._buf)) if i >= 0)
        head = bytes(self._buf[:cut])
        lines = head.split(b"\r\n")
        to_path = next((line for line in lines[1:] if line.startswith(b"To-Path: ")), None)
        from_path = next((line for line in lines[1:] if line.startswith(b"From-Path: ")), None)
        if to_path is None:
            if end < 0 and end_line < 0 and len(self._buf) < _FIRST_FRAME_LIMIT:
                return  # wait for the rest of the head
            self._transport.close()
            return
        parts = lines[0].split(b" ")
        tid = parts[1].decode("ascii", "replace") if len(parts) >= 3 else None
        try:
            uris = parse_path(to_path[len(b"To-Path: ") :].decode("utf-8"))
            back = parse_path(from_path[len(b"From-Path: ") :].decode("utf-8"))[0]
        except (MsrpParseError, UnicodeDecodeError, TypeError):
            self._reject(tid, None, None, 400, "Bad Request")
            return
        connection = self._listener._expected.pop(uris[0].session_id or "", None)
        if connection is None or connection.state != "waiting":
            self._reject(tid, back, uris[0], 481, "No Such Session")
            return
        self._listener._acceptors.discard(self)
        transport = self._transport
        transport.set_protocol(connection)
        connection.connection_made(transport)
        data, self._buf = bytes(self._buf), bytearray()
        connection.data_received(data)

    def _reject(
        self,
        tid: str | None,
        to_uri: MsrpUri | None,
        from_uri: MsrpUri | None,
        status: int,
        comment: str,
    ) -> None:
        assert self._transport is not None
        if tid is not None and to_uri is not None and from_uri is not None:
            headers = (("To-Path", str(to_uri)), ("From-Path", str(from_uri)))
            try:
                self._transport.write(MsrpResponse(tid, status, comment, headers).to_bytes())
            except MsrpError:
                pass
        self._transport.close()


class MsrpListener:
    """Accepts MSRP connections on one address (TCP, or TLS with ``ssl``) and hands each
    to the session it names."""

    def __init__(self) -> None:
        self._server: asyncio.AbstractServer | None = None
        self._expected: dict[str, MsrpConnection] = {}
        self._acceptors: set[_Acceptor] = set()
        self.address: tuple[str, int] = ("", 0)
        self.secure = False

    @classmethod
    async def start(
        cls, host: str = "127.0.0.1", port: int = 0, *, ssl: ssl_module.SSLContext | None = None
    ) -> MsrpListener:
        listener = cls()
        loop = asyncio.get_running_loop()
        try:
            listener._server = await loop.create_server(
                lambda: _Acceptor(listener), host, port, ssl=ssl
            )
        except OSError as exc:
            raise MsrpTransportError(f"cannot listen for MSRP on {host}:{port}: {exc}") from None
        sock = listener._server.sockets[0].getsockname()
        listener.address = (sock[0], sock[1])
        listener.secure = ssl is not None
        return listener

    def uri(self, session_id: str) -> MsrpUri:
        """The MSRP URI of a session on this listener (for ``a=path``)."""
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        scheme = "msrps" if self.secure else "msrp"
        return MsrpUri.parse(f"{scheme}://{host}:{port}/{session_id};tcp")

    def expect(
        self, session: MsrpSession, on_event: EventCallback, **kwargs: Any
    ) -> MsrpConnection:
        """The connection that the session's peer (or relay) will open; wait for it with
        `MsrpConnection.wait_open`."""
        session_id = session.local_uri.session_id or ""
        if session_id in self._expected:
            raise MsrpTransportError(f"session {session_id} is already expected")
        connection = MsrpConnection(session, on_event, **kwargs)
        self._expected[session_id] = connection
        return connection

    def forget(self, connection: MsrpConnection) -> None:
        """Stop expecting a connection for this session."""
        self._expected.pop(connection.session.local_uri.session_id or "", None)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for acceptor in list(self._acceptors):
            if acceptor._transport is not None:
                acceptor._transport.close()
        for connection in list(self._expected.values()):
            connection.close("the listener was closed")
        self._expected.clear()
