"""MSRP chunking and reassembly by Byte-Range (RFC 4975 sections 5.1, 7.1.1 and 7.1.2).

* `chunk_message` cuts one whole message (already protected, RFC 8591 section 8) into SEND
  requests of at most ``chunk_size`` body bytes, each with ``Byte-Range: start-end/total``,
  ``+`` on every chunk but the last and ``$`` on the last.
* `Reassembler` puts chunks back together by Message-ID and Byte-Range. Chunks may arrive
  re-chunked, reordered or overlapping (relays, RFC 4976). The total is checked against
  ``max_message_size`` before the one buffer of the message is allocated (RFC 8591
  section 12); a message is complete when every byte of ``1..total`` has arrived; a chunk
  with the ``#`` flag aborts its message.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import MsrpByteRangeError, MsrpError, MsrpParseError
from .frame import _IDENT, ByteRange, MsrpRequest, _end_line_in
from .ids import new_transaction_id
from .uri import MsrpUri

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Reassembler",
    "Reassembly",
    "chunk_message",
]

DEFAULT_CHUNK_SIZE = 2048
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
DEFAULT_MAX_PENDING = 16
_REMEMBERED_COMPLETE = 256
_TID_ATTEMPTS = 16


def _path(path: Sequence[MsrpUri | str] | MsrpUri | str) -> str:
    if isinstance(path, MsrpUri | str):
        path = [path]
    if not path:
        raise MsrpError("an MSRP path needs at least one URI")
    return " ".join(str(uri) for uri in path)


def chunk_message(
    body: bytes,
    *,
    message_id: str,
    content_type: str,
    to_path: Sequence[MsrpUri | str] | MsrpUri | str,
    from_path: Sequence[MsrpUri | str] | MsrpUri | str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    transaction_id_factory: Callable[[], str] | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Iterator[MsrpRequest]:
    """Yield the SEND requests that carry ``body``, first byte first.

    Headers, in order: To-Path, From-Path, Message-ID, the ``extra_headers`` that are MSRP
    headers (Success-Report, Failure-Report...), Byte-Range, the ``extra_headers`` that are
    MIME headers (``Content-*``, e.g. Content-Disposition), Content-Type. An empty body
    gives one request with ``Byte-Range: 1-0/0``.

    Each chunk body is a copy of its slice only (the message is sliced through a
    memoryview). A transaction id whose end-line occurs in the chunk body is replaced by
    another one from ``transaction_id_factory`` (default: `new_transaction_id`).
    """
    if chunk_size < 1:
        raise MsrpError("chunk_size must be at least 1")
    if not _IDENT.fullmatch(message_id):
        raise MsrpError(f"Message-ID {message_id[:40]!r} is not an ident (4 to 32 characters)")
    factory = transaction_id_factory or new_transaction_id
    extra = list(extra_headers)
    msrp_headers = [h for h in extra if not h[0].lower().startswith("content-")]
    mime_headers = [h for h in extra if h[0].lower().startswith("content-")]
    if any(name.lower() == "content-type" for name, _ in mime_headers):
        raise MsrpError("pass the Content-Type as content_type, not in extra_headers")
    head = [("To-Path", _path(to_path)), ("From-Path", _path(from_path))]
    head += [("Message-ID", message_id), *msrp_headers]
    tail = [*mime_headers, ("Content-Type", content_type)]
    total = len(body)
    view = memoryview(body)
    start = 0
    while True:
        stop = min(start + chunk_size, total)
        chunk = bytes(view[start:stop])
        tid = factory()
        for _ in range(_TID_ATTEMPTS):
            if not _end_line_in(chunk, tid):
                break
            tid = factory()
        else:
            raise MsrpError("the transaction id factory keeps producing ids found in the body")
        byte_range = ("Byte-Range", f"{start + 1}-{stop}/{total}")
        flag = "$" if stop == total else "+"
        yield MsrpRequest("SEND", tid, (*head, byte_range, *tail), chunk, flag)
        if stop == total:
            return
        start = stop


@dataclass(frozen=True)
class Reassembly:
    """What `Reassembler.add` learned from one chunk.

    ``state`` is ``partial`` (more bytes expected), ``complete`` (``body`` holds the
    whole message), ``aborted`` (the sender sent ``#``; everything was discarded) or
    ``duplicate`` (a chunk of a message completed earlier; ignored).
    ``received`` counts distinct bytes of ``total`` held so far. A complete message comes
    as ``body`` (bytes) by default, or as ``buffer`` (the very object ``buffer_factory``
    allocated, nothing copied) when the `Reassembler` was given a ``buffer_factory``.
    """

    message_id: str
    state: Literal["partial", "complete", "aborted", "duplicate"]
    received: int
    total: int | None
    content_type: str | None = None
    body: bytes | None = field(default=None, repr=False)
    buffer: object | None = field(default=None, repr=False)


@dataclass
class _Pending:
    total: int
    buffer: bytearray | memoryview | Any  # Any: an object with write_at(offset, data)
    content_type: str | None
    # Disjoint, non-adjacent, sorted [start, stop) intervals of received bytes (0-based).
    starts: list[int] = field(default_factory=list)
    stops: list[int] = field(default_factory=list)
    received: int = 0

    def cover(self, start: int, stop: int) -> None:
        """Mark ``[start, stop)`` as received, merging intervals."""
        i = bisect_left(self.stops, start)  # first interval that ends at or after start
        j = i
        new_start, new_stop = start, stop
        already = 0
        while j < len(self.starts) and self.starts[j] <= stop:
            already += self.stops[j] - self.starts[j]
            new_start = min(new_start, self.starts[j])
            new_stop = max(new_stop, self.stops[j])
            j += 1
        self.starts[i:j] = [new_start]
        self.stops[i:j] = [new_stop]
        self.received += (new_stop - new_start) - already


class Reassembler:
    """Reassembles chunked MSRP messages of one session, keyed by Message-ID.

    ``max_message_size`` bounds the Byte-Range total a message may announce (413 above
    it, checked before anything is allocated); ``max_pending`` bounds how many messages
    may be incomplete at once (413 for one more). Errors are `MsrpByteRangeError` or
    `MsrpParseError`, with status 400 for a chunk that contradicts itself or its message;
    the message concerned is dropped. Old incomplete messages are dropped with `discard`
    (the caller owns the clock).

    ``buffer_factory(total)`` allocates the one buffer of a message: any writable buffer of
    ``total`` bytes (a bytearray, an ``mmap``...), or an object with a
    ``write_at(offset, data)`` method (a temporary file the caller owns). With it, a
    complete message is handed back as that object rather than copied into ``bytes``; the
    factory is called only after the total passed the size checks.
    """

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_pending: int = DEFAULT_MAX_PENDING,
        buffer_factory: Callable[[int], object] | None = None,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_pending = max_pending
        self._buffer_factory = buffer_factory
        self._buffers: dict[str, object] = {}
        self._pending: dict[str, _Pending] = {}
        self._complete: OrderedDict[str, int] = OrderedDict()

    def progress(self, message_id: str) -> tuple[int, int] | None:
        """``(received, total)`` bytes of an incomplete message, or None."""
        pending = self._pending.get(message_id)
        return None if pending is None else (pending.received, pending.total)

    def contiguous(self, message_id: str) -> int:
        """How many bytes from the first one on have arrived without a gap (0 if none)."""
        pending = self._pending.get(message_id)
        if pending is None or not pending.starts or pending.starts[0] != 0:
            return 0
        return pending.stops[0]

    def pending(self) -> tuple[str, ...]:
        """Message-IDs of the incomplete messages."""
        return tuple(self._pending)

    def discard(self, message_id: str) -> bool:
        """Drop an incomplete message (a timeout, a 413 sent); True if there was one."""
        return self._drop(message_id) is not None

    def _drop(self, message_id: str) -> _Pending | None:
        """Forget an incomplete message; a buffer with a ``close`` method is closed."""
        buffer = self._buffers.pop(message_id, None)
        pending = self._pending.pop(message_id, None)
        if pending is not None and isinstance(pending.buffer, memoryview):
            pending.buffer.release()
        close = getattr(buffer, "close", None)
        if callable(close):
            close()
        return pending

    def add(self, request: MsrpRequest) -> Reassembly:
        """Store one SEND chunk and say how its message stands."""
        message_id = request.message_id
        if message_id is None:
            raise MsrpParseError("a SEND chunk needs a Message-ID", status_code=400)
        if message_id in self._complete:
            total = self._complete[message_id]
            return Reassembly(message_id, "duplicate", total, total)
        if request.continuation == "#":
            pending = self._drop(message_id)
            received = 0 if pending is None else pending.received
            return Reassembly(
                message_id, "aborted", received, None if pending is None else pending.total
            )
        try:
            return self._store(message_id, request)
        except MsrpParseError:
            self._drop(message_id)
            raise

    def _store(self, message_id: str, request: MsrpRequest) -> Reassembly:
        body = request.body
        byte_range = request.byte_range or ByteRange(1, None, None)
        start = byte_range.start - 1
        stop = start + len(body)
        if byte_range.end is not None and byte_range.end != stop:
            raise MsrpByteRangeError(
                f"Byte-Range {byte_range} does not match a body of {len(body)} bytes"
            )
        pending = self._pending.get(message_id)
        total = byte_range.total
        if total is None and request.continuation == "$":
            total = stop  # the last chunk of a message sent without a known total
        if pending is None:
            pending = self._open(message_id, total, request.content_type)
        elif total is not None and total != pending.total:
            raise MsrpByteRangeError(
                f"Byte-Range total {total} contradicts {pending.total} of earlier chunks"
            )
        if stop > pending.total:
            raise MsrpByteRangeError(f"Byte-Range {byte_range} runs past total {pending.total}")
        if isinstance(pending.buffer, bytearray | memoryview):
            pending.buffer[start:stop] = body
        elif stop > start:
            pending.buffer.write_at(start, body)
        if stop > start:
            pending.cover(start, stop)
        if pending.content_type is None:
            pending.content_type = request.content_type
        if pending.received < pending.total:
            return Reassembly(
                message_id, "partial", pending.received, pending.total, pending.content_type
            )
        del self._pending[message_id]
        self._complete[message_id] = pending.total
        while len(self._complete) > _REMEMBERED_COMPLETE:
            self._complete.popitem(last=False)
        if self._buffer_factory is not None:
            if isinstance(pending.buffer, memoryview):
                pending.buffer.release()
            return Reassembly(
                message_id,
                "complete",
                pending.total,
                pending.total,
                pending.content_type,
                buffer=self._buffers.pop(message_id),
            )
        return Reassembly(
            message_id,
            "complete",
            pending.total,
            pending.total,
            pending.content_type,
            bytes(pending.buffer),
        )

    def _open(self, message_id: str, total: int | None, content_type: str | None) -> _Pending:
        if total is None:
            raise MsrpByteRangeError(
                "a chunked message must announce its total (RFC 8591 section 8)", status_code=413
            )
        if total > self.max_message_size:
            raise MsrpByteRangeError(
                f"message of {total} bytes exceeds the limit of {self.max_message_size}",
                status_code=413,
            )
        if len(self._pending) >= self.max_pending:
            raise MsrpParseError(
                f"already {len(self._pending)} incomplete messages", status_code=413
            )
        if self._buffer_factory is None:
            pending = _Pending(total, bytearray(total), content_type)
        else:
            buffer = self._buffer_factory(total)
            target: Any = buffer
            if not callable(getattr(buffer, "write_at", None)):
                target = memoryview(buffer).cast("B")  # type: ignore[arg-type]
                if target.readonly or len(target) != total:
                    target.release()
                    raise MsrpError(f"the buffer factory did not give {total} writable bytes")
            self._buffers[message_id] = buffer
            pending = _Pending(total, target, content_type)
        self._pending[message_id] = pending
        return pending
