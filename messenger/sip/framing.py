"""Framing of SIP messages on stream transports (TCP, TLS; RFC 3261 section 18.3) and
CRLF keep-alives (RFC 5626 section 4.4.1).

`StreamFramer.feed` takes bytes as they arrive and returns whole messages, cut by
Content-Length (mandatory on streams). CRLFs between messages are skipped; a double CRLF is
a keep-alive *ping* that the transport answers with a single CRLF *pong* (`take_pings`).
After a `SipParseError` the stream cannot be resynchronized: close the connection.
"""

from __future__ import annotations

import re

from .errors import SipParseError
from .message import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_HEADER_BYTES
from .uri import TOKEN_CHARS

__all__ = ["KEEPALIVE_PING", "KEEPALIVE_PONG", "StreamFramer", "is_keepalive"]

#: RFC 5626 section 4.4.1: the client's ping and the server's pong on stream transports.
KEEPALIVE_PING = b"\r\n\r\n"
KEEPALIVE_PONG = b"\r\n"

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_START_LINE = re.compile(
    rb"^(?:SIP/\d+\.\d+ \d{3}(?: [^\r\n]*)?|[A-Za-z0-9.!%*_+`'~-]+ [!-~]+ SIP/\d+\.\d+)\r?$",
    re.I,
)
_TOKEN_BYTES = frozenset("".join(TOKEN_CHARS).encode("ascii"))
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(.*?)[ \t\r]*$", re.I)


def is_keepalive(datagram: bytes) -> bool:
    """Whether a datagram (or chunk) is only CRLF keep-alive bytes."""
    return bool(datagram) and not datagram.strip(b"\r\n")


class StreamFramer:
    """Cuts a byte stream into SIP messages by Content-Length."""

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._line_ends = 0  # LFs seen in the current run of CR/LF between messages
        self._pings = 0
        self._failed: str | None = None
        self._scan_from = 0  # where to resume looking for the end of the header section

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a message."""
        return len(self._buffer)

    def take_pings(self) -> int:
        """How many double-CRLF pings arrived since the last call (answer each with
        `KEEPALIVE_PONG`)."""
        pings, self._pings = self._pings, 0
        return pings

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the messages now complete, in order."""
        if self._failed is not None:
            raise SipParseError(f"stream already failed: {self._failed}")
        self._buffer += data
        try:
            return self._drain()
        except SipParseError as exc:
            self._failed = str(exc)
            self._buffer.clear()
            raise

    def _skip_crlf(self) -> None:
        buf = self._buffer
        i = 0
        while i < len(buf) and buf[i] in b"\r\n":
            if buf[i] == 0x0A:
                self._line_ends += 1
                if self._line_ends == 2:
                    self._pings += 1
                    self._line_ends = 0
            i += 1
        if i:
            del buf[:i]
        if buf:
            self._line_ends = 0

    def _drain(self) -> list[bytes]:
        messages: list[bytes] = []
        while True:
            self._skip_crlf()
            buf = self._buffer
            if not buf:
                return messages
            if buf[0] not in _TOKEN_BYTES:
                raise SipParseError(f"stream does not start a SIP message: {bytes(buf[:20])!r}")
            if self._scan_from == 0:
                newline = buf.find(b"\n", 0, self.max_header_bytes + 1)
                if newline >= 0 and not _START_LINE.match(bytes(buf[:newline])):
                    raise SipParseError(f"not a SIP start line: {bytes(buf[:60])!r}")
                if newline < 0:
                    if len(buf) > self.max_header_bytes:
                        raise SipParseError(f"header section exceeds {self.max_header_bytes} bytes")
                    return messages
            match = _HEADER_END.search(buf, max(0, self._scan_from - 3), self.max_header_bytes + 4)
            if match is None:
                if len(buf) > self.max_header_bytes + 3:
                    raise SipParseError(f"header section exceeds {self.max_header_bytes} bytes")
                self._scan_from = len(buf)
                return messages
            if match.start() > self.max_header_bytes:
                raise SipParseError(f"header section exceeds {self.max_header_bytes} bytes")
            length = self._content_length(bytes(buf[: match.start()]))
            total = match.end() + length
            if len(buf) < total:
                return messages
            messages.append(bytes(buf[:total]))
            del buf[:total]
            self._scan_from = 0

    def _content_length(self, head: bytes) -> int:
        values: set[bytes] = set()
        unfolded = re.sub(rb"\r?\n[ \t]+", b" ", head)
        for line in re.split(rb"\r?\n", unfolded)[1:]:
            match = _CONTENT_LENGTH.match(line)
            if match:
                values.add(match.group(1))
        if not values:
            raise SipParseError("no Content-Length on a stream transport")
        if len(values) > 1:
            raise SipParseError("conflicting Content-Length headers")
        text = values.pop()
        if not text.isdigit() or len(text) > 12:
            raise SipParseError(f"malformed Content-Length {text[:20]!r}")
        length = int(text)
        if length > self.max_body_bytes:
            raise SipParseError(
                f"Content-Length {length} exceeds the limit of {self.max_body_bytes} bytes"
            )
        return length
