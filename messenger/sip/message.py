"""SIP messages (RFC 3261 section 7): `SipRequest`, `SipResponse`, `parse_message` and
serialization to bytes.

* Bodies are exact bytes; the serializer always writes the right ``Content-Length`` (in
  place of the existing field, so a received message re-serializes byte for byte).
* On receive: compact header names are expanded, folded lines are joined, list-valued
  headers (`messenger.sip.headers.MULTI_VALUE_HEADERS`) are split at commas.
* Input is bounded: header sections over ``max_header_bytes`` (64 KiB) and bodies over
  ``max_body_bytes`` are refused.
* Malformed input raises `SipParseError`; when the request line and the headers needed to
  answer (Via, From, To, Call-ID, CSeq) were readable, the error carries
  ``partial_request`` and `best_effort_response_400` builds the ``400 Bad Request``.
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .address import Address
from .errors import SipParseError, SipUriError
from .headers import (
    MULTI_VALUE_HEADERS,
    CSeq,
    Headers,
    Via,
    canonical_name,
    is_token,
    split_header_values,
)
from .ids import new_tag
from .uri import SipUri, check_uri

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HEADER_BYTES",
    "REASON_PHRASES",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "best_effort_response_400",
    "parse_message",
]

DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
SIP_VERSION = "SIP/2.0"

#: Reason phrases of RFC 3261 section 21 and the extensions this product meets.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_SINGLE_VALUE = ("Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length", "Content-Type")
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LINE_BREAK = re.compile(r"\r?\n")
_BAD_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: What `_BAD_CHARS` finds in some line of a whole header section (line breaks aside).
_ODD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")
_STATUS_LINE = re.compile(r"^(SIP/\d+\.\d+) (\d{3})(?: (.*))?$", re.I | re.S)
_TAG_PARAM = re.compile(r";[ \t]*tag[ \t]*=", re.I)

T = TypeVar("T")
HeaderInput = Headers | Iterable[tuple[str, str]] | Mapping[str, str] | None


def _as_headers(headers: HeaderInput) -> Headers:
    if isinstance(headers, Headers):
        return headers
    return Headers(headers)


class SipMessage(ABC):
    """What requests and responses share: headers, body and typed header accessors."""

    headers: Headers
    body: bytes
    version: str

    @abstractmethod
    def start_line(self) -> str:
        """The request line or status line, without CRLF."""

    def to_bytes(self) -> bytes:
        """Serialize with CRLF line ends and a Content-Length that counts the body bytes."""
        lines = [self.start_line()]
        length_written = False
        for name, value in self.headers:
            if canonical_name(name).lower() == "content-length":
                if length_written:
                    continue
                value = str(len(self.body))
                length_written = True
            lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"no {name} header")
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID (raises `SipParseError` when absent)."""
        return self._required("Call-ID")

    @property
    def cseq(self) -> CSeq:
        """The parsed CSeq."""
        return CSeq.parse(self._required("CSeq"))

    @property
    def vias(self) -> list[Via]:
        """Every Via, top first."""
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        """The topmost Via."""
        return Via.parse(self._required("Via"))

    @property
    def from_address(self) -> Address:
        """The parsed From."""
        return Address.parse(self._required("From"))

    @property
    def to_address(self) -> Address:
        """The parsed To."""
        return Address.parse(self._required("To"))

    @property
    def contacts(self) -> list[Address]:
        """The parsed Contact values (an ``*`` wildcard is left out; see `headers`)."""
        return [Address.parse(v) for v in self.headers.get_all("Contact") if v.strip() != "*"]

    @property
    def content_type(self) -> str | None:
        """The Content-Type value as written, or None."""
        return self.headers.get("Content-Type")


@dataclass(init=False)
class SipRequest(SipMessage):
    """A SIP request. ``uri`` is the Request-URI text (a `SipUri` given to the constructor
    is turned into text); ``headers`` may be given as `Headers`, pairs or a mapping."""

    method: str
    uri: str
    headers: Headers
    body: bytes
    version: str

    def __init__(
        self,
        method: str,
        uri: str | SipUri,
        headers: HeaderInput = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        self.method = method
        self.uri = str(uri)
        self.headers = _as_headers(headers)
        self.body = bytes(body)
        self.version = version
        if not is_token(self.method):
            raise ValueError(f"method {self.method!r} is not a token")
        if not self.uri or any(ch in self.uri for ch in " \t\r\n\x00"):
            raise ValueError(f"Request-URI {self.uri!r} is empty or contains whitespace")

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    @property
    def sip_uri(self) -> SipUri:
        """The Request-URI as a `SipUri` (raises `SipUriError` for other schemes)."""
        return SipUri.parse(self.uri)

    def make_response(
        self,
        status: int,
        reason: str | None = None,
        headers: HeaderInput = None,
        body: bytes = b"",
        *,
        to_tag: str | None = None,
        rng: random.Random | None = None,
    ) -> SipResponse:
        """Build a response per RFC 3261 section 8.2.6.

        Copies every Via (in order), From, To, Call-ID and CSeq; a 100 also copies
        Timestamp. When To has no tag and ``status > 100``, adds ``to_tag`` (or a fresh tag
        drawn from ``rng``, default `secrets`). ``headers`` are appended after those.
        """
        out = Headers()
        for via in self.headers.get_all("Via"):
            out.add("Via", via)
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = self.headers.get(name)
            if value is not None:
                if name == "To" and status > 100 and not _has_tag(value):
                    value = f"{value};tag={to_tag or new_tag(rng)}"
                out.add(name, value)
        if status == 100:
            timestamp = self.headers.get("Timestamp")
            if timestamp is not None:
                out.add("Timestamp", timestamp)
        for name, value in _as_headers(headers):
            out.add(name, value)
        return SipResponse(status, reason or REASON_PHRASES.get(status, ""), out, body)


def _has_tag(to_value: str) -> bool:
    try:
        return Address.parse(to_value).has_param("tag")
    except SipParseError:
        _, _, after = to_value.rpartition(">")
        return bool(_TAG_PARAM.search(after if ">" in to_value else to_value))


@dataclass(init=False)
class SipResponse(SipMessage):
    """A SIP response; ``headers`` may be given as `Headers`, pairs or a mapping."""

    status: int
    reason: str
    headers: Headers
    body: bytes
    version: str

    def __init__(
        self,
        status: int,
        reason: str = "",
        headers: HeaderInput = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = _as_headers(headers)
        self.body = bytes(body)
        self.version = version
        if not 100 <= self.status <= 699:
            raise ValueError(f"status {self.status} is not in 100..699")
        if any(ch in self.reason for ch in "\r\n\x00"):
            raise ValueError("reason phrase contains CR, LF or NUL")

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    @property
    def is_provisional(self) -> bool:
        """1xx."""
        return self.status < 200

    @property
    def is_final(self) -> bool:
        """2xx to 6xx."""
        return self.status >= 200


# -- parsing -----------------------------------------------------------------------------


def _split_head(data: bytes, max_header_bytes: int) -> tuple[bytes, bytes]:
    start = 0
    while start < len(data) and data[start] in b"\r\n":
        start += 1
    if start == len(data):
        raise SipParseError("empty message")
    match = _HEADER_END.search(data, start, start + max_header_bytes + 4)
    if match is None:
        if len(data) - start > max_header_bytes:
            raise SipParseError(f"header section exceeds {max_header_bytes} bytes")
        raise SipParseError("no empty line after the header section")
    head = data[start : match.start()]
    if len(head) > max_header_bytes:
        raise SipParseError(f"header section exceeds {max_header_bytes} bytes")
    return head, data[match.end() :]


def _head_lines(head: bytes) -> list[str]:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"header section is not UTF-8 (byte {exc.start})") from exc
    if (
        _ODD_CHARS.search(text) is None
        and "\n " not in text
        and "\n\t" not in text
        and text[:1] not in (" ", "\t")
    ):
        # the usual case: no control character and no folded line
        return _LINE_BREAK.split(text)
    lines: list[str] = []
    for line in _LINE_BREAK.split(text):
        bad = _BAD_CHARS.search(line)
        if bad:
            raise SipParseError(f"control character {bad.group()!r} in the header section")
        if line[:1] in (" ", "\t"):
            if len(lines) < 2:
                raise SipParseError("folded line right after the start line")
            lines[-1] = lines[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            lines.append(line)
    return lines


def _parse_header_lines(lines: list[str], problems: list[str]) -> Headers:
    items: list[tuple[str, str]] = []
    append = items.append
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            problems.append(f"malformed header line {line[:60]!r}")
            continue
        name = canonical_name(name)
        value = value.strip(" \t")
        if name.lower() in MULTI_VALUE_HEADERS:
            for item in split_header_values(value):
                append((name, item))
        else:
            append((name, value))
    # names are tokens and the header section holds no CR, LF or NUL: nothing to re-check
    return Headers._trusted(items)


def _check_version(version: str) -> None:
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported SIP version {version[:20]!r}")


def _check(problems: list[str], parse: Callable[[str], T], text: str) -> T | None:
    try:
        return parse(text)
    except SipParseError as exc:
        problems.append(str(exc))
        return None


def _validate(
    msg: SipRequest | SipResponse, body: bytes, max_body_bytes: int, problems: list[str]
) -> bytes:
    """Check the headers every message needs; return the body cut to Content-Length."""
    h = msg.headers
    for name in _SINGLE_VALUE:
        if h.count(name) > 1:
            problems.append(f"more than one {name} header")
    for name in _REQUIRED:
        if name not in h:
            problems.append(f"missing {name} header")
    for via in h.get_all("Via"):
        _check(problems, Via.parse, via)
    for name in ("From", "To"):
        value = h.get(name)
        if value is not None:
            _check(problems, Address.parse, value)
    for name in ("Contact", "Route", "Record-Route"):
        for value in h.get_all(name):
            if not (name == "Contact" and value == "*"):
                _check(problems, Address.parse, value)
    cseq_text = h.get("CSeq")
    if cseq_text is not None:
        cseq = _check(problems, CSeq.parse, cseq_text)
        if isinstance(msg, SipRequest) and cseq is not None and cseq.method != msg.method:
            problems.append(
                f"CSeq method {cseq.method!r} does not match request method {msg.method!r}"
            )
    call_id = h.get("Call-ID")
    if call_id is not None and (not call_id or any(ch in call_id for ch in " \t")):
        problems.append(f"malformed Call-ID {call_id[:60]!r}")
    max_forwards = h.get("Max-Forwards")
    if max_forwards is not None and not (max_forwards.isascii() and max_forwards.isdigit()):
        problems.append(f"malformed Max-Forwards {max_forwards[:20]!r}")
    if isinstance(msg, SipRequest):
        try:
            check_uri(msg.uri)
        except SipUriError as exc:
            problems.append(f"bad Request-URI: {exc}")

    length_text = h.get("Content-Length")
    if length_text is None:
        if len(body) > max_body_bytes:
            problems.append(f"body exceeds {max_body_bytes} bytes")
        return body
    if not (length_text.isascii() and length_text.isdigit()):
        problems.append(f"malformed Content-Length {length_text[:20]!r}")
        return b""
    length = int(length_text)
    if length > max_body_bytes:
        problems.append(f"Content-Length {length} exceeds the limit of {max_body_bytes} bytes")
        return b""
    if len(body) < length:
        problems.append(f"body is {len(body)} bytes but Content-Length says {length}")
        return b""
    return body[:length]


def _partial(msg: SipRequest) -> SipRequest | None:
    """The request stripped to what a 400 needs, if the needed headers are readable."""
    h = msg.headers
    if any(name not in h for name in _REQUIRED):
        return None
    try:
        Via.parse(h.get_all("Via")[0])
    except SipParseError:
        return None
    return SipRequest(msg.method, msg.uri, h.copy(), b"", msg.version)


def parse_message(
    data: bytes,
    *,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> SipRequest | SipResponse:
    """Parse one SIP message (a datagram, or one message cut out by `StreamFramer`).

    Leading CRLFs are skipped. Without Content-Length the body is the rest of ``data``;
    with it, bytes beyond Content-Length are dropped (RFC 3261 section 18.3) and a shorter
    body is an error. Raises `SipParseError` (and only that) on malformed input.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SipParseError(f"expected bytes, got {type(data).__name__}")
    head, rest = _split_head(bytes(data), max_header_bytes)
    lines = _head_lines(head)
    start, header_lines = lines[0], lines[1:]
    problems: list[str] = []
    msg: SipRequest | SipResponse
    status_match = _STATUS_LINE.match(start)
    if status_match:
        version, status, reason = status_match.groups()
        _check_version(version)
        code = int(status)
        if not 100 <= code <= 699:
            raise SipParseError(f"status code {code} is not in 100..699")
        headers = _parse_header_lines(header_lines, problems)
        msg = SipResponse(code, reason or "", headers, b"", SIP_VERSION)
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not all(parts) or "\t" in start:
            raise SipParseError(f"malformed start line {start[:80]!r}")
        method, uri, version = parts
        if not is_token(method):
            raise SipParseError(f"method {method[:30]!r} is not a token")
        _check_version(version)
        headers = _parse_header_lines(header_lines, problems)
        msg = SipRequest(method, uri, headers, b"", SIP_VERSION)
    body = _validate(msg, rest, max_body_bytes, problems)
    if problems:
        partial = _partial(msg) if isinstance(msg, SipRequest) else None
        raise SipParseError("; ".join(problems), partial_request=partial)
    msg.body = body
    return msg


def best_effort_response_400(
    data: bytes,
    *,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    to_tag: str | None = None,
) -> bytes | None:
    """The bytes of a ``400 Bad Request`` answering a malformed request, or None.

    None when ``data`` parses, is a response or an ACK, or when the request line, Via,
    From, To, Call-ID or CSeq could not be read (nothing to address a response to).
    """
    try:
        parse_message(data, max_header_bytes=max_header_bytes, max_body_bytes=max_body_bytes)
    except SipParseError as exc:
        partial = exc.partial_request
        if isinstance(partial, SipRequest) and partial.method != "ACK":
            return partial.make_response(400, to_tag=to_tag).to_bytes()
    return None
