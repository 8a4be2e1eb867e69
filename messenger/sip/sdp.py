"""SDP (RFC 4566) for MSRP sessions: parse and serialize session descriptions, and the
offer/answer of an ``m=message`` stream (RFC 3264, RFC 4975 section 8, RFC 6135 for
``a=setup``, RFC 4976 for relay paths, RFC 5547 for file transfer).

Two levels:

* `SessionDescription.parse` / `SessionDescription.to_bytes`: any SDP, kept line for
  line in the RFC 4566 order. Malformed input raises `SdpParseError` (and only that).
* `make_offer`, `make_answer` and `negotiate`: the MSRP offer/answer. Every offer and
  answer lists the S/MIME types explicitly in ``a=accept-types`` (RFC 8591 section 8).
  The offer says ``a=setup:actpass``; the answer picks ``active`` or ``passive``; the
  active side opens the MSRP connection and sends first. A refused offer raises
  `SdpNegotiationError`, which carries the 488 to answer the INVITE with.

Example (offerer and answerer)::

    offer = make_offer(path=["msrp://192.0.2.1:40000/s1;tcp"], rng=rng)
    invite_body = offer.to_bytes()
    # at the peer:
    answer, theirs = make_answer(SessionDescription.parse(invite_body),
                                 path=["msrp://192.0.2.2:40001/s2;tcp"])
    # back at the offerer, with the 200's body:
    ours = negotiate(offer, SessionDescription.parse(answer.to_bytes()))
    ours.active, ours.remote_path, ours.remote_accept_types, ours.remote_max_size

MSRP URIs in ``a=path`` are checked for their shape only (scheme, authority,
session-id, transport); `messenger.msrp.uri` parses them fully.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from .errors import SipError
from .message import SipRequest, SipResponse

__all__ = [
    "DEFAULT_ACCEPT_TYPES",
    "DEFAULT_ACCEPT_WRAPPED_TYPES",
    "MAX_SDP_BYTES",
    "MSRP_PROTOCOLS",
    "SMIME_TYPES",
    "Attribute",
    "Connection",
    "FileSelector",
    "Media",
    "MsrpMedia",
    "NegotiatedSession",
    "Origin",
    "SdpError",
    "SdpNegotiationError",
    "SdpParseError",
    "SessionDescription",
    "Timing",
    "make_answer",
    "make_offer",
    "msrp_media",
    "negotiate",
]

#: The S/MIME types that every offer and answer lists in a=accept-types (RFC 8591).
SMIME_TYPES: tuple[str, ...] = (
    "application/pkcs7-mime",
    "application/pkcs7-signature",
    "multipart/signed",
)
#: What this product takes at the top of an MSRP message by default.
DEFAULT_ACCEPT_TYPES: tuple[str, ...] = (
    "message/cpim",
    *SMIME_TYPES,
    "text/plain",
    "message/imdn+xml",
)
#: What it takes inside message/cpim by default.
DEFAULT_ACCEPT_WRAPPED_TYPES: tuple[str, ...] = (
    *SMIME_TYPES,
    "text/plain",
    "message/imdn+xml",
)
#: The two ``m=message`` protocols: MSRP over TCP and over TLS.
MSRP_PROTOCOLS: tuple[str, ...] = ("TCP/MSRP", "TCP/TLS/MSRP")
#: Larger SDP bodies are refused before they are decoded.
MAX_SDP_BYTES = 64 * 1024


class SdpError(SipError):
    """Base class of the SDP errors."""


class SdpParseError(SdpError):
    """An SDP body is malformed (RFC 4566 grammar)."""


class SdpNegotiationError(SdpError):
    """An offer or answer cannot be accepted. ``status`` (488) and ``reason`` make the
    SIP response; the message says what was wrong (for a Warning header and the user)."""

    def __init__(self, message: str, *, status: int = 488) -> None:
        super().__init__(message)
        self.status = status
        self.reason = "Not Acceptable Here"

    def response_for(
        self, request: SipRequest, *, agent: str = "-", to_tag: str | None = None
    ) -> SipResponse:
        """The 488 answering ``request``, with a ``Warning: 399`` header (RFC 3261
        section 20.43) that says what was wrong."""
        text = str(self).replace("\\", "\\\\").replace('"', '\\"')
        warning = f'399 {agent} "{text}"'
        return request.make_response(
            self.status, self.reason, [("Warning", warning)], to_tag=to_tag
        )


# -- the RFC 4566 grammar ----------------------------------------------------------------

_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_TOKEN_RE = re.compile(rf"^{_TOKEN}$")
_PROTO_RE = re.compile(rf"^{_TOKEN}(?:/{_TOKEN})*$")
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_BAD_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SESSION_RANK = {
    "v": 0, "o": 1, "s": 2, "i": 3, "u": 4, "e": 5, "p": 6, "c": 7, "b": 8,
    "t": 9, "r": 9, "z": 10, "k": 11, "a": 12,
}  # fmt: skip
_MEDIA_RANK = {"m": 0, "i": 1, "c": 2, "b": 3, "k": 4, "a": 5}
_SESSION_ONCE = frozenset("osiuczk")
_MEDIA_ONCE = frozenset("ik")


def _token(text: str, what: str) -> str:
    if not _TOKEN_RE.match(text):
        raise SdpParseError(f"{what} {text[:40]!r} is not a token")
    return text


def _int(text: str, what: str, maximum: int | None = None) -> int:
    if not _DIGITS.match(text):
        raise SdpParseError(f"{what} {text[:40]!r} is not a number")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SdpParseError(f"{what} {value} is above {maximum}")
    return value


def _check_text(text: str, what: str) -> str:
    if _BAD_TEXT.search(text):
        raise ValueError(f"{what} contains a control character")
    return text


@dataclass(frozen=True)
class Origin:
    """The ``o=`` line: username, session id and version, network and address type,
    address."""

    username: str
    session_id: int
    session_version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    @classmethod
    def parse(cls, text: str) -> Origin:
        parts = text.split(" ")
        if len(parts) != 6 or not all(parts):
            raise SdpParseError(f"o= needs 6 fields separated by single spaces: {text[:80]!r}")
        user, sess_id, version, nettype, addrtype, address = parts
        return cls(
            _token(user, "o= username") if user != "-" else user,
            _int(sess_id, "o= session id"),
            _int(version, "o= session version"),
            address,
            _token(nettype, "o= network type"),
            _token(addrtype, "o= address type"),
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True)
class Connection:
    """A ``c=`` line: network type, address type and address (``IN IP4 192.0.2.1``)."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    @classmethod
    def parse(cls, text: str) -> Connection:
        parts = text.split(" ")
        if len(parts) != 3 or not all(parts):
            raise SdpParseError(f"c= needs 3 fields: {text[:80]!r}")
        nettype, addrtype, address = parts
        if _BAD_TEXT.search(address) or not address.isascii():
            raise SdpParseError(f"bad c= address {address[:40]!r}")
        return cls(address, _token(nettype, "c= network type"), _token(addrtype, "c= type"))

    @classmethod
    def for_host(cls, host: str) -> Connection:
        """``IN IP6`` for an IPv6 address (brackets removed), else ``IN IP4``."""
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        return cls(bare, "IN", "IP6" if ":" in bare else "IP4")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True)
class Timing:
    """A ``t=`` line (start and stop times, 0 for unbounded) and its ``r=`` lines."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Timing:
        parts = text.split(" ")
        if len(parts) != 2:
            raise SdpParseError(f"t= needs start and stop times: {text[:80]!r}")
        return cls(_int(parts[0], "t= start"), _int(parts[1], "t= stop"))


@dataclass(frozen=True)
class Attribute:
    """An ``a=`` line: a property (``value`` None, as ``a=sendonly``) or ``name:value``."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        name, colon, value = text.partition(":")
        _token(name, "attribute name")
        return cls(name, value if colon else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


def _find(attributes: Sequence[Attribute], name: str) -> list[Attribute]:
    return [a for a in attributes if a.name.lower() == name.lower()]


@dataclass(frozen=True)
class Media:
    """One media description: the ``m=`` line and the lines under it.

    ``extra`` keeps the ``i=``, ``b=`` and ``k=`` lines as ``(letter, text)`` pairs.
    """

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connections: tuple[Connection, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name:value``, or None (also for a property)."""
        found = _find(self.attributes, name)
        return found[0].value if found else None

    def has_attribute(self, name: str) -> bool:
        """Whether an ``a=name`` line is present (property or value)."""
        return bool(_find(self.attributes, name))

    def attributes_named(self, name: str) -> list[str | None]:
        """Every value of ``a=name``, in order."""
        return [a.value for a in _find(self.attributes, name)]

    @property
    def connection(self) -> Connection | None:
        """The first media-level ``c=``, or None."""
        return self.connections[0] if self.connections else None

    def _lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        lines = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        lines += [f"i={v}" for k, v in self.extra if k == "i"]
        lines += [f"c={c}" for c in self.connections]
        lines += [f"b={v}" for k, v in self.extra if k == "b"]
        lines += [f"k={v}" for k, v in self.extra if k == "k"]
        lines += [f"a={a}" for a in self.attributes]
        return lines


@dataclass(frozen=True)
class SessionDescription:
    """A parsed SDP session description (RFC 4566).

    ``extra`` keeps the session-level ``i= u= e= p= b= z= k=`` lines as ``(letter, text)``
    pairs; serialization writes every line in the order section 5 prescribes.
    """

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    timing: tuple[Timing, ...] = (Timing(),)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[Media, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()
    version: int = 0

    @classmethod
    def parse(cls, data: bytes | str, *, max_bytes: int = MAX_SDP_BYTES) -> SessionDescription:
        """Parse an SDP body; raise `SdpParseError` when it is malformed or too large.

        Lines end in CRLF or LF. Type letters this grammar does not know, lines out of
        the section 5 order, and repeated single-use lines are refused (section 5: an
        SDP with an unknown type letter must be ignored whole).
        """
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SdpParseError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) > max_bytes:
            raise SdpParseError(f"SDP body of {len(data)} bytes exceeds {max_bytes}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpParseError(f"SDP is not UTF-8 (byte {exc.start})") from exc
        lines = text.split("\n")
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        while lines and lines[-1] == "":
            lines.pop()
        if not lines:
            raise SdpParseError("empty SDP")
        return _Parser(lines).run(cls)

    def to_bytes(self) -> bytes:
        """Serialize with CRLF line ends."""
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        for letter in "iuep":
            lines += [f"{letter}={v}" for k, v in self.extra if k == letter]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [f"b={v}" for k, v in self.extra if k == "b"]
        for timing in self.timing:
            lines.append(f"t={timing.start} {timing.stop}")
            lines += [f"r={r}" for r in timing.repeats]
        for letter in "zk":
            lines += [f"{letter}={v}" for k, v in self.extra if k == letter]
        lines += [f"a={a}" for a in self.attributes]
        for media in self.media:
            lines += media._lines()
        for line in lines:
            _check_text(line, "SDP line")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def attribute(self, name: str) -> str | None:
        """The value of the first session-level ``a=name:value``, or None."""
        found = _find(self.attributes, name)
        return found[0].value if found else None


class _Parser:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def run(self, cls: type[SessionDescription]) -> SessionDescription:
        session: dict[str, object] = {}
        extra: list[tuple[str, str]] = []
        timing: list[Timing] = []
        attributes: list[Attribute] = []
        media: list[Media] = []
        current: dict[str, list[object]] | None = None
        rank = -1
        seen: set[str] = set()
        for number, line in enumerate(self.lines, 1):
            if len(line) < 2 or line[1] != "=":
                raise SdpParseError(f"line {number} is not <type>=<value>: {line[:60]!r}")
            letter, value = line[0], line[2:]
            bad = _BAD_TEXT.search(value)
            if bad:
                raise SdpParseError(f"control character {bad.group()!r} on line {number}")
            if number == 1:
                if line != "v=0":
                    raise SdpParseError(f"SDP must start with v=0, not {line[:20]!r}")
                rank = 0
                seen.add("v")
                continue
            if letter == "m":
                if "t" not in seen:
                    raise SdpParseError("m= before any t= line")
                if current is not None:
                    media.append(_media(current))
                current = {"m": [value], "c": [], "a": [], "x": []}
                rank = 0
                seen_media: set[str] = set()
                continue
            if current is not None:
                new_rank = _MEDIA_RANK.get(letter)
                if new_rank is None:
                    raise SdpParseError(f"line {number}: {letter}= is not allowed in a media")
                if new_rank < rank:
                    raise SdpParseError(f"line {number}: {letter}= is out of order")
                if letter in _MEDIA_ONCE and letter in seen_media:
                    raise SdpParseError(f"line {number}: a second {letter}= in a media")
                seen_media.add(letter)
                rank = new_rank
                if letter == "c":
                    current["c"].append(Connection.parse(value))
                elif letter == "a":
                    current["a"].append(Attribute.parse(value))
                else:
                    _check_extra(letter, value)
                    current["x"].append((letter, value))
                continue
            new_rank = _SESSION_RANK.get(letter)
            if new_rank is None or letter == "v":
                raise SdpParseError(f"line {number}: unknown or misplaced type {letter!r}")
            if new_rank < rank:
                raise SdpParseError(f"line {number}: {letter}= is out of order")
            if letter in _SESSION_ONCE and letter in seen:
                raise SdpParseError(f"line {number}: a second {letter}= line")
            if letter == "r" and not timing:
                raise SdpParseError(f"line {number}: r= without t=")
            if (number == 2 and letter != "o") or (number == 3 and letter != "s"):
                raise SdpParseError("SDP must begin with v=, o= and s= lines")
            seen.add(letter)
            rank = new_rank
            if letter == "o":
                session["o"] = Origin.parse(value)
            elif letter == "s":
                if not value:
                    raise SdpParseError("s= is empty (use s=-)")
                session["s"] = value
            elif letter == "c":
                session["c"] = Connection.parse(value)
            elif letter == "t":
                timing.append(Timing.parse(value))
            elif letter == "r":
                last = timing.pop()
                timing.append(replace(last, repeats=(*last.repeats, value)))
            elif letter == "a":
                attributes.append(Attribute.parse(value))
            else:
                _check_extra(letter, value)
                extra.append((letter, value))
        if current is not None:
            media.append(_media(current))
        if "o" not in session or "s" not in session:
            raise SdpParseError("SDP lacks the o= or s= line")
        if not timing:
            raise SdpParseError("SDP lacks a t= line")
        origin = session["o"]
        assert isinstance(origin, Origin)
        connection = session.get("c")
        assert connection is None or isinstance(connection, Connection)
        return cls(
            origin=origin,
            session_name=str(session["s"]),
            connection=connection,
            timing=tuple(timing),
            attributes=tuple(attributes),
            media=tuple(media),
            extra=tuple(extra),
        )


def _check_extra(letter: str, value: str) -> None:
    if letter == "b":
        bwtype, colon, bandwidth = value.partition(":")
        if not colon or not _TOKEN_RE.match(bwtype) or not _DIGITS.match(bandwidth):
            raise SdpParseError(f"malformed b= line {value[:60]!r}")


def _media(parts: dict[str, list[object]]) -> Media:
    line = str(parts["m"][0])
    fields = line.split(" ")
    if len(fields) < 4 or not all(fields):
        raise SdpParseError(f"m= needs media, port, proto and formats: {line[:80]!r}")
    kind, port_text, proto, *formats = fields
    port_text, slash, count_text = port_text.partition("/")
    port = _int(port_text, "m= port", 65535)
    count = _int(count_text, "m= port count", 65535) if slash else None
    if not _PROTO_RE.match(proto):
        raise SdpParseError(f"m= protocol {proto[:40]!r} is malformed")
    for fmt in formats:
        _token(fmt, "m= format")
    connections = tuple(c for c in parts["c"] if isinstance(c, Connection))
    attributes = tuple(a for a in parts["a"] if isinstance(a, Attribute))
    extra = tuple(x for x in parts["x"] if isinstance(x, tuple))
    return Media(
        _token(kind, "m= media"), port, proto, tuple(formats), count, connections, attributes, extra
    )


# -- MSRP media: a=path, accept-types, setup, file transfer -------------------------------

_MSRP_URI = re.compile(
    r"^(?P<scheme>msrps?)://(?:[^@/\s]+@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_~%]+)(?::(?P<port>[0-9]{1,5}))?"
    r"/[A-Za-z0-9\-._~+=/]+;[A-Za-z0-9]+(?:;\S*)?$",
    re.I,
)
_MEDIA_TYPE = re.compile(rf"^(?:\*|{_TOKEN}/(?:\*|{_TOKEN}))$")
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_SETUP_VALUES = ("active", "passive", "actpass", "holdconn")


def _path_problem(path: Sequence[str], tls: bool) -> str | None:
    """What is wrong with an a=path for the given protocol, or None."""
    if not path:
        return "an MSRP media needs a=path with at least one MSRP URI"
    for uri in path:
        match = _MSRP_URI.match(uri)
        if match is None:
            return f"a=path holds a malformed MSRP URI {uri[:80]!r}"
        port = match["port"]
        if port is not None and int(port) > 65535:
            return f"a=path URI {uri[:80]!r} has a port above 65535"
    last_scheme = path[-1].split(":", 1)[0].lower()
    if (last_scheme == "msrps") != tls:
        proto = "TCP/TLS/MSRP" if tls else "TCP/MSRP"
        return f"a=path ends in a {last_scheme}: URI, which does not fit {proto}"
    return None


def _first_hop(path: Sequence[str]) -> tuple[str, int]:
    match = _MSRP_URI.match(path[0])
    assert match is not None
    return match["host"], int(match["port"] or 2855)


@dataclass(frozen=True)
class FileSelector:
    """The ``a=file-selector`` of RFC 5547: name, type, size and hash of a file.

    ``hash`` is written as in SDP, for example ``sha-1:72:24:5F:...``.
    """

    name: str | None = None
    type: str | None = None
    size: int | None = None
    hash: str | None = None

    @classmethod
    def parse(cls, text: str) -> FileSelector:
        """Parse the attribute value; raise `SdpParseError` when malformed."""
        values: dict[str, str] = {}
        i = 0
        text = text.strip(" ")
        while i < len(text):
            key, colon, _ = text[i:].partition(":")
            if not colon or key not in ("name", "type", "size", "hash") or key in values:
                raise SdpParseError(f"malformed a=file-selector {text[:80]!r}")
            i += len(key) + 1
            if key == "name":
                if not text.startswith('"', i):
                    raise SdpParseError("a=file-selector name must be a quoted string")
                end = text.find('"', i + 1)
                if end < 0:
                    raise SdpParseError("unterminated file name in a=file-selector")
                raw = text[i + 1 : end]
                try:
                    values[key] = _percent_decode(raw)
                except ValueError as exc:
                    raise SdpParseError(f"bad file name in a=file-selector: {exc}") from exc
                i = end + 1
            else:
                end = text.find(" ", i)
                end = len(text) if end < 0 else end
                values[key] = text[i:end]
                if not values[key]:
                    raise SdpParseError(f"empty {key} in a=file-selector")
                i = end
            while i < len(text) and text[i] == " ":
                i += 1
        size = values.get("size")
        return cls(
            values.get("name"),
            values.get("type"),
            _int(size, "file-selector size") if size is not None else None,
            values.get("hash"),
        )

    def __str__(self) -> str:
        parts = []
        if self.name is not None:
            parts.append(f'name:"{_percent_encode(self.name)}"')
        if self.type is not None:
            parts.append(f"type:{self.type}")
        if self.size is not None:
            parts.append(f"size:{self.size}")
        if self.hash is not None:
            parts.append(f"hash:{self.hash}")
        return " ".join(parts)


_NAME_ESCAPES = {"%": "%25", '"': "%22", "\r": "%0D", "\n": "%0A", "\x00": "%00"}


def _percent_encode(name: str) -> str:
    return "".join(_NAME_ESCAPES.get(ch, ch) for ch in name)


def _percent_decode(raw: str) -> str:
    out = bytearray()
    i = 0
    encoded = raw.encode("utf-8", "surrogatepass")
    while i < len(encoded):
        if encoded[i : i + 1] == b"%":
            pair = encoded[i + 1 : i + 3]
            if len(pair) != 2 or not all(chr(c) in "0123456789abcdefABCDEF" for c in pair):
                raise ValueError("a % is not followed by two hex digits")
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(encoded[i])
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("the name is not UTF-8") from exc


@dataclass(frozen=True)
class MsrpMedia:
    """What one side says in its ``m=message`` media (RFC 4975 section 8).

    ``path`` is its a=path (first hop first, its own URI last); ``accept_types`` and
    ``accept_wrapped_types`` what it takes; ``max_size`` the largest message it takes
    (None: no limit said); ``setup`` its a=setup (None when absent); ``tls`` whether the
    protocol is TCP/TLS/MSRP; ``direction`` sendrecv, sendonly, recvonly or inactive.
    """

    path: tuple[str, ...]
    accept_types: tuple[str, ...]
    accept_wrapped_types: tuple[str, ...] = ()
    max_size: int | None = None
    setup: str | None = None
    tls: bool = False
    direction: str = "sendrecv"
    file_selector: FileSelector | None = None
    file_transfer_id: str | None = None

    @classmethod
    def from_media(cls, media: Media) -> MsrpMedia:
        """Read an MSRP media; raise `SdpNegotiationError` when it is not usable."""
        if media.media.lower() != "message" or media.proto.upper() not in MSRP_PROTOCOLS:
            raise SdpNegotiationError(f"m={media.media} {media.proto} is not an MSRP stream")
        tls = media.proto.upper() == "TCP/TLS/MSRP"
        path_text = media.attribute("path")
        if path_text is None:
            raise SdpNegotiationError("the MSRP media has no a=path")
        path = tuple(path_text.split())
        problem = _path_problem(path, tls)
        if problem is not None:
            raise SdpNegotiationError(problem)
        accept_text = media.attribute("accept-types")
        if accept_text is None or not accept_text.split():
            raise SdpNegotiationError("the MSRP media has no a=accept-types")
        accept = _media_types(accept_text, "a=accept-types")
        wrapped_text = media.attribute("accept-wrapped-types")
        wrapped = _media_types(wrapped_text, "a=accept-wrapped-types") if wrapped_text else ()
        max_size_text = media.attribute("max-size")
        max_size = None
        if max_size_text is not None:
            if not _DIGITS.match(max_size_text.strip()):
                raise SdpNegotiationError(f"a=max-size {max_size_text[:30]!r} is not a number")
            max_size = int(max_size_text.strip())
        setup = media.attribute("setup")
        if setup is not None:
            setup = setup.strip().lower()
            if setup not in _SETUP_VALUES:
                raise SdpNegotiationError(f"unknown a=setup value {setup[:30]!r}")
        direction = "sendrecv"
        for candidate in _DIRECTIONS:
            if media.has_attribute(candidate):
                direction = candidate
        selector_text = media.attribute("file-selector")
        selector = None
        if selector_text is not None:
            try:
                selector = FileSelector.parse(selector_text)
            except SdpParseError as exc:
                raise SdpNegotiationError(str(exc)) from exc
        return cls(
            path,
            accept,
            wrapped,
            max_size,
            setup,
            tls,
            direction,
            selector,
            media.attribute("file-transfer-id"),
        )

    def to_media(self) -> Media:
        """The ``m=message`` media for this side (a=path first, as RFC 4975 shows)."""
        problem = _path_problem(self.path, self.tls)
        if problem is not None:
            raise ValueError(problem)
        _, port = _first_hop(self.path)
        attributes = [
            Attribute("accept-types", " ".join(self.accept_types)),
        ]
        if self.accept_wrapped_types:
            attributes.append(
                Attribute("accept-wrapped-types", " ".join(self.accept_wrapped_types))
            )
        if self.max_size is not None:
            attributes.append(Attribute("max-size", str(self.max_size)))
        attributes.append(Attribute("path", " ".join(self.path)))
        if self.setup is not None:
            attributes.append(Attribute("setup", self.setup))
        if self.direction != "sendrecv":
            attributes.append(Attribute(self.direction))
        if self.file_selector is not None:
            attributes.append(Attribute("file-selector", str(self.file_selector)))
        if self.file_transfer_id is not None:
            attributes.append(Attribute("file-transfer-id", self.file_transfer_id))
        proto = "TCP/TLS/MSRP" if self.tls else "TCP/MSRP"
        return Media("message", port, proto, ("*",), attributes=tuple(attributes))

    def accepts(self, content_type: str) -> bool:
        """Whether this side takes ``content_type`` at the top of a message."""
        return _type_in(content_type, self.accept_types)

    @property
    def accepts_smime(self) -> bool:
        """Whether this side takes S/MIME (application/pkcs7-mime) at the top of a
        message, or inside message/cpim."""
        mime = "application/pkcs7-mime"
        return self.accepts(mime) or (
            self.accepts("message/cpim") and _type_in(mime, self.accept_wrapped_types)
        )


def _media_types(text: str, what: str) -> tuple[str, ...]:
    types = tuple(text.split())
    for item in types:
        if not _MEDIA_TYPE.match(item):
            raise SdpNegotiationError(f"{what} holds a malformed media type {item[:60]!r}")
    return types


def _type_in(content_type: str, types: Iterable[str]) -> bool:
    wanted = content_type.split(";", 1)[0].strip().lower()
    major = wanted.split("/", 1)[0]
    for item in types:
        item = item.lower()
        if item in ("*", wanted) or item == f"{major}/*":
            return True
    return False


def _with_smime(types: Sequence[str]) -> tuple[str, ...]:
    """``types`` with every S/MIME type listed explicitly."""
    out = list(types)
    for mime in SMIME_TYPES:
        if mime not in (t.lower() for t in out):
            out.append(mime)
    return tuple(out)


def _advertised(
    accept_types: Sequence[str], wrapped: Sequence[str], require_smime: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if require_smime:
        rest = [t for t in (*accept_types, *wrapped) if t.lower() not in SMIME_TYPES]
        return SMIME_TYPES, tuple(dict.fromkeys(rest))
    return _with_smime(accept_types), tuple(wrapped)


@dataclass(frozen=True)
class NegotiatedSession:
    """The outcome of an MSRP offer/answer, from this side's point of view.

    ``active``: this side opens the connection (to the first URI of ``remote_path``, or
    through its own relay) and sends first (RFC 6135); the passive side waits for it.
    ``remote_accept_types``/``remote_max_size`` bound what this side may send. A passive
    side must already listen on the last URI of its a=path when its SDP goes out.
    """

    local: MsrpMedia
    remote: MsrpMedia
    active: bool
    offerer: bool

    @property
    def local_path(self) -> tuple[str, ...]:
        """This side's a=path (its own MSRP URI last)."""
        return self.local.path

    @property
    def remote_path(self) -> tuple[str, ...]:
        """The peer's a=path: the To-Path of what this side sends."""
        return self.remote.path

    @property
    def tls(self) -> bool:
        """Whether the stream is TCP/TLS/MSRP."""
        return self.local.tls

    @property
    def remote_accept_types(self) -> tuple[str, ...]:
        """What the peer takes at the top of a message."""
        return self.remote.accept_types

    @property
    def remote_accept_wrapped_types(self) -> tuple[str, ...]:
        """What the peer takes inside message/cpim."""
        return self.remote.accept_wrapped_types

    @property
    def remote_max_size(self) -> int | None:
        """The largest message the peer takes (None: it set no limit)."""
        return self.remote.max_size

    @property
    def remote_accepts_smime(self) -> bool:
        """Whether the peer said it takes application/pkcs7-mime."""
        return self.remote.accepts_smime

    @property
    def direction(self) -> str:
        """This side's direction (sendrecv, sendonly, recvonly, inactive)."""
        return self.local.direction

    @property
    def file_selector(self) -> FileSelector | None:
        """The file being transferred (RFC 5547), from either side."""
        return self.local.file_selector or self.remote.file_selector


def msrp_media(description: SessionDescription) -> tuple[int, Media]:
    """The index and media of the first ``m=message`` MSRP stream with a non-zero port;
    `SdpNegotiationError` when there is none."""
    for index, media in enumerate(description.media):
        if (
            media.media.lower() == "message"
            and media.proto.upper() in MSRP_PROTOCOLS
            and media.port != 0
        ):
            return index, media
    raise SdpNegotiationError("no MSRP message stream (m=message ... TCP/MSRP) in the SDP")


def _session_id(rng: random.Random | None) -> int:
    return (rng or random.SystemRandom()).randrange(1, 2**62)


def _description(
    media: Sequence[Media], path: Sequence[str], session_id: int, version: int
) -> SessionDescription:
    host, _ = _first_hop(path)
    connection = Connection.for_host(host)
    origin = Origin("-", session_id, version, connection.address, "IN", connection.addrtype)
    return SessionDescription(origin, "-", connection, (Timing(0, 0),), (), tuple(media))


def make_offer(
    *,
    path: Sequence[str],
    tls: bool = False,
    accept_types: Sequence[str] = DEFAULT_ACCEPT_TYPES,
    accept_wrapped_types: Sequence[str] = DEFAULT_ACCEPT_WRAPPED_TYPES,
    require_smime: bool = False,
    max_size: int | None = None,
    direction: str = "sendrecv",
    file_selector: FileSelector | None = None,
    file_transfer_id: str | None = None,
    session_id: int | None = None,
    rng: random.Random | None = None,
) -> SessionDescription:
    """An SDP offer with one ``m=message`` stream, ``a=setup:actpass``.

    ``path`` is this side's a=path (relays first, its own MSRP URI last; ``msrps`` when
    ``tls``). The S/MIME types are always listed in a=accept-types; with
    ``require_smime`` they are the only ones and the rest move to
    a=accept-wrapped-types. A file transfer (RFC 5547) sets ``direction`` (sendonly to
    push a file, recvonly to pull one), ``file_selector`` and ``file_transfer_id``.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}")
    accept, wrapped = _advertised(accept_types, accept_wrapped_types, require_smime)
    local = MsrpMedia(
        tuple(path),
        accept,
        wrapped,
        max_size,
        "actpass",
        tls,
        direction,
        file_selector,
        file_transfer_id,
    )
    sid = session_id if session_id is not None else _session_id(rng)
    return _description([local.to_media()], path, sid, 1)


_ANSWER_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


def make_answer(
    offer: SessionDescription,
    *,
    path: Sequence[str] | Callable[[bool], Sequence[str]],
    accept_types: Sequence[str] = DEFAULT_ACCEPT_TYPES,
    accept_wrapped_types: Sequence[str] = DEFAULT_ACCEPT_WRAPPED_TYPES,
    require_smime: bool = False,
    require_peer_smime: bool = False,
    max_size: int | None = None,
    setup: str = "active",
    allow_tcp: bool = True,
    allow_tls: bool = True,
    accept_files: bool = True,
    session_id: int | None = None,
    rng: random.Random | None = None,
) -> tuple[SessionDescription, NegotiatedSession]:
    """Answer an SDP offer (RFC 3264) for its first MSRP stream; other streams are
    refused with port 0, as section 6 asks.

    ``path`` is this side's a=path, or a function of "the offer wants TLS" returning it.
    ``setup`` is what to answer an ``actpass`` offer with (``active`` by default, as
    RFC 4975 endpoints expect); an ``active`` offer gets ``passive`` and a ``passive``
    (or absent, RFC 4975) offer gets ``active``. The answer lists the S/MIME types in
    a=accept-types, copies the file-selector of a file transfer, and takes the reverse
    direction.

    Raises `SdpNegotiationError` (488) when there is no MSRP stream, its transport is not
    allowed, its a=path, a=accept-types or a=setup is unusable (``holdconn``), the peer
    does not take S/MIME while ``require_peer_smime`` is set, or it offers a file while
    ``accept_files`` is False.
    """
    index, offered = msrp_media(offer)
    remote = MsrpMedia.from_media(offered)
    if remote.tls and not allow_tls:
        raise SdpNegotiationError("the offer asks for MSRP over TLS, which is turned off")
    if not remote.tls and not allow_tcp:
        raise SdpNegotiationError("the offer asks for MSRP over plain TCP; TLS is required")
    if remote.setup in (None, "passive"):
        answer_setup = "active"
    elif remote.setup == "active":
        answer_setup = "passive"
    elif remote.setup == "actpass":
        if setup not in ("active", "passive"):
            raise ValueError("setup must be 'active' or 'passive'")
        answer_setup = setup
    else:
        raise SdpNegotiationError(f"a=setup:{remote.setup} is not supported for MSRP")
    if require_peer_smime and not remote.accepts_smime:
        raise SdpNegotiationError(
            "the peer does not accept S/MIME (application/pkcs7-mime) in a=accept-types"
        )
    if remote.file_selector is not None and not accept_files:
        raise SdpNegotiationError("file transfers are not accepted")
    local_path = path(remote.tls) if callable(path) else path
    accept, wrapped = _advertised(accept_types, accept_wrapped_types, require_smime)
    local = MsrpMedia(
        tuple(local_path),
        accept,
        wrapped,
        max_size,
        answer_setup,
        remote.tls,
        _ANSWER_DIRECTION[remote.direction],
        remote.file_selector,
        remote.file_transfer_id,
    )
    streams = [
        local.to_media() if i == index else Media(m.media, 0, m.proto, m.formats)
        for i, m in enumerate(offer.media)
    ]
    sid = session_id if session_id is not None else _session_id(rng)
    answer = _description(streams, local.path, sid, 1)
    return answer, NegotiatedSession(local, remote, answer_setup == "active", offerer=False)


def negotiate(offer: SessionDescription, answer: SessionDescription) -> NegotiatedSession:
    """The offerer's view once the answer came: who connects, the peer's path, what it
    accepts. Raises `SdpNegotiationError` when the answer refused the stream (port 0),
    changed its protocol, answered with an invalid a=setup, or lacks a=path or
    a=accept-types."""
    index, offered = msrp_media(offer)
    if len(answer.media) <= index:
        raise SdpNegotiationError("the answer has fewer media lines than the offer")
    answered = answer.media[index]
    if answered.port == 0:
        raise SdpNegotiationError("the peer refused the MSRP stream (port 0)")
    if answered.proto.upper() != offered.proto.upper():
        raise SdpNegotiationError(
            f"the answer changed the protocol from {offered.proto} to {answered.proto}"
        )
    local = MsrpMedia.from_media(offered)
    remote = MsrpMedia.from_media(answered)
    offer_setup = local.setup or "passive"
    answer_setup = remote.setup or "active"
    if offer_setup == "holdconn":
        raise SdpNegotiationError("the offer says a=setup:holdconn")
    if answer_setup not in ("active", "passive"):
        raise SdpNegotiationError(f"an answer cannot say a=setup:{answer_setup}")
    if offer_setup == answer_setup:
        raise SdpNegotiationError(f"both sides say a=setup:{answer_setup}")
    return NegotiatedSession(local, remote, answer_setup == "passive", offerer=True)
