"""MSRP frames (RFC 4975 sections 7 and 9): requests, responses and the incremental parser.

A frame on the wire::

    MSRP d93kswow SEND                                      start line
    To-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp
    From-Path: msrp://bobpc.example.org:8888/9di4eae923wzd;tcp
    Message-ID: 12339sdqwer
    Byte-Range: 1-960/1940
    Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"
                                                            blank line (only with a body)
    <960 bytes>                                             body
    -------d93kswow+                                        end-line, after a CRLF

MSRP has no Content-Length: a body ends at the first CRLF followed by ``-------``, the
frame's own transaction id, a continuation flag (``$`` complete, ``+`` more chunks follow,
``#`` aborted) and CRLF. Look-alike lines for another transaction id, or not preceded by
CRLF, are body bytes.

* `MsrpRequest` and `MsrpResponse` are immutable; construction checks the rules a sender
  must follow (To-Path and From-Path first, Content-Type last and present exactly when there
  is a body section), so `to_bytes` only ever writes well-formed frames, and the parser
  accepts exactly what they can represent (``parse(f.to_bytes()) == f``).
* `FrameParser` is fed bytes split anywhere and returns complete frames. It bounds the
  header block and the body of each chunk, raising `MsrpParseError` with status 400 or 413,
  never allocates from a claimed Byte-Range, and never searches the same bytes twice, so a
  long body costs linear time whatever the size of the pieces it arrives in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import MsrpByteRangeError, MsrpError, MsrpParseError
from .uri import MsrpUri, parse_path

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_HEADER_SIZE",
    "ByteRange",
    "FrameParser",
    "MsrpFrame",
    "MsrpRequest",
    "MsrpResponse",
    "Status",
    "parse_frame",
    "response_to",
]

DEFAULT_MAX_HEADER_SIZE = 16 * 1024
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024

FLAGS = "$+#"
_END_PREFIX = b"-------"
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}")  # transaction ids, Message-IDs
_METHOD = re.compile(r"[A-Z]+")
_HNAME = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+\-.^_`|~]*")
_UTF8TEXT = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")  # HTAB, SP, printable, non-ASCII
_HEADER_LINE = re.compile(rf"(?P<name>{_HNAME.pattern}): (?P<value>{_UTF8TEXT.pattern})")
_RESPONSE_REST = re.compile(r"(?P<code>[0-9]{3})(?: (?P<comment>" + _UTF8TEXT.pattern + "))?")
_BYTE_RANGE = re.compile(
    r"(?P<start>[0-9]{1,18})-(?P<end>[0-9]{1,18}|\*)/(?P<total>[0-9]{1,18}|\*)"
)
_STATUS = re.compile(
    r"(?P<ns>[0-9]{3}) (?P<code>[0-9]{3})(?: (?P<comment>" + _UTF8TEXT.pattern + "))?"
)


# -- header values -----------------------------------------------------------------------


@dataclass(frozen=True)
class ByteRange:
    """A Byte-Range value (RFC 4975 section 7.1.1): ``start-end/total``, 1-based, inclusive.

    ``end`` and ``total`` are None where the wire says ``*`` (not known).
    """

    start: int
    end: int | None
    total: int | None

    def __post_init__(self) -> None:
        if self.start < 1:
            raise MsrpByteRangeError(f"Byte-Range start {self.start} is below 1")
        if self.end is not None and self.end < self.start - 1:
            raise MsrpByteRangeError(f"Byte-Range end {self.end} is before start {self.start}")
        if self.total is not None and (
            self.start - 1 > self.total or (self.end is not None and self.end > self.total)
        ):
            raise MsrpByteRangeError(f"Byte-Range {self} runs past its total")

    @classmethod
    def parse(cls, value: str) -> ByteRange:
        """Parse ``1-960/1940``, ``1-*/*``... Raises `MsrpByteRangeError` (400)."""
        m = _BYTE_RANGE.fullmatch(value)
        if m is None:
            raise MsrpByteRangeError(f"malformed Byte-Range {value[:60]!r}")
        end = None if m["end"] == "*" else int(m["end"])
        total = None if m["total"] == "*" else int(m["total"])
        return cls(int(m["start"]), end, total)

    def __str__(self) -> str:
        end = "*" if self.end is None else str(self.end)
        total = "*" if self.total is None else str(self.total)
        return f"{self.start}-{end}/{total}"


@dataclass(frozen=True)
class Status:
    """A Status header value (RFC 4975 section 7.1.2), e.g. ``000 200 OK`` in a REPORT."""

    namespace: int
    code: int
    comment: str | None = None

    @classmethod
    def parse(cls, value: str) -> Status:
        """Parse ``000 200 OK``. Raises `MsrpParseError` (400)."""
        m = _STATUS.fullmatch(value)
        if m is None:
            raise MsrpParseError(f"malformed Status {value[:60]!r}")
        return cls(int(m["ns"]), int(m["code"]), m["comment"])

    def __str__(self) -> str:
        text = f"{self.namespace:03d} {self.code:03d}"
        return text if self.comment is None else f"{text} {self.comment}"


# -- frames ------------------------------------------------------------------------------


def _check_common(transaction_id: str, headers: tuple[tuple[str, str], ...]) -> None:
    if not isinstance(transaction_id, str) or not _IDENT.fullmatch(transaction_id):
        raise MsrpError(f"bad transaction id {str(transaction_id)[:40]!r}")
    for header in headers:
        if (
            not isinstance(header, tuple)
            or len(header) != 2
            or not isinstance(header[0], str)
            or not isinstance(header[1], str)
            or not _HNAME.fullmatch(header[0])
            or not _UTF8TEXT.fullmatch(header[1])
        ):
            raise MsrpError(f"bad MSRP header {str(header)[:80]}")
    names = [name.lower() for name, _ in headers[:2]]
    if names != ["to-path", "from-path"]:
        raise MsrpError("an MSRP frame starts with To-Path then From-Path")


def _end_line_in(body: bytes, transaction_id: str) -> bool:
    """Whether ``body`` holds ``-------<transaction_id>`` followed by a continuation flag.

    The sender's rule (RFC 4975 section 7.1): it is stricter than what breaks framing (no
    CRLF is required around it), so no receiver, however it searches, can end the body
    early. `chunk_message` picks transaction ids that pass it.
    """
    needle = _END_PREFIX + transaction_id.encode("ascii")
    i = body.find(needle)
    while i >= 0:
        after = i + len(needle)
        if after < len(body) and body[after] in b"$+#":
            return True
        i = body.find(needle, i + 1)
    return False


def _breaks_framing(body: bytes, transaction_id: str) -> bool:
    """Whether ``body`` would end early when framed: it holds CRLF, the end-line and CRLF.

    A flag as the very last body byte counts, since the framing CRLF follows it. Nothing a
    `FrameParser` returned can break framing, so received frames always re-serialize.
    """
    marker = b"\r\n" + _END_PREFIX + transaction_id.encode("ascii")
    i = body.find(marker)
    while i >= 0:
        flag = i + len(marker)
        ends_line = flag + 1 == len(body) or body[flag + 1 : flag + 3] == b"\r\n"
        if flag < len(body) and body[flag] in b"$+#" and ends_line:
            return True
        i = body.find(marker, i + 1)
    return False


class _Headers:
    """Header access shared by requests and responses (names compare case-insensitively)."""

    headers: tuple[tuple[str, str], ...]

    def get_all(self, name: str) -> tuple[str, ...]:
        """Values of every header called ``name``, in order."""
        key = name.lower()
        return tuple(v for n, v in self.headers if n.lower() == key)

    def get(self, name: str) -> str | None:
        """The value of the first header called ``name``, or None."""
        values = self.get_all(name)
        return values[0] if values else None

    @property
    def to_path(self) -> tuple[MsrpUri, ...]:
        """The To-Path URIs, next hop first. Raises `MsrpParseError` if malformed."""
        return parse_path(self.headers[0][1])

    @property
    def from_path(self) -> tuple[MsrpUri, ...]:
        """The From-Path URIs, previous hop first. Raises `MsrpParseError` if malformed."""
        return parse_path(self.headers[1][1])


@dataclass(frozen=True)
class MsrpRequest(_Headers):
    """An MSRP request: SEND, REPORT or an extension method (RFC 4975 section 7.1).

    ``headers`` are in wire order, To-Path and From-Path first. A body section is written
    when and only when there is a Content-Type header, which then comes last.
    ``continuation`` is the end-line flag: ``$`` last chunk, ``+`` more follow, ``#`` aborted.
    """

    method: str
    transaction_id: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    continuation: str = "$"

    def __post_init__(self) -> None:
        _check_common(self.transaction_id, self.headers)
        if not isinstance(self.method, str) or not _METHOD.fullmatch(self.method):
            raise MsrpError(f"bad MSRP method {str(self.method)[:20]!r}")
        if self.continuation not in ("$", "+", "#"):
            raise MsrpError(f"bad continuation flag {self.continuation!r}")
        if not isinstance(self.body, bytes):
            raise MsrpError("an MSRP body is bytes")
        types = [i for i, (name, _) in enumerate(self.headers) if name.lower() == "content-type"]
        if len(types) > 1:
            raise MsrpError("more than one Content-Type header")
        if types and types[0] != len(self.headers) - 1:
            raise MsrpError("Content-Type must be the last header")
        if self.body and not types:
            raise MsrpError("a request with a body needs a Content-Type header")

    @property
    def has_body_section(self) -> bool:
        """Whether the frame carries a body section (possibly empty): it has a Content-Type."""
        return self.headers[-1][0].lower() == "content-type"

    @property
    def message_id(self) -> str | None:
        """The Message-ID header, or None."""
        return self.get("Message-ID")

    @property
    def content_type(self) -> str | None:
        """The Content-Type header, or None."""
        return self.headers[-1][1] if self.has_body_section else None

    @property
    def byte_range(self) -> ByteRange | None:
        """The parsed Byte-Range header, or None. Raises `MsrpByteRangeError` if malformed."""
        value = self.get("Byte-Range")
        return None if value is None else ByteRange.parse(value)

    @property
    def status(self) -> Status | None:
        """The parsed Status header (REPORT requests), or None."""
        value = self.get("Status")
        return None if value is None else Status.parse(value)

    def to_bytes(self) -> bytes:
        """Serialize the request. Raises `MsrpError` if the body would end the frame early."""
        if _breaks_framing(self.body, self.transaction_id):
            raise MsrpError("the body contains the end-line; use another transaction id")
        lines = [f"MSRP {self.transaction_id} {self.method}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        head = ("\r\n".join(lines) + "\r\n").encode("utf-8")
        end = b"-------" + self.transaction_id.encode("ascii") + self.continuation.encode()
        if self.has_body_section:
            return b"".join((head, b"\r\n", self.body, b"\r\n", end, b"\r\n"))
        return head + end + b"\r\n"


@dataclass(frozen=True)
class MsrpResponse(_Headers):
    """An MSRP response (RFC 4975 section 7.2): status code, optional comment, no body."""

    transaction_id: str
    status: int
    comment: str | None
    headers: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        _check_common(self.transaction_id, self.headers)
        if not isinstance(self.status, int) or not 100 <= self.status <= 999:
            raise MsrpError(f"bad MSRP status code {self.status!r}")
        if self.comment is not None and not _UTF8TEXT.fullmatch(self.comment):
            raise MsrpError("bad MSRP response comment")

    def to_bytes(self) -> bytes:
        """Serialize the response."""
        start = f"MSRP {self.transaction_id} {self.status:03d}"
        lines = [start if self.comment is None else f"{start} {self.comment}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        lines.append(f"-------{self.transaction_id}$")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


MsrpFrame = MsrpRequest | MsrpResponse


def response_to(
    request: MsrpRequest,
    status: int,
    comment: str | None = None,
    *,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> MsrpResponse:
    """The response to ``request`` (RFC 4975 section 7.2).

    To-Path is the first URI of the request's From-Path (the previous hop) and From-Path the
    first URI of its To-Path (this hop).
    """
    to_hop = request.headers[1][1].split(" ")[0]
    from_hop = request.headers[0][1].split(" ")[0]
    headers = (("To-Path", to_hop), ("From-Path", from_hop), *extra_headers)
    return MsrpResponse(request.transaction_id, status, comment, headers)


# -- parsing -----------------------------------------------------------------------------


def _fail(why: str, status_code: int = 400) -> MsrpParseError:
    return MsrpParseError(why, status_code=status_code)


class FrameParser:
    """Incremental MSRP frame parser for one connection (sans-IO).

    ``feed(data)`` takes bytes cut anywhere and returns the frames completed so far, in
    order. Limits: the start line and headers of a frame may take ``max_header_size`` bytes,
    the body of one chunk ``max_body_size`` bytes; beyond that `MsrpParseError` with status
    413 is raised, malformed data raises it with status 400. The error carries the
    transaction id when known and the frames completed earlier in the same ``feed`` call.
    After an error the stream cannot be resynchronized: every later ``feed`` raises again,
    and the connection should be closed.
    """

    def __init__(
        self,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self._buf = bytearray()
        self._failed: MsrpParseError | None = None
        self._reset()

    def _reset(self) -> None:
        self._scan = 0  # no line end / end-line starts before this index
        self._line_start = 0
        self._transaction_id: str | None = None
        self._method: str | None = None
        self._status: tuple[int, str | None] | None = None
        self._headers: list[tuple[str, str]] = []
        self._body_start: int | None = None
        self._marker = b""

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[MsrpFrame]:
        """Add received bytes; return every frame they complete."""
        if self._failed is not None:
            raise MsrpParseError(
                f"the stream failed earlier: {self._failed}",
                status_code=self._failed.status_code,
                transaction_id=self._failed.transaction_id,
            )
        self._buf += data
        frames: list[MsrpFrame] = []
        try:
            while True:
                frame = self._next_frame()
                if frame is None:
                    return frames
                frames.append(frame)
        except MsrpParseError as exc:
            error = MsrpParseError(
                str(exc),
                status_code=exc.status_code,
                transaction_id=self._transaction_id,
                frames=frames,
            )
            self._failed = error
            raise error from None

    def _next_frame(self) -> MsrpFrame | None:
        if self._body_start is None:
            done = self._read_head()
            if done is None:
                return None
            if done is not True:  # a frame without body section
                return self._finish(done, body=b"", end=self._line_start)
        return self._read_body()

    def _read_head(self) -> bool | str | None:
        """Read header lines. True: a body follows; a flag: frame ended; None: need more."""
        buf = self._buf
        if self._transaction_id is None and buf[:5] != b"MSRP "[: len(buf)]:
            raise _fail("the data does not start with an MSRP start line")
        while True:
            end = buf.find(b"\r\n", self._scan)
            if end < 0:
                if len(buf) > self.max_header_size:
                    raise _fail("MSRP header block too large", 413)
                self._scan = max(self._line_start, len(buf) - 1)
                return None
            if end + 2 > self.max_header_size:
                raise _fail("MSRP header block too large", 413)
            line = bytes(buf[self._line_start : end])
            self._line_start = self._scan = end + 2
            if self._transaction_id is None:
                self._start_line(line)
            elif not line:
                if self._method is None:
                    raise _fail("an MSRP response has no body")
                self._body_start = end + 2
                self._scan = end + 2
                self._marker = b"\r\n" + _END_PREFIX + self._transaction_id.encode("ascii")
                return True
            elif line.startswith(_END_PREFIX):
                expected = _END_PREFIX + self._transaction_id.encode("ascii")
                if len(line) != len(expected) + 1 or not line.startswith(expected):
                    raise _fail("end-line does not match the transaction id")
                flag = chr(line[-1])
                if flag not in FLAGS:
                    raise _fail("bad continuation flag")
                return flag
            else:
                self._headers.append(self._header_line(line))

    def _start_line(self, line: bytes) -> None:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("MSRP start line is not UTF-8") from None
        parts = text.split(" ", 2)
        if len(parts) != 3 or parts[0] != "MSRP" or not _IDENT.fullmatch(parts[1]):
            raise _fail("malformed MSRP start line")
        rest = parts[2]
        if _METHOD.fullmatch(rest):
            self._method = rest
        else:
            m = _RESPONSE_REST.fullmatch(rest)
            if m is None:
                raise _fail("malformed MSRP start line")
            self._status = (int(m["code"]), m["comment"])
        self._transaction_id = parts[1]

    def _header_line(self, line: bytes) -> tuple[str, str]:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("MSRP header is not UTF-8") from None
        m = _HEADER_LINE.fullmatch(text)
        if m is None:
            raise _fail(f"malformed MSRP header line {text[:60]!r}")
        return m["name"], m["value"]

    def _read_body(self) -> MsrpFrame | None:
        buf, marker = self._buf, self._marker
        assert self._body_start is not None
        i = buf.find(marker, self._scan)
        while i >= 0:
            after = i + len(marker)
            if len(buf) < after + 3:
                self._scan = i  # a candidate end-line: wait for its flag and CRLF
                break
            if buf[after] in b"$+#" and buf[after + 1 : after + 3] == b"\r\n":
                if i - self._body_start > self.max_body_size:
                    raise _fail("MSRP chunk body too large", 413)
                with memoryview(buf) as view:
                    body = bytes(view[self._body_start : i])
                return self._finish(chr(buf[after]), body=body, end=after + 3)
            i = buf.find(marker, i + 1)
        else:
            self._scan = max(self._body_start, len(buf) - len(marker) + 1)
        if self._scan - self._body_start > self.max_body_size:
            raise _fail("MSRP chunk body too large", 413)
        return None

    def _finish(self, flag: str, *, body: bytes, end: int) -> MsrpFrame:
        assert self._transaction_id is not None
        headers = tuple(self._headers)
        try:
            frame: MsrpFrame
            if self._method is not None:
                frame = MsrpRequest(self._method, self._transaction_id, headers, body, flag)
                if frame.has_body_section != (self._body_start is not None):
                    raise MsrpError("Content-Type goes with a body section and only with one")
            else:
                assert self._status is not None
                if flag != "$":
                    raise MsrpError("a response ends with the $ flag")
                frame = MsrpResponse(self._transaction_id, *self._status, headers)
        except MsrpParseError:
            raise
        except MsrpError as exc:
            raise _fail(str(exc)) from None
        del self._buf[:end]
        self._reset()
        return frame


def parse_frame(
    data: bytes,
    *,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
) -> MsrpFrame:
    """Parse exactly one complete frame. Raises `MsrpParseError` for anything else."""
    parser = FrameParser(max_header_size=max_header_size, max_body_size=max_body_size)
    frames = parser.feed(data)
    if len(frames) != 1 or parser.buffered:
        raise MsrpParseError("expected exactly one complete MSRP frame")
    return frames[0]
