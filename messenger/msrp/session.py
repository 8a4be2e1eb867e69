"""One MSRP session endpoint (RFC 4975, relays per RFC 4976), sans-IO.

An `MsrpSession` is fed the bytes its connection receives and the current time, and hands
back events and the bytes to write. It never reads a clock or touches a socket::

    session = MsrpSession(local_uri=me, to_path=[relay, peer], now=t)
    session.send_message(body, "application/pkcs7-mime; smime-type=authEnveloped-data")
    while (data := session.pull(1 << 20)):        # frames, produced as room allows
        write(data)
    events = session.feed(received_bytes, now=t)  # responses, REPORTs, incoming messages
    events += session.tick(now=t)                 # at session.next_deadline()

Sending: the whole message is given at once (already protected, RFC 8591 section 8); it is
cut into SEND chunks of at most ``chunk_size`` body bytes, each with
``Byte-Range: start-end/total``. `pull` produces frames on demand, so a large message is
never serialized ahead of the connection: a chunk body is written as a memoryview slice of
the message. When `pull` is given a budget smaller than a chunk, the chunk is written as
``start-*/total`` and may be interrupted (ended with ``+``) to let a newer message through,
then resumed with a new chunk (RFC 4975 section 5.1). `cancel` aborts a message with ``#``.
A 413 for a message being sent (its receiver stopped it) stops it at once: a chunk of it
being written ends with ``#`` and no further chunk goes out.

Receiving: chunks go to a `Reassembler` (reordered, re-chunked, overlapping chunks; the
total is checked against ``max_message_size`` before the buffer is allocated). Every SEND
gets its transaction response unless its Failure-Report says otherwise:

=====  ============================================================================
200    the chunk was taken (this says nothing about decryption, RFC 8591 section 8.5)
400    malformed request or Byte-Range, a chunk contradicting its message
403    From-Path does not end at the peer this session was negotiated with
413    message total above ``max_message_size`` (before anything is allocated), too
       many incomplete messages, or a chunk of a message already refused or stopped
       by `refuse` (the receiver does not want the rest of it)
415    Content-Type not in ``accept_types``
481    the To-Path does not name this session
501    unknown method
=====  ============================================================================

Success-Report: yes gets a REPORT with ``Status: 000 200 OK`` once the whole message has
arrived; a message refused after some of its chunks were taken, or left incomplete for
``incomplete_timeout`` seconds, gets a failure REPORT when its Failure-Report is ``yes``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from random import Random

from .chunking import DEFAULT_MAX_MESSAGE_SIZE, Reassembler
from .errors import MsrpError, MsrpParseError
from .frame import (
    _IDENT,
    ByteRange,
    FrameParser,
    MsrpFrame,
    MsrpRequest,
    MsrpResponse,
    Status,
    _end_line_in,
    response_to,
)
from .ids import new_message_id, new_transaction_id
from .uri import MsrpUri

__all__ = [
    "DEFAULT_SESSION_CHUNK_SIZE",
    "STOPPED_BY_RECEIVER",
    "IncomingAborted",
    "IncomingMessage",
    "IncomingProgress",
    "IncomingRefused",
    "MsrpSession",
    "OutgoingDelivered",
    "OutgoingFailed",
    "OutgoingProgress",
    "ProtocolError",
    "RelayAuthorized",
    "ReportReceived",
    "SessionEvent",
]

DEFAULT_SESSION_CHUNK_SIZE = 256 * 1024
DEFAULT_MAX_CHUNK_BODY = 4 * 1024 * 1024
DEFAULT_RESPONSE_TIMEOUT = 30.0  # RFC 4975 section 7.1: 30 s, then treat as 408
DEFAULT_INCOMPLETE_TIMEOUT = 120.0
_FAILURE_REPORT = ("yes", "no", "partial")
_TID_ATTEMPTS = 16
_REMEMBERED_REFUSED = 256
#: The reason of the `IncomingAborted` of a message its receiver stopped (`refuse`).
STOPPED_BY_RECEIVER = "stopped by the receiver"


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionEvent:
    """Base of what an `MsrpSession` reports."""


@dataclass(frozen=True)
class IncomingProgress(SessionEvent):
    """A chunk of an incoming message was stored: ``received`` of ``total`` bytes."""

    message_id: str
    received: int
    total: int
    content_type: str | None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class IncomingMessage(SessionEvent):
    """A whole incoming message. ``body`` is bytes, or the buffer the session's
    ``buffer_factory`` allocated (nothing copied). ``headers`` are the MIME headers of its
    first chunk other than Content-Type (Content-Disposition, ...)."""

    message_id: str
    content_type: str | None
    body: object = field(repr=False)
    total: int
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class IncomingAborted(SessionEvent):
    """An incoming message will not complete: the sender aborted it (``#``), it timed out,
    it was refused part-way, or the connection closed. Its bytes were discarded."""

    message_id: str
    received: int
    total: int | None
    reason: str


@dataclass(frozen=True)
class IncomingRefused(SessionEvent):
    """We answered a request with an error status (400, 403, 413, 415, 481, 501)."""

    message_id: str | None
    status: int
    reason: str


@dataclass(frozen=True)
class OutgoingProgress(SessionEvent):
    """``acknowledged`` bytes of an outgoing message got a 200 (or were written, when the
    message asked for no responses); ``sent`` bytes were written."""

    message_id: str
    sent: int
    acknowledged: int
    total: int


@dataclass(frozen=True)
class OutgoingDelivered(SessionEvent):
    """Every chunk of an outgoing message was acknowledged, and, when a success report was
    asked for, the peer's REPORT said it received all of it (``reported`` True)."""

    message_id: str
    total: int
    reported: bool


@dataclass(frozen=True)
class OutgoingFailed(SessionEvent):
    """An outgoing message did not go through: an error response or failure REPORT
    (``status`` as received), no response in time (408), cancelled by us (``status`` 0,
    ``cancelled`` True), or the connection closed (``status`` 0). ``stopped``: the receiver
    stopped it part-way (a 413 after it had taken some of it, RFC 4975 section 10.5)."""

    message_id: str
    status: int
    comment: str
    reason: str
    sent: int
    total: int
    cancelled: bool = False
    stopped: bool = False


@dataclass(frozen=True)
class ReportReceived(SessionEvent):
    """A REPORT for one of our messages."""

    message_id: str
    status: Status
    byte_range: ByteRange | None


@dataclass(frozen=True)
class RelayAuthorized(SessionEvent):
    """The relay answered our AUTH (RFC 4976 section 5) with its Use-Path."""

    use_path: tuple[MsrpUri, ...]
    expires: int | None


@dataclass(frozen=True)
class ProtocolError(SessionEvent):
    """The byte stream broke the MSRP framing; the connection cannot be used any more."""

    status: int | None
    reason: str


# -- outgoing state ----------------------------------------------------------------------


@dataclass
class _Outgoing:
    message_id: str
    body: memoryview
    content_type: str
    msrp_headers: tuple[tuple[str, str], ...]
    mime_headers: tuple[tuple[str, str], ...]
    success_report: bool
    failure_report: str
    total: int
    sent: int = 0  # bytes framed (body bytes of chunks written, closed or open)
    acked: int = 0  # bytes covered by 200 responses (contiguous prefix)
    acked_ranges: list[tuple[int, int]] = field(default_factory=list)
    outstanding: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    tids: list[str] = field(default_factory=list)
    source: object = None
    reported_bytes: int = 0  # prefix the peer's success REPORTs covered
    reported_at: float = 0.0  # when that prefix last grew (or the message was queued)
    done_sending: bool = False
    reported: bool = False


@dataclass
class _OpenChunk:
    outgoing: _Outgoing
    transaction_id: str
    start: int  # 0-based offset of the first body byte of the chunk
    limit: int  # 0-based offset the chunk may run to


@dataclass
class _IncomingInfo:
    """A message arriving: made when its first chunk is taken."""

    headers: tuple[tuple[str, str], ...]
    success_report: bool
    failure_report: str
    opened: float
    from_path: str | None = None  # of its first chunk: where REPORTs about it go
    reported: int = 0  # prefix covered by our last partial success REPORT


class MsrpSession:
    """One end of one MSRP session.

    ``local_uri`` is our URI (its session-id is what incoming To-Paths must name).
    ``to_path`` is the path we send to, first hop first: our relays (from their AUTH
    Use-Path), then the peer's ``a=path`` (its relays, then the peer). The connection goes
    to ``to_path[0]``. With ``check_from_path`` incoming requests must come from
    ``to_path[-1]`` (the peer), else 403.

    ``accept_types``: media types taken in SEND (``*`` or ``type/*`` allowed); others get
    415. ``buffer_factory``: allocates the buffer of each incoming message (see
    `Reassembler`). ``rng``: pins the identifiers in tests.

    End-to-end pacing (relays answer each chunk themselves, RFC 4976 section 7.3, and may
    drop what they cannot forward): a receiver with ``report_interval`` sends a success
    REPORT for the received prefix of a message (``1-N/total``) each time ``N`` grows by
    that many bytes, when the message asked for success reports. A sender with ``window``
    keeps at most that many bytes of a message with Success-Report beyond the prefix the
    peer reported, and fails it with 408 when that prefix stops growing for
    ``response_timeout`` seconds. ``incomplete_timeout`` counts from the last chunk of an
    incoming message.
    """

    def __init__(
        self,
        *,
        local_uri: MsrpUri,
        to_path: Sequence[MsrpUri],
        now: float,
        chunk_size: int = DEFAULT_SESSION_CHUNK_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_chunk_body: int = DEFAULT_MAX_CHUNK_BODY,
        max_pending: int = 16,
        accept_types: Sequence[str] = ("*",),
        check_from_path: bool = True,
        buffer_factory: Callable[[int], object] | None = None,
        response_timeout: float = DEFAULT_RESPONSE_TIMEOUT,
        incomplete_timeout: float = DEFAULT_INCOMPLETE_TIMEOUT,
        report_interval: int | None = None,
        window: int | None = None,
        rng: Random | None = None,
    ) -> None:
        if not to_path:
            raise MsrpError("an MSRP session needs a To-Path of at least one URI")
        if chunk_size < 1:
            raise MsrpError("chunk_size must be at least 1")
        if local_uri.session_id is None:
            raise MsrpError("the local MSRP URI needs a session-id")
        self.local_uri = local_uri
        self.to_path: tuple[MsrpUri, ...] = tuple(to_path)
        self.chunk_size = chunk_size
        self.max_message_size = max_message_size
        self.accept_types = tuple(t.lower() for t in accept_types)
        self.check_from_path = check_from_path
        self.response_timeout = response_timeout
        self.incomplete_timeout = incomplete_timeout
        self.report_interval = report_interval
        self.window = window
        self._rng = rng
        self._now = now
        self._parser = FrameParser(max_body_size=max_chunk_body)
        self._reassembler = Reassembler(
            max_message_size=max_message_size,
            max_pending=max_pending,
            buffer_factory=buffer_factory,
        )
        self._incoming: dict[str, _IncomingInfo] = {}
        self._refused: OrderedDict[str, int] = OrderedDict()
        self._queue: list[_Outgoing] = []  # messages with chunks still to write
        self._outgoing: dict[str, _Outgoing] = {}  # not yet delivered or failed
        self._transactions: dict[str, str] = {}  # our SEND transaction id -> Message-ID
        self._control: list[bytes] = []  # responses, REPORTs, AUTH, bind: written first
        self._open: _OpenChunk | None = None
        self._auth_tid: str | None = None
        self._failed: ProtocolError | None = None
        self._closed = False
        self._deferred: list[SessionEvent] = []  # events caused by writing (see take_events)

    # -- identifiers -----------------------------------------------------------------------
    def _tid(self) -> str:
        return new_transaction_id(self._rng)

    @property
    def to_path_text(self) -> str:
        return " ".join(str(u) for u in self.to_path)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- sending ---------------------------------------------------------------------------
    def send_message(
        self,
        body: bytes | bytearray | memoryview,
        content_type: str,
        *,
        message_id: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        success_report: bool = False,
        failure_report: str = "yes",
    ) -> str:
        """Queue a whole message; return its Message-ID. The body is referenced, not copied:
        do not change it until the message is delivered or failed.

        ``headers``: MIME headers (``Content-Disposition``...) written after Byte-Range on
        every chunk. ``failure_report``: ``yes`` (a response to every chunk), ``partial``
        (error responses only) or ``no``.
        """
        if self._closed:
            raise MsrpError("the session is closed")
        if failure_report not in _FAILURE_REPORT:
            raise MsrpError(f"Failure-Report must be one of {', '.join(_FAILURE_REPORT)}")
        if not content_type:
            raise MsrpError("a message needs a Content-Type")
        message_id = message_id or new_message_id(self._rng)
        if not _IDENT.fullmatch(message_id):
            raise MsrpError(f"Message-ID {message_id[:40]!r} is not an ident (4 to 32 characters)")
        if message_id in self._outgoing:
            raise MsrpError(f"a message with Message-ID {message_id} is already being sent")
        mime = []
        for name, value in headers:
            if not name.lower().startswith("content-") or name.lower() == "content-type":
                raise MsrpError(f"{name} is not a MIME header a message may carry")
            mime.append((name, value))
        msrp_headers = []
        if success_report:
            msrp_headers.append(("Success-Report", "yes"))
        if failure_report != "yes":
            msrp_headers.append(("Failure-Report", failure_report))
        view = memoryview(body).cast("B")
        head = (("To-Path", self.to_path_text), ("From-Path", str(self.local_uri)))
        try:  # the headers must make a well-formed frame
            MsrpRequest(
                "SEND",
                "check",
                (*head, *msrp_headers, *mime, ("Content-Type", content_type)),
            )
        except MsrpError as exc:
            raise MsrpError(f"these headers cannot go into an MSRP SEND: {exc}") from None
        out = _Outgoing(
            message_id,
            view,
            content_type,
            tuple(msrp_headers),
            tuple(mime),
            success_report,
            failure_report,
            len(view),
            source=body,
            reported_at=self._now,
        )
        self._outgoing[message_id] = out
        self._queue.append(out)
        return message_id

    def bind(self) -> None:
        """Queue an empty SEND (RFC 6135 / RFC 4975 section 5.4): the active side writes one
        when it has nothing else to send, so the passive side can tie the connection to the
        session."""
        headers = (
            ("To-Path", self.to_path_text),
            ("From-Path", str(self.local_uri)),
            ("Message-ID", new_message_id(self._rng)),
            ("Byte-Range", "1-0/0"),
        )
        self._control.append(MsrpRequest("SEND", self._tid(), headers).to_bytes())

    def authorize(self, relay: MsrpUri) -> None:
        """Queue an AUTH to ``relay`` (RFC 4976 section 5); its 200 gives `RelayAuthorized`.
        Put the Use-Path in front of the peer's path with `set_to_path`."""
        self._auth_tid = self._tid()
        headers = (("To-Path", str(relay)), ("From-Path", str(self.local_uri)))
        self._control.append(MsrpRequest("AUTH", self._auth_tid, headers).to_bytes())

    def set_to_path(self, to_path: Sequence[MsrpUri]) -> None:
        """Change the path of what is sent from now on (after an AUTH, an SDP update)."""
        if not to_path:
            raise MsrpError("an MSRP session needs a To-Path of at least one URI")
        self.to_path = tuple(to_path)

    def cancel(self, message_id: str, *, now: float | None = None) -> list[SessionEvent]:
        """Abort an outgoing message. If part of it was written, a chunk ending in ``#``
        tells the peer to discard it. Returns its `OutgoingFailed` (cancelled)."""
        if now is not None:
            self._now = now
        out = self._outgoing.get(message_id)
        if out is None:
            return []
        open_here = self._open is not None and self._open.outgoing is out
        if out.sent > 0 and not out.done_sending and not open_here:
            self._control.append(self._abort_chunk(out))
        return [self._fail(out, 0, "", "the transfer was cancelled", cancelled=True)]

    def refuse(self, message_id: str, *, now: float | None = None) -> list[SessionEvent]:
        """Stop an incoming message part-way, as its receiver (RFC 4975 sections 7.1.2 and
        10.5): what arrived of it is discarded, every further chunk of it is answered with
        413 ("send no more of this message"), and when it asked for failure reports a
        REPORT with status 413 tells the sender at once (a REPORT also crosses relays that
        answer chunks themselves). Returns its `IncomingAborted`, or nothing when no such
        message is arriving (never seen, already whole, or already ended)."""
        if now is not None:
            self._now = now
        progress = self._reassembler.progress(message_id)
        if progress is None:
            return []
        received, total = progress
        prefix = self._reassembler.contiguous(message_id)
        info = self._incoming.pop(message_id, None)
        self._reassembler.discard(message_id)
        self._remember_refused(message_id, 413)
        if info is not None and info.failure_report == "yes" and not self._closed:
            # Byte-Range: the bytes it had taken (and now discarded), when they start at 1
            self._control.append(
                self._report_bytes(
                    message_id,
                    413,
                    total if prefix else None,
                    None,
                    prefix,
                    to_path=info.from_path,
                )
            )
        return [IncomingAborted(message_id, received, total, STOPPED_BY_RECEIVER)]

    def take_events(self) -> list[SessionEvent]:
        """Events that writing caused (a message sent without responses is delivered once
        written); call after `pull`. `feed` and `tick` return them too."""
        events, self._deferred = self._deferred, []
        return events

    def has_output(self) -> bool:
        """Whether `pull` has something to write."""
        if self._control or self._open is not None:
            return True
        return any(not m.done_sending and (self._room(m) > 0 or m.total == 0) for m in self._queue)

    def pull(self, budget: int = 1 << 20) -> list[bytes | memoryview]:
        """The next buffers to write, about ``budget`` bytes at most (a frame head is never
        split), or ``[]`` when there is nothing to write. Chunk bodies are memoryview
        slices of the message. Responses and REPORTs go first: a chunk being written is
        finished when what is left fits the budget, else interrupted (ended with ``+``)."""
        if self._control and self._open is not None:
            chunk = self._open
            if chunk.limit - chunk.outgoing.sent <= budget:
                return self._write_body(chunk.limit)
            end = self._close_chunk("+")
            return [end, *self.pull(budget)]
        if self._control:
            out: list[bytes | memoryview] = []
            size = 0
            while self._control and (size == 0 or size < budget):
                item = self._control.pop(0)
                size += len(item)
                out.append(item)
            return out
        if self._open is not None:
            return self._continue_chunk(budget)
        for message in list(self._queue):
            if message.done_sending or message.message_id not in self._outgoing:
                self._queue.remove(message)
                continue
            if self._room(message) > 0 or message.total == 0:
                return self._start_chunk(message, budget)
        return []

    def _window_stalled(self, out: _Outgoing) -> bool:
        """Whether ``out`` waits for the peer's REPORT before it may send more."""
        return (
            self.window is not None
            and out.success_report
            and not out.done_sending
            and self._room(out) <= 0
        )

    def _room(self, out: _Outgoing) -> int:
        """Bytes the window lets ``out`` send now (the rest of it without a window)."""
        if self.window is None or not out.success_report:
            return out.total - out.sent
        return min(out.total - out.sent, out.reported_bytes + self.window - out.sent)

    def _start_chunk(self, out: _Outgoing, budget: int) -> list[bytes | memoryview]:
        start = out.sent
        limit = min(start + self.chunk_size, out.total)
        if out.total:
            limit = min(limit, start + self._room(out))
        tid = self._tid()
        for _ in range(_TID_ATTEMPTS):
            if not _end_line_within(out, start, limit, tid):
                break
            tid = self._tid()
        else:  # pragma: no cover - needs 16 ids found in one chunk
            raise MsrpError("cannot find a transaction id absent from the chunk body")
        whole = limit - start <= max(budget, 1)
        byte_range = ByteRange(start + 1, limit if whole else None, out.total)
        headers = (
            ("To-Path", self.to_path_text),
            ("From-Path", str(self.local_uri)),
            ("Message-ID", out.message_id),
            *out.msrp_headers,
            ("Byte-Range", str(byte_range)),
            *out.mime_headers,
            ("Content-Type", out.content_type),
        )
        head = self._head("SEND", tid, headers) + b"\r\n"
        if out.failure_report == "yes":
            self._transactions[tid] = out.message_id
            out.tids.append(tid)
            out.outstanding[tid] = (start, start, self._now + self.response_timeout)
        self._open = _OpenChunk(out, tid, start, limit)
        if whole:
            return [head, *self._write_body(limit)]
        return [head, *self._write_body(start + max(budget, 1))]

    def _continue_chunk(self, budget: int) -> list[bytes | memoryview]:
        chunk = self._open
        assert chunk is not None
        out = chunk.outgoing
        newer = any(m is not out and not m.done_sending for m in self._queue)
        if newer:  # interrupt: end this chunk here with "+", let the newer message through
            end = self._close_chunk("+")
            self._queue.remove(out)
            self._queue.append(out)
            return [end, *self.pull(budget)]
        return self._write_body(out.sent + max(budget, 1))

    def _write_body(self, until: int) -> list[bytes | memoryview]:
        chunk = self._open
        assert chunk is not None
        out = chunk.outgoing
        stop = min(until, chunk.limit)
        piece = out.body[out.sent : stop]
        out.sent = stop
        if chunk.transaction_id in out.outstanding:
            first, _, deadline = out.outstanding[chunk.transaction_id]
            out.outstanding[chunk.transaction_id] = (first, stop, deadline)
        if stop < chunk.limit:
            return [piece]
        flag = "$" if stop == out.total else "+"
        return [piece, self._close_chunk(flag)]

    def _close_chunk(self, flag: str) -> bytes:
        chunk = self._open
        assert chunk is not None
        out = chunk.outgoing
        self._open = None
        if out.sent == out.total:
            out.done_sending = True
            if out in self._queue:
                self._queue.remove(out)
        if out.failure_report != "yes":
            out.acked = out.sent  # nothing will answer: count written bytes
            self._deferred += self._maybe_delivered(out)
        end = self._end_line(chunk.transaction_id, flag)
        return end

    @staticmethod
    def _end_line(transaction_id: str, flag: str) -> bytes:
        return b"\r\n-------" + transaction_id.encode("ascii") + flag.encode() + b"\r\n"

    @staticmethod
    def _head(method: str, tid: str, headers: Sequence[tuple[str, str]]) -> bytes:
        lines = [f"MSRP {tid} {method}", *(f"{n}: {v}" for n, v in headers)]
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def _abort_chunk(self, out: _Outgoing) -> bytes:
        headers = (
            ("To-Path", self.to_path_text),
            ("From-Path", str(self.local_uri)),
            ("Message-ID", out.message_id),
            ("Failure-Report", "no"),
            ("Byte-Range", f"{out.sent + 1}-{out.sent}/{out.total}"),
            ("Content-Type", out.content_type),
        )
        return MsrpRequest("SEND", self._tid(), headers, b"", "#").to_bytes()

    # -- receiving ---------------------------------------------------------------------------
    def feed(self, data: bytes, *, now: float) -> list[SessionEvent]:
        """Take received bytes; return what they caused. After a `ProtocolError` the
        connection must be closed; later calls return nothing."""
        self._now = now
        if self._failed is not None or self._closed:
            return []
        try:
            frames = self._parser.feed(data)
        except MsrpParseError as exc:
            events: list[SessionEvent] = []
            for frame in exc.frames:
                events += self._frame(frame)  # type: ignore[arg-type]
            if exc.transaction_id is not None and exc.status_code is not None:
                self._control.append(self._bare_response(exc.transaction_id, exc.status_code))
            self._failed = ProtocolError(exc.status_code, f"MSRP framing error: {exc}")
            events.append(self._failed)
            return events
        events = self.take_events()
        for frame in frames:
            events += self._frame(frame)
        return events

    def _bare_response(self, tid: str, status: int) -> bytes:
        """A response to a request we could not parse (its paths are unknown to us)."""
        comment = {400: "Bad Request", 413: "Too Large"}.get(status)
        headers = (("To-Path", str(self.to_path[0])), ("From-Path", str(self.local_uri)))
        return MsrpResponse(tid, status, comment, headers).to_bytes()

    def _frame(self, frame: MsrpFrame) -> list[SessionEvent]:
        if isinstance(frame, MsrpResponse):
            return self._response(frame)
        try:
            to_path = frame.to_path
            from_path = frame.from_path
        except MsrpParseError as exc:
            return self._refuse(frame, 400, f"bad path: {exc}", answer=True)
        if len(to_path) != 1 or to_path[0].session_id != self.local_uri.session_id:
            return self._refuse(frame, 481, "the To-Path does not name this session", answer=True)
        if self.check_from_path and from_path[-1] != self.to_path[-1]:
            return self._refuse(frame, 403, "the From-Path does not end at the peer", answer=True)
        if frame.method == "SEND":
            return self._send(frame)
        if frame.method == "REPORT":
            return self._report(frame)
        return self._refuse(frame, 501, f"method {frame.method} is not understood", answer=True)

    def _answer(self, request: MsrpRequest, status: int, comment: str) -> None:
        failure = (request.get("Failure-Report") or "yes").lower()
        if request.method == "REPORT" or failure == "no":
            return
        if failure == "partial" and status == 200:
            return
        self._control.append(response_to(request, status, comment).to_bytes())

    def _refuse(
        self, request: MsrpRequest, status: int, reason: str, *, answer: bool
    ) -> list[SessionEvent]:
        comment = _COMMENTS[status]
        if answer:
            self._answer(request, status, comment)
        message_id = request.get("Message-ID")
        events: list[SessionEvent] = [IncomingRefused(message_id, status, reason)]
        if request.method == "SEND" and message_id is not None and status != 481:
            events += self._refused_message(message_id, status, reason, request)
        return events

    def _remember_refused(self, message_id: str, status: int) -> None:
        """Answer every further chunk of ``message_id`` with ``status`` (the newest
        ``_REMEMBERED_REFUSED`` messages are remembered)."""
        self._refused[message_id] = status
        while len(self._refused) > _REMEMBERED_REFUSED:
            self._refused.popitem(last=False)

    def _refused_message(
        self, message_id: str, status: int, reason: str, request: MsrpRequest
    ) -> list[SessionEvent]:
        self._remember_refused(message_id, status)
        progress = self._reassembler.progress(message_id)
        self._reassembler.discard(message_id)
        info = self._incoming.pop(message_id, None)
        if info is None and progress is None:
            return []
        if info is not None and info.failure_report == "yes":
            self._control.append(self._report_bytes(message_id, status, None, request))
        received, total = progress if progress is not None else (0, None)
        return [IncomingAborted(message_id, received, total, f"refused ({status}): {reason}")]

    def _accepts(self, content_type: str) -> bool:
        mime = content_type.split(";", 1)[0].strip().lower()
        for accepted in self.accept_types:
            if accepted == "*" or accepted == mime:
                return True
            if accepted.endswith("/*") and mime.startswith(accepted[:-1]):
                return True
        return False

    def _send(self, request: MsrpRequest) -> list[SessionEvent]:
        message_id = request.message_id
        if message_id is None:
            return self._refuse(request, 400, "a SEND needs a Message-ID", answer=True)
        if message_id in self._refused:
            if request.continuation != "#":
                status = self._refused[message_id]
                self._answer(request, status, _COMMENTS.get(status, "Refused"))
            return []
        if not request.has_body_section and request.continuation != "#":
            self._answer(request, 200, "OK")  # an empty SEND (binds the connection)
            return []
        try:
            byte_range = request.byte_range
        except MsrpParseError as exc:
            return self._refuse(request, 400, str(exc), answer=True)
        if request.continuation != "#":
            content_type = request.content_type or ""
            if not self._accepts(content_type):
                return self._refuse(
                    request, 415, f"{content_type.split(';')[0]} is not accepted", answer=True
                )
            total = None if byte_range is None else byte_range.total
            if total is not None and total > self.max_message_size:
                return self._refuse(
                    request,
                    413,
                    f"a message of {total} bytes exceeds the limit of {self.max_message_size}",
                    answer=True,
                )
        try:
            result = self._reassembler.add(request)
        except MsrpParseError as exc:
            status = exc.status_code if exc.status_code in (400, 413) else 400
            return self._refuse(request, status, str(exc), answer=True)
        self._answer(request, 200, "OK")
        if result.state == "duplicate":
            return []
        if result.state == "aborted":
            self._incoming.pop(message_id, None)
            return [
                IncomingAborted(
                    message_id, result.received, result.total, "the sender aborted the message"
                )
            ]
        info = self._incoming.get(message_id)
        if info is None:
            mime = tuple(
                (n, v)
                for n, v in request.headers
                if n.lower().startswith("content-") and n.lower() != "content-type"
            )
            info = _IncomingInfo(
                mime,
                (request.get("Success-Report") or "no").lower() == "yes",
                (request.get("Failure-Report") or "yes").lower(),
                self._now,
                request.get("From-Path"),
            )
            self._incoming[message_id] = info
        info.opened = self._now  # the incomplete timeout counts from the last chunk
        assert result.total is not None
        if result.state == "partial" and info.success_report and self.report_interval:
            prefix = self._reassembler.contiguous(message_id)
            if prefix - info.reported >= self.report_interval:
                info.reported = prefix
                self._control.append(
                    self._report_bytes(message_id, 200, result.total, request, prefix)
                )
        if result.state == "partial":
            return [
                IncomingProgress(
                    message_id, result.received, result.total, result.content_type, info.headers
                )
            ]
        del self._incoming[message_id]
        if info.success_report:
            self._control.append(self._report_bytes(message_id, 200, result.total, request))
        body = result.buffer if result.buffer is not None else result.body
        return [
            IncomingProgress(
                message_id, result.received, result.total, result.content_type, info.headers
            ),
            IncomingMessage(message_id, result.content_type, body, result.total, info.headers),
        ]

    def _report_bytes(
        self,
        message_id: str,
        status: int,
        total: int | None,
        request: MsrpRequest | None,
        end: int | None = None,
        *,
        to_path: str | None = None,
    ) -> bytes:
        comment = {200: "OK", 408: "Request Timeout", 413: "Too Large"}.get(status, "Failed")
        if to_path is None:
            to_path = request.headers[1][1] if request is not None else self.to_path_text
        headers: list[tuple[str, str]] = [
            ("To-Path", to_path),
            ("From-Path", str(self.local_uri)),
            ("Message-ID", message_id),
        ]
        if total is not None:
            headers.append(("Byte-Range", f"1-{total if end is None else end}/{total}"))
        headers.append(("Status", f"000 {status} {comment}"))
        return MsrpRequest("REPORT", self._tid(), tuple(headers)).to_bytes()

    def _report(self, request: MsrpRequest) -> list[SessionEvent]:
        message_id = request.message_id
        try:
            status = request.status
            byte_range = request.byte_range
        except MsrpParseError as exc:
            return [IncomingRefused(message_id, 400, f"unreadable REPORT: {exc}")]
        if message_id is None or status is None:
            return [IncomingRefused(message_id, 400, "a REPORT needs Message-ID and Status")]
        events: list[SessionEvent] = [ReportReceived(message_id, status, byte_range)]
        out = self._outgoing.get(message_id)
        if out is None:
            return events
        if status.code == 200:
            if byte_range is None or (byte_range.start == 1 and byte_range.end == out.total):
                out.reported = True
                out.reported_bytes = out.total
                events += self._maybe_delivered(out)
            elif byte_range.start == 1 and (byte_range.end or 0) > out.reported_bytes:
                out.reported_bytes = byte_range.end or 0
                out.reported_at = self._now
            return events
        if status.code == 413:
            taken = byte_range is not None and (byte_range.end or 0) >= byte_range.start
            events.append(self._refused_by_peer(out, 413, status.comment or "", taken=taken))
            return events
        reason = f"the peer reported {status.code} {status.comment or ''}".rstrip()
        events.append(self._fail(out, status.code, status.comment or "", reason))
        return events

    def _refused_by_peer(
        self, out: _Outgoing, status: int, comment: str, *, taken: bool = False
    ) -> OutgoingFailed:
        """An error response or REPORT for one of our messages: it fails, and a chunk of it
        being written ends with ``#``. A 413 after the receiver took part of it (its own
        200s on a direct connection; through relays, which answer chunks themselves, its
        success REPORTs or the Byte-Range of its failure REPORT) means the receiver
        stopped it."""
        taken = taken or out.reported_bytes > 0 or (len(self.to_path) == 1 and out.acked > 0)
        if status == 413 and taken:
            reason = _status_reason(status, comment, "the receiver stopped the message part-way")
            return self._fail(out, status, comment, reason, stopped=True)
        return self._fail(out, status, comment, _status_reason(status, comment))

    def _response(self, response: MsrpResponse) -> list[SessionEvent]:
        tid = response.transaction_id
        if tid == self._auth_tid:
            self._auth_tid = None
            if response.status != 200:
                return [
                    ProtocolError(
                        response.status,
                        f"the relay refused AUTH: {response.status}"
                        f" {response.comment or ''}".rstrip(),
                    )
                ]
            try:
                use_path = tuple(
                    u for value in response.get_all("Use-Path") for u in _parse_uris(value)
                )
            except MsrpParseError as exc:
                return [ProtocolError(400, f"the relay's Use-Path is unreadable: {exc}")]
            expires = response.get("Expires")
            return [
                RelayAuthorized(use_path, int(expires) if expires and expires.isdigit() else None)
            ]
        message_id = self._transactions.get(tid)
        if message_id is None:
            return []  # a response to an empty SEND or to nothing we remember
        out = self._outgoing.get(message_id)
        if out is None:
            self._transactions.pop(tid, None)
            return []
        if response.status != 200:
            return [self._refused_by_peer(out, response.status, response.comment or "")]
        span = out.outstanding.pop(tid, None)
        if span is None:
            return []  # a second 200 for the same chunk (hop and end both answering)
        first, stop, _ = span
        out.acked_ranges.append((first, stop))
        out.acked_ranges.sort()
        acked = 0
        for a, b in out.acked_ranges:
            if a > acked:
                break
            acked = max(acked, b)
        out.acked = acked
        events: list[SessionEvent] = [OutgoingProgress(message_id, out.sent, acked, out.total)]
        return events + self._maybe_delivered(out)

    def _maybe_delivered(self, out: _Outgoing) -> list[SessionEvent]:
        if not out.done_sending or out.outstanding or out.acked < out.total:
            return []
        if out.success_report and not out.reported:
            return []
        self._forget(out)
        return [OutgoingDelivered(out.message_id, out.total, out.reported)]

    def _fail(
        self,
        out: _Outgoing,
        status: int,
        comment: str,
        reason: str,
        *,
        cancelled: bool = False,
        stopped: bool = False,
    ) -> OutgoingFailed:
        if self._open is not None and self._open.outgoing is out:
            # stop mid-chunk: end it with "#" so the peer drops what it has; this end-line
            # must come before anything else written
            self._control.insert(0, self._end_line(self._open.transaction_id, "#"))
            self._open = None
        self._forget(out)
        return OutgoingFailed(
            out.message_id, status, comment, reason, out.sent, out.total, cancelled, stopped
        )

    def _forget(self, out: _Outgoing) -> None:
        self._outgoing.pop(out.message_id, None)
        for tid in out.tids:
            self._transactions.pop(tid, None)
        out.outstanding.clear()
        if out in self._queue:
            self._queue.remove(out)
        out.done_sending = True

    # -- time --------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """When `tick` has something to do (a response or an incomplete message overdue)."""
        times = [d for out in self._outgoing.values() for (_, _, d) in out.outstanding.values()]
        times += [
            out.reported_at + self.response_timeout
            for out in self._outgoing.values()
            if self._window_stalled(out)
        ]
        times += [i.opened + self.incomplete_timeout for i in self._incoming.values()]
        return min(times) if times else None

    def tick(self, *, now: float) -> list[SessionEvent]:
        """Expire what is overdue: a chunk without response fails its message with 408, an
        incomplete incoming message is dropped."""
        self._now = now
        events: list[SessionEvent] = self.take_events()
        for out in list(self._outgoing.values()):
            if any(d <= now for (_, _, d) in out.outstanding.values()):
                events.append(
                    self._fail(out, 408, "Request Timeout", "no response from the peer in time")
                )
            elif self._window_stalled(out) and out.reported_at + self.response_timeout <= now:
                events.append(
                    self._fail(
                        out,
                        408,
                        "Request Timeout",
                        "the peer reported no progress in time (through a relay the receiver "
                        "must send success REPORTs as the message arrives)",
                    )
                )
        for message_id, info in list(self._incoming.items()):
            if info.opened + self.incomplete_timeout <= now:
                progress = self._reassembler.progress(message_id)
                self._reassembler.discard(message_id)
                del self._incoming[message_id]
                if info.failure_report == "yes":
                    self._control.append(self._report_bytes(message_id, 408, None, None))
                received, total = progress if progress is not None else (0, None)
                events.append(
                    IncomingAborted(message_id, received, total, "the message did not complete")
                )
        return events

    # -- end ---------------------------------------------------------------------------------
    def connection_lost(self, reason: str, *, now: float) -> list[SessionEvent]:
        """The connection closed: every unfinished message in either direction fails, and
        nothing incomplete is handed on."""
        self._now = now
        self._closed = True
        self._open = None
        self._control.clear()
        events: list[SessionEvent] = []
        for out in list(self._outgoing.values()):
            events.append(self._fail(out, 0, "", f"the connection was lost: {reason}"))
        self._control.clear()
        for message_id in list(self._incoming) + list(self._reassembler.pending()):
            progress = self._reassembler.progress(message_id)
            if self._incoming.pop(message_id, None) is None and progress is None:
                continue
            self._reassembler.discard(message_id)
            received, total = progress if progress is not None else (0, None)
            events.append(
                IncomingAborted(message_id, received, total, f"the connection was lost: {reason}")
            )
        return events


_COMMENTS = {
    400: "Bad Request",
    403: "Forbidden",
    413: "Too Large",
    415: "Unsupported Media Type",
    481: "No Such Session",
    501: "Not Implemented",
}

_STATUS_WORDS = {
    400: "the peer could not read our request",
    403: "the peer refused the request",
    408: "the peer did not answer in time",
    413: "the message is larger than the peer accepts",
    415: "the peer does not accept this type of content",
    481: "the peer does not know this session",
    501: "the peer does not understand the request",
    506: "the request came on a connection bound to another session",
}


def _status_reason(status: int, comment: str | None, words: str | None = None) -> str:
    """``words`` (by default those of ``status``) followed by the status and its comment."""
    words = words or _STATUS_WORDS.get(status, "the peer refused the message")
    return f"{words} ({status} {comment or ''})".replace(" )", ")")


def _end_line_within(out: _Outgoing, start: int, stop: int, tid: str) -> bool:
    """Whether ``-------<tid>`` plus a flag occurs in the message bytes ``[start, stop)``."""
    source = out.source
    if type(source) is bytes or type(source) is bytearray:
        needle = b"-------" + tid.encode("ascii")
        i = source.find(needle, start, stop)
        while i >= 0:
            after = i + len(needle)
            if after < stop and source[after] in b"$+#":
                return True
            i = source.find(needle, i + 1, stop)
        return False
    return _end_line_in(bytes(out.body[start:stop]), tid)


_SPACES = re.compile(r"\s+")


def _parse_uris(value: str) -> tuple[MsrpUri, ...]:
    return tuple(MsrpUri.parse(part) for part in _SPACES.split(value.strip()) if part)
