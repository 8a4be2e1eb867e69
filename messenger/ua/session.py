"""Session mode of the user agent: one MSRP session with one peer, once SDP is agreed.

A `ChatSession` is made from what the offer/answer settled: our MSRP URI, the peer's
``a=path``, who is active (RFC 6135), and optionally an outbound relay (RFC 4976). It
carries whole messages and files, protected first and chunked afterwards (RFC 8591
section 8):

    outgoing: content -> CPIM (From, To, DateTime, imdn.Message-ID; a file keeps its name in
              a protected Content-Disposition) -> sign -> encrypt for the peer -> MSRP
              chunks (the executor does the cryptography, the loop only moves bytes)
    incoming: chunks -> one temporary file per message -> whole message -> unprotect in the
              executor -> report -> stored -> `MessageReceived` (a file is written whole
              into the downloads folder, and the store keeps its ``file:`` URI)

A 200 to a chunk only says the chunk arrived; what was verified is in the report of the
receiver. A 415 from the peer means it cannot take S/MIME for the rest of the session:
`smime_refused` says so in words, and a `CapabilityLearned` event tells the faces.
`TransferProgress` events follow every transfer in both directions; a transfer that does
not complete ends in ``aborted`` or ``failed`` with a reason, and nothing incomplete is
ever shown as received. Either side may cancel a transfer while it moves (`cancel`): the
sender ends it with ``#``; the receiver discards what arrived and answers it with MSRP 413,
and the sender then stops and says the receiver stopped it.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl as ssl_module
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from messenger.im.cpim import CpimMessage, parse_cpim
from messenger.im.errors import CpimError
from messenger.msrp.errors import MsrpError
from messenger.msrp.ids import new_message_id, new_session_id
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
    SessionEvent,
)
from messenger.msrp.uri import MsrpUri
from messenger.net.msrp_transport import (
    ConnectionClosed,
    MsrpConnection,
    MsrpListener,
    MsrpTransportError,
    connect,
)
from messenger.pki.identity import Identity
from messenger.pki.trust import TrustStore
from messenger.smime.errors import SmimeError
from messenger.smime.mime import ContentType, MimeEntity
from messenger.smime.protect import SMIME_ACCEPT_TYPES, protect, unprotect
from messenger.ua.events import (
    CapabilityLearned,
    Event,
    MessageReceived,
    MessageRefused,
    Notice,
    TransferProgress,
)
from messenger.ua.files import (
    FILE_REFERENCE_TYPE,
    STOPPED_RECEIVING,
    file_reference,
    write_whole,
)
from messenger.ua.store import MessageStore

__all__ = [
    "DEFAULT_ACCEPT_TYPES",
    "ChatSession",
    "TempFileBuffer",
    "TransferResult",
    "new_local_uri",
]

DEFAULT_ACCEPT_TYPES = (*SMIME_ACCEPT_TYPES, "message/cpim", "text/plain")
DEFAULT_CHUNK_SIZE = 256 * 1024
#: Through a relay: RFC 4976 relays hold a whole chunk; Kamailio's msrp module drops the
#: connection for frames above its 16 KiB TCP read buffer.
RELAY_CHUNK_SIZE = 8 * 1024
#: Through a relay, the bytes sent beyond what the peer reported received; relays answer
#: chunks themselves and Kamailio drops frames once its 32 KiB write queue is full.
RELAY_WINDOW = 128 * 1024
#: A receiver reports the received prefix of a message every this many bytes.
REPORT_INTERVAL = 32 * 1024
DEFAULT_MAX_MESSAGE_SIZE = 512 * 1024 * 1024
_PROGRESS_STEPS = 100  # at most this many running progress events per transfer
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ \-()\[\]+,@=]")


def new_local_uri(host: str, port: int, *, secure: bool = False) -> MsrpUri:
    """A fresh MSRP URI for a new session on ``host:port`` (for our ``a=path``)."""
    host = f"[{host}]" if ":" in host else host
    scheme = "msrps" if secure else "msrp"
    return MsrpUri.parse(f"{scheme}://{host}:{port}/{new_session_id()};tcp")


class TempFileBuffer:
    """Where one incoming message is reassembled: an anonymous temporary file written at
    offsets, so a large message costs no memory until it is read back whole."""

    def __init__(self, total: int, directory: Path | None = None) -> None:
        self.total = total
        self._file: Any = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by close)
        self._fd = self._file.fileno()

    def write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            offset += written
            view = view[written:]

    def read_all(self) -> bytes:
        """The whole message as bytes (one allocation of ``total`` bytes)."""
        parts = []
        offset = 0
        while offset < self.total:
            part = os.pread(self._fd, self.total - offset, offset)
            if not part:
                raise OSError(f"the temporary file ended after {offset} of {self.total} bytes")
            parts.append(part)
            offset += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class TransferResult:
    """How an outgoing message or file ended.

    ``delivered``: every chunk was taken and the peer reported the whole message received
    (its REPORT). It says nothing about decryption: that is the receiver's report.
    ``status``: 200 when delivered, the MSRP status that refused it, 408 when the peer did
    not answer in time, 0 when cancelled or the connection was lost.
    """

    transfer_id: str
    delivered: bool
    status: int
    explanation: str
    encrypted: bool
    signed: bool
    size: int
    cancelled: bool = False
    stopped: bool = False  # the receiver stopped it part-way (MSRP 413)


@dataclass
class _Protected:
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...]
    encrypted: bool
    signed: bool
    explanation: str


@dataclass
class _Transfer:
    transfer_id: str
    filename: str | None
    total: int
    direction: str
    future: asyncio.Future[TransferResult] | None = None
    protected: _Protected | None = None
    last_step: int = -1


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _cpim_body_start(data: bytes) -> int:
    """Where the body of a CPIM message starts (after both header blocks). Raises
    `CpimError` when the blank lines are missing."""
    head = data.find(b"\r\n\r\n")
    if head < 0:
        raise CpimError("no blank line after the CPIM message headers")
    if data[head + 4 : head + 6] == b"\r\n":
        return head + 6
    mime = data.find(b"\r\n\r\n", head + 4)
    if mime < 0:
        raise CpimError("no blank line after the encapsulated MIME headers")
    return mime + 4


def safe_filename(name: str | None) -> str:
    """A file name that is safe to create in the downloads folder."""
    base = Path((name or "").replace("\\", "/")).name
    base = _UNSAFE_NAME.sub("_", base).strip(" .")
    return base[:120] or "received-file"


class ChatSession:
    """The user-agent side of one MSRP session (see the module text).

    ``local_uri``: our URI (from our ``a=path``); ``remote_path``: the peer's ``a=path``
    (its relays, then the peer). ``active``: we connect (to ``relay`` when given, else to
    ``remote_path[0]``) and write first; otherwise ``listener`` (an `MsrpListener` bound
    where ``local_uri`` points) gets the peer's connection. ``relay``: our outbound relay;
    we AUTH to it and send through its Use-Path. ``ssl``: the client context for TLS
    when active (``msrps``). ``emit`` receives the events, on the loop's thread, in order.
    ``chunk_size``: body bytes per SEND (default 256 KiB direct, 8 KiB through a relay,
    where the sender also keeps a window of unreported bytes: see `MsrpSession`).
    """

    def __init__(
        self,
        *,
        local_aor: str,
        peer_aor: str,
        identity: Identity,
        trust: TrustStore,
        local_uri: MsrpUri,
        remote_path: Sequence[MsrpUri],
        active: bool,
        emit: Callable[[Event], None],
        peer_certificate: x509.Certificate | None = None,
        listener: MsrpListener | None = None,
        relay: MsrpUri | None = None,
        ssl: ssl_module.SSLContext | None = None,
        sign: bool = True,
        encrypt: bool = True,
        downloads: Path | None = None,
        store: MessageStore | None = None,
        chunk_size: int | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        accept_types: Sequence[str] = DEFAULT_ACCEPT_TYPES,
        clock: Callable[[], datetime] | None = None,
        temp_dir: Path | None = None,
    ) -> None:
        if not remote_path:
            raise MsrpError("the peer's MSRP path is empty")
        if not active and listener is None:
            raise MsrpError("the passive side of a session needs a listener")
        self.local_aor = local_aor
        self.peer_aor = peer_aor
        self.identity = identity
        self.trust = trust
        self.local_uri = local_uri
        self.remote_path = tuple(remote_path)
        self.active = active
        self.peer_certificate = peer_certificate
        self.relay = relay
        self.sign = sign
        self.encrypt = encrypt
        self.downloads = downloads
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.state = "new"  # new, open, closed
        self.close_reason = ""
        self.smime_refused: str | None = None  # why the peer cannot take S/MIME
        self._emit_event = emit
        self._listener = listener
        self._ssl = ssl
        self._temp_dir = temp_dir
        self._loop = asyncio.get_running_loop()
        to_path = ((relay,) if relay is not None else ()) + self.remote_path
        # the peer's own relay (its a=path has more than one hop) has the same limits
        relayed = len(to_path) > 1
        self.msrp = MsrpSession(
            local_uri=local_uri,
            to_path=to_path,
            now=self._loop.time(),
            chunk_size=chunk_size or (RELAY_CHUNK_SIZE if relayed else DEFAULT_CHUNK_SIZE),
            max_message_size=max_message_size,
            accept_types=accept_types,
            buffer_factory=lambda total: TempFileBuffer(total, temp_dir),
            report_interval=REPORT_INTERVAL,
            window=RELAY_WINDOW if relayed else None,
        )
        self._connection: MsrpConnection | None = None
        self._auth: asyncio.Future[RelayAuthorized] | None = None
        self._use_path: tuple[MsrpUri, ...] | None = None
        self._transfers: dict[str, _Transfer] = {}
        self._incoming_lock = asyncio.Lock()
        self._stopped: set[str] = set()  # incoming messages we cancelled
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = self._loop.create_future()

    # -- opening and closing -----------------------------------------------------------------
    async def open(self, timeout: float = 10.0) -> None:
        """Connect (active) or wait for the peer's connection (passive); with a relay,
        AUTH first and send through its Use-Path. Raises `MsrpTransportError` with words."""
        if self.state != "new":
            raise MsrpTransportError(f"the session is already {self.state}")
        if self.active and self.relay is not None:
            use_path = await self.connect_relay(timeout)
            assert self._connection is not None
            self.msrp.set_to_path((*use_path, *self.remote_path))
            self.msrp.bind()
            self._connection.flush()
        elif self.active:
            first = self.remote_path[0]
            self._connection = await connect(
                self.msrp,
                self._on_session_event,
                ssl=self._ssl if first.secure else None,
                bind=True,
                timeout=timeout,
            )
        else:
            assert self._listener is not None
            self._connection = self._listener.expect(self.msrp, self._on_session_event)
            try:
                await self._connection.wait_open(timeout)
            except MsrpTransportError:
                self._listener.forget(self._connection)
                self.state = "closed"
                self.close_reason = "the peer never connected"
                raise
        self.state = "open"

    async def connect_relay(self, timeout: float = 10.0) -> tuple[MsrpUri, ...]:
        """Connect to the relay and AUTH (RFC 4976 section 5) ahead of `open`, and return
        the Use-Path the relay granted: it stands first in our ``a=path`` in the SDP, so
        this is done before the offer or answer goes out. `open` then only binds."""
        if self.relay is None:
            raise MsrpTransportError("this session goes through no relay")
        if self._use_path is not None:
            return self._use_path
        self._connection = await connect(
            self.msrp,
            self._on_session_event,
            ssl=self._ssl if self.relay.secure else None,
            bind=False,
            timeout=timeout,
        )
        self._auth = self._loop.create_future()
        self._connection.authorize(self.relay)
        try:
            granted = await asyncio.wait_for(asyncio.shield(self._auth), timeout)
        except TimeoutError:
            self._connection.abort("the relay did not answer AUTH")
            raise MsrpTransportError(
                f"the MSRP relay {self.relay} did not answer AUTH in {timeout:g} s"
            ) from None
        self._use_path = tuple(granted.use_path or (self.relay,))
        return self._use_path

    def set_remote_path(self, remote_path: Sequence[MsrpUri]) -> None:
        """The peer's ``a=path``, once the SDP answer is known (before `open`)."""
        if not remote_path:
            raise MsrpError("the peer's MSRP path is empty")
        self.remote_path = tuple(remote_path)
        self.msrp.set_to_path(((self.relay,) if self.relay is not None else ()) + self.remote_path)

    async def close(self) -> None:
        """End the session: unfinished transfers fail, the connection closes."""
        if self._connection is not None and self.state == "new" and self._use_path is not None:
            self._connection.close("the session was closed")  # AUTHed, never opened
            await self._connection.wait_closed()
        if self._connection is not None and self.state == "open":
            self._connection.close("the session was closed")
            await self._connection.wait_closed()
        elif self._connection is not None and self._listener is not None:
            self._listener.forget(self._connection)
        self.state = "closed"
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)

    # -- sending -----------------------------------------------------------------------------
    async def send_text(
        self,
        text: str,
        *,
        content_type: str = "text/plain;charset=utf-8",
        sign: bool | None = None,
        encrypt: bool | None = None,
    ) -> TransferResult:
        """Send one chat message over the session (``sign``/``encrypt``: see `send_content`)."""
        return await self.send_content(
            text.encode("utf-8"), content_type, sign=sign, encrypt=encrypt
        )

    async def send_file(
        self,
        path: Path,
        *,
        content_type: str | None = None,
        sign: bool | None = None,
        encrypt: bool | None = None,
    ) -> TransferResult:
        """Send a file: its name goes in a protected Content-Disposition."""
        path = Path(path)
        size = path.stat().st_size
        return await self.send_content(
            path.read_bytes,
            content_type or "application/octet-stream",
            filename=path.name,
            size=size,
            sign=sign,
            encrypt=encrypt,
        )

    async def send_content(
        self,
        content: bytes | Callable[[], bytes],
        content_type: str,
        *,
        filename: str | None = None,
        size: int | None = None,
        transfer_id: str | None = None,
        sign: bool | None = None,
        encrypt: bool | None = None,
        recipient: x509.Certificate | None = None,
    ) -> TransferResult:
        """Protect the whole content (in the executor), then send it chunked; wait until
        the peer reported it received, or it failed. ``content`` may be a callable that
        loads it (run in the executor, so the loop never holds a file's bytes). Never
        raises for network trouble: the result says what happened.

        ``sign`` and ``encrypt`` belong to this message alone (None: the session's
        defaults); ``recipient`` is the certificate to encrypt to (None: the peer's known
        one). They are fixed when this is called, so concurrent sends with different
        settings each keep their own."""
        if self.state != "open" or self._connection is None:
            raise MsrpTransportError(f"the session is not open ({self.state})")
        transfer_id = transfer_id or new_message_id()
        total = size if size is not None else (None if callable(content) else len(content))
        transfer = _Transfer(transfer_id, filename, total or 0, "out")
        transfer.future = self._loop.create_future()
        self._transfers[transfer_id] = transfer
        self._progress(transfer, 0, "running", force=True)
        when = self.clock()
        sign = self.sign if sign is None else sign
        encrypt = self.encrypt if encrypt is None else encrypt
        recipient = recipient if recipient is not None else self.peer_certificate
        try:
            protected = await self._loop.run_in_executor(
                None,
                self._protect,
                content,
                content_type,
                filename,
                transfer_id,
                when,
                sign,
                recipient if encrypt else None,
                encrypt,
            )
        except (SmimeError, CpimError, OSError, ValueError) as exc:
            return self._finish_out(
                transfer, False, 0, f"the message could not be protected: {exc}"
            )
        del content
        transfer.protected = protected
        transfer.total = len(protected.body)
        if self.state != "open" or transfer.future.done():
            if not transfer.future.done():
                reason = f"the session closed before sending: {self.close_reason}"
                return self._finish_out(transfer, False, 0, reason)
            return transfer.future.result()
        try:
            self._connection.send_message(
                protected.body,
                protected.content_type,
                message_id=transfer_id,
                headers=protected.headers,
                success_report=True,
            )
        except MsrpError as exc:
            return self._finish_out(transfer, False, 0, str(exc))
        return await transfer.future

    def _protect(
        self,
        content: bytes | Callable[[], bytes],
        content_type: str,
        filename: str | None,
        message_id: str,
        when: datetime,
        sign: bool,
        recipient: x509.Certificate | None,
        encrypt: bool,
    ) -> _Protected:
        data = content() if callable(content) else content
        del content
        extra = []
        if filename is not None:
            extra.append(("Content-Disposition", f'attachment; filename="{_quote(filename)}"'))
        cpim = CpimMessage.build(
            self.local_aor,
            [self.peer_aor],
            data,
            content_type,
            when=when,
            message_id=message_id,
            disposition=(),
            extra_content_headers=extra,
        ).to_bytes()
        del data
        recipients = []
        explanation = ""
        if encrypt:
            if recipient is not None:
                recipients.append(recipient)
            else:
                explanation = f"not encrypted: no certificate of {self.peer_aor} is known yet"
                if sign:
                    explanation += "; it is signed, so the peer can verify who wrote it"
        signer = self.identity if sign else None
        if signer is None and not recipients:
            headers = tuple(extra) if filename is not None else ()
            return _Protected(cpim, "message/cpim", headers, False, False, explanation)
        entity = protect(
            cpim,
            content_type="message/cpim",
            signer=signer,
            recipients=recipients,
            signing_time=when,
        )
        del cpim
        headers = tuple(
            (n, v)
            for n, v in entity.headers
            if n.lower() not in ("content-type", "content-transfer-encoding")
        )
        content_type_value = entity.header("Content-Type") or "application/pkcs7-mime"
        return _Protected(
            entity.body,
            content_type_value,
            headers,
            bool(recipients),
            signer is not None,
            explanation,
        )

    def cancel(self, transfer_id: str) -> bool:
        """Cancel a transfer that is still running. Outgoing: aborted with ``#`` on the
        wire. Incoming (still arriving): what arrived is discarded and the sender is told
        to send no more of it (MSRP 413, RFC 4975 section 10.5). True if it was running."""
        transfer = self._transfers.get(transfer_id)
        if transfer is None or self._connection is None:
            return False
        if transfer.direction == "in":
            events = self.msrp.refuse(transfer_id, now=self._loop.time())
            if events:
                self._stopped.add(transfer_id)
            for event in events:
                self._on_session_event(event)
            self._connection.flush()
            return bool(events)
        if transfer.protected is None:  # still being protected: fail it now
            self._finish_out(transfer, False, 0, "the transfer was cancelled", cancelled=True)
            return True
        self._connection.cancel(transfer_id)
        return True

    def _finish_out(
        self,
        transfer: _Transfer,
        delivered: bool,
        status: int,
        explanation: str,
        *,
        cancelled: bool = False,
        stopped: bool = False,
    ) -> TransferResult:
        protected = transfer.protected
        if delivered and protected is not None and protected.explanation:
            explanation = protected.explanation
        result = TransferResult(
            transfer.transfer_id,
            delivered,
            status,
            explanation,
            protected.encrypted if protected else False,
            protected.signed if protected else False,
            transfer.total,
            cancelled,
            stopped,
        )
        self._transfers.pop(transfer.transfer_id, None)
        state = "complete" if delivered else "aborted" if cancelled else "failed"
        done = transfer.total if delivered else 0
        self._emit_progress(
            transfer_id=transfer.transfer_id,
            direction="out",
            filename=transfer.filename,
            done=done,
            total=transfer.total,
            state=state,
            reason=explanation if not delivered else "",
            stopped_by="peer" if stopped else "",
        )
        if transfer.future is not None and not transfer.future.done():
            transfer.future.set_result(result)
        return result

    # -- events from the MSRP session ----------------------------------------------------
    def _emit(self, event: Event) -> None:
        self._emit_event(event)

    def _emit_progress(
        self,
        *,
        transfer_id: str,
        direction: str,
        done: int,
        total: int | None,
        state: str,
        filename: str | None = None,
        reason: str = "",
        stopped_by: str = "",
    ) -> None:
        self._emit(
            TransferProgress(
                at=self.clock(),
                transfer_id=transfer_id,
                peer=self.peer_aor,
                direction=direction,
                filename=filename,
                done=done,
                total=total,
                state=state,
                reason=reason,
                stopped_by=stopped_by,
            )
        )

    def _progress(self, transfer: _Transfer, done: int, state: str, *, force: bool = False) -> None:
        step = (done * _PROGRESS_STEPS // transfer.total) if transfer.total else 0
        if not force and step == transfer.last_step:
            return
        transfer.last_step = step
        self._emit_progress(
            transfer_id=transfer.transfer_id,
            direction=transfer.direction,
            filename=transfer.filename,
            done=done,
            total=transfer.total or None,
            state=state,
        )

    def _on_session_event(self, event: SessionEvent) -> None:
        if isinstance(event, OutgoingProgress):
            transfer = self._transfers.get(event.message_id)
            if transfer is not None:
                self._progress(transfer, event.acknowledged, "running")
        elif isinstance(event, OutgoingDelivered):
            transfer = self._transfers.get(event.message_id)
            if transfer is not None:
                self._finish_out(transfer, True, 200, "")
        elif isinstance(event, OutgoingFailed):
            self._outgoing_failed(event)
        elif isinstance(event, IncomingProgress):
            if event.message_id in self._stopped:
                return  # reported with chunks read before it was cancelled
            transfer = self._transfers.get(event.message_id)
            if transfer is None:
                transfer = _Transfer(event.message_id, None, event.total, "in")
                self._transfers[event.message_id] = transfer
            if event.received < event.total:
                self._progress(transfer, event.received, "running")
        elif isinstance(event, IncomingMessage):
            transfer = self._transfers.get(event.message_id)
            if transfer is not None:
                # all of it arrived: it is being decrypted and checked, not yet received
                self._progress(transfer, event.total, "running", force=True)
            task = self._loop.create_task(self._incoming(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, IncomingAborted):
            transfer = self._transfers.pop(event.message_id, None)
            if transfer is None:
                transfer = _Transfer(event.message_id, None, event.total or 0, "in")
            reason = event.reason
            ours = reason == STOPPED_BY_RECEIVER
            if ours:
                reason = f"you {STOPPED_RECEIVING} ({self.peer_aor} was told to send no more of it)"
            self._emit_progress(
                transfer_id=event.message_id,
                direction="in",
                filename=None,
                done=event.received,
                total=event.total,
                state="aborted",
                reason=f"{reason}; nothing of it was kept",
                stopped_by="you" if ours else "",
            )
        elif isinstance(event, IncomingRefused):
            self._emit(
                MessageRefused(
                    at=self.clock(), sender=self.peer_aor, status=event.status, reason=event.reason
                )
            )
        elif isinstance(event, RelayAuthorized):
            if self._auth is not None and not self._auth.done():
                self._auth.set_result(event)
        elif isinstance(event, ProtocolError):
            if self._auth is not None and not self._auth.done():
                self._auth.set_exception(MsrpTransportError(event.reason))
                return
            self._emit(
                Notice(
                    at=self.clock(),
                    level="error",
                    text=f"The MSRP session with {self.peer_aor} broke: {event.reason}",
                    peer=self.peer_aor,
                )
            )
        elif isinstance(event, ConnectionClosed):
            self.state = "closed"
            self.close_reason = event.reason
            if self._auth is not None and not self._auth.done():
                self._auth.set_exception(MsrpTransportError(event.reason))
            if not event.clean:
                self._emit(
                    Notice(
                        at=self.clock(),
                        level="warning",
                        text=f"The MSRP session with {self.peer_aor} ended: {event.reason}",
                        peer=self.peer_aor,
                    )
                )

    def _outgoing_failed(self, event: OutgoingFailed) -> None:
        transfer = self._transfers.get(event.message_id)
        if transfer is None:
            return
        explanation = event.reason
        if event.status == 415:
            protected = transfer.protected
            if protected is not None and (protected.signed or protected.encrypted):
                self.smime_refused = (
                    f"{self.peer_aor} does not accept S/MIME in this session (MSRP 415): "
                    "its software cannot take signed or encrypted messages; send nothing "
                    "private here, or ask the peer to use an S/MIME capable client"
                )
                explanation = self.smime_refused
                self._emit(
                    CapabilityLearned(
                        at=self.clock(),
                        peer=self.peer_aor,
                        capability="smime",
                        value=False,
                        reason=self.smime_refused,
                    )
                )
        elif event.status == 413 and event.stopped:
            explanation = (
                f"{self.peer_aor} {STOPPED_RECEIVING} part-way (MSRP 413) and kept nothing "
                "of it; send it again if they ask for it"
            )
        elif event.status == 413:
            explanation = (
                f"{event.reason}: {transfer.total} bytes is more than {self.peer_aor} "
                "accepts; send a smaller file"
            )
        elif event.status == 0 and not event.cancelled:
            explanation = f"{event.reason}; the transfer did not complete"
        self._finish_out(
            transfer,
            False,
            event.status,
            explanation,
            cancelled=event.cancelled,
            stopped=event.stopped,
        )

    # -- receiving ---------------------------------------------------------------------------
    async def _incoming(self, event: IncomingMessage) -> None:
        async with self._incoming_lock:
            self._transfers.pop(event.message_id, None)
            try:
                received = await self._loop.run_in_executor(
                    None, self._unprotect, event, self.clock()
                )
            except (SmimeError, CpimError, OSError, ValueError, MsrpError) as exc:
                self._emit(
                    MessageRefused(
                        at=self.clock(),
                        sender=self.peer_aor,
                        status=400,
                        reason=f"a message from {self.peer_aor} could not be read: {exc}",
                    )
                )
                self._emit_progress(
                    transfer_id=event.message_id,
                    direction="in",
                    done=event.total,
                    total=event.total,
                    state="failed",
                    reason=f"the message could not be read: {exc}",
                )
                return
            message_id, content_type, content, report, filename, path = received
            rowid = 0
            if self.store is not None:
                if path is not None:
                    # the bytes are in the downloads folder: the store keeps where
                    stored_type, stored_content = FILE_REFERENCE_TYPE, file_reference(path)
                else:
                    stored_type, stored_content = content_type, content
                stored = self.store.add_incoming(
                    peer=self.peer_aor,
                    local=self.local_aor,
                    message_id=message_id,
                    content_type=stored_type,
                    content=stored_content,
                    report=report,
                    at=self.clock(),
                    transport="msrp",
                )
                rowid = stored.rowid
            self._emit_progress(
                transfer_id=event.message_id,
                direction="in",
                filename=filename,
                done=event.total,
                total=event.total,
                state="complete",
            )
            self._emit(
                MessageReceived(
                    at=self.clock(),
                    rowid=rowid,
                    message_id=message_id,
                    sender=self.peer_aor,
                    recipient=self.local_aor,
                    content_type=content_type,
                    content=content,
                    report=report,
                    transport="msrp",
                    filename=filename,
                    path=str(path) if path is not None else None,
                )
            )

    def _unprotect(
        self, event: IncomingMessage, at: datetime
    ) -> tuple[str, str | None, bytes | None, dict[str, Any], str | None, Path | None]:
        buffer = event.body
        if isinstance(buffer, TempFileBuffer):
            try:
                data = buffer.read_all()
            finally:
                buffer.close()
        else:
            data = bytes(buffer)  # type: ignore[call-overload]
        del buffer
        box = [
            MimeEntity.build(event.content_type or "application/octet-stream", data, event.headers)
        ]
        del data
        result = unprotect(
            box.pop(),  # handed over whole: the ciphertext is freed once it is decrypted
            identity=self.identity,
            trust=self.trust,
            sender=self.peer_aor,
            at=at,
            extra_certificates=[self.peer_certificate] if self.peer_certificate else [],
        )
        report = result.report.to_json()
        message_id = event.message_id
        filename: str | None = None
        content_type = result.content_type
        content = result.content or b""
        inner = result.entity
        del result
        body: bytes | memoryview = content
        if inner is not None and content_type == "message/cpim":
            # parse the CPIM head only; the body stays a view of the decrypted bytes
            start = _cpim_body_start(content)
            cpim = parse_cpim(content[:start])
            body = memoryview(content)[start:]
            message_id = cpim.message_id or message_id
            content_type = cpim.content_type
            for name, value in cpim.content_headers:
                if name.lower() == "content-disposition" and ";" in value:
                    params = ContentType.parse("x/x; " + value.partition(";")[2])
                    filename = params.param("filename")
        elif inner is None:
            body = b""
        del inner
        path: Path | None = None
        if filename is not None and self.downloads is not None:
            path = self._save(filename, body)
            data = None  # the file holds it; nothing else keeps a copy in memory
        else:
            data = bytes(body)
        return message_id, content_type, data, report, filename, path

    def _save(self, filename: str, content: bytes | memoryview) -> Path:
        """Write a received file into the downloads folder, whole or not at all."""
        folder = Path(self.downloads)  # type: ignore[arg-type]
        folder.mkdir(parents=True, exist_ok=True)
        name = safe_filename(filename)
        stem, dot, suffix = name.rpartition(".")
        if not dot:
            stem, suffix = name, ""
        target = folder / name
        n = 1
        while target.exists():
            target = folder / (f"{stem} ({n}).{suffix}" if dot else f"{name} ({n})")
            n += 1
        return write_whole(target, lambda out: out.write(content), prefix=".partial-")
