"""MIME entities as S/MIME sees them: headers, exact body bytes, multipart and encodings.

Bodies are kept as the bytes that arrived: a multipart/signed first part is signed byte
for byte, so nothing here re-folds, re-orders or re-encodes what it did not build.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import quopri
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from messenger.smime.errors import MalformedError

CRLF = b"\r\n"
#: A header section larger than this is not a MIME entity we will read.
MAX_HEADER_BYTES = 64 * 1024
#: Nesting deeper than this is refused (a crafted message could recurse forever).
MAX_DEPTH = 8


@dataclass(frozen=True)
class ContentType:
    """A parsed Content-Type: lowercase type/subtype and its parameters (names lowercase)."""

    mime_type: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str) -> ContentType:
        if cls is ContentType:
            return _parse_content_type(value)  # the same few values arrive again and again
        return cls._parse(value)

    @classmethod
    def _parse(cls, value: str) -> ContentType:
        parts = _split_params(value)
        mime_type = parts[0].strip().lower()
        if mime_type.count("/") != 1 or not all(mime_type.split("/")):
            raise MalformedError(f"Content-Type {value!r} is not of the form type/subtype")
        params: list[tuple[str, str]] = []
        for item in parts[1:]:
            item = item.strip()
            if not item:
                continue
            name, sep, raw = item.partition("=")
            if not sep:
                raise MalformedError(f"Content-Type parameter {item!r} has no value")
            params.append((name.strip().lower(), _unquote(raw.strip())))
        return cls(mime_type, tuple(params))

    def param(self, name: str) -> str | None:
        name = name.lower()
        return next((v for n, v in self.params if n == name), None)

    def __str__(self) -> str:
        out = self.mime_type
        for name, value in self.params:
            out += f"; {name}={_quote(value)}"
        return out


@functools.lru_cache(maxsize=256)
def _parse_content_type(value: str) -> ContentType:
    return ContentType._parse(value)


def _split_params(value: str) -> list[str]:
    """Split on semicolons that are outside quoted strings."""
    if '"' not in value:
        return value.split(";")
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise MalformedError(f"unterminated quoted string in {value!r}")
    parts.append("".join(current))
    return parts


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        inner = raw[1:-1]
        out: list[str] = []
        it = iter(inner)
        for ch in it:
            out.append(next(it, "") if ch == "\\" else ch)
        return "".join(out)
    return raw


#: An RFC 2045 token: printable US-ASCII without tspecials (which would need quoting).
_TOKEN = re.compile(r"[!#$%&\'*+\-.0-9A-Z^_`a-z{|}~]+")


def _quote(value: str) -> str:
    if _TOKEN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class MimeEntity:
    """One MIME entity: ordered headers (original case kept) and its raw body bytes."""

    headers: tuple[tuple[str, str], ...]
    body: bytes

    # -- construction ------------------------------------------------------------------
    @classmethod
    def build(
        cls, content_type: str | ContentType, body: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> MimeEntity:
        return cls((("Content-Type", str(content_type)), *headers), bytes(body))

    @classmethod
    def parse(cls, data: bytes) -> MimeEntity:
        """Parse headers, blank line, body. Accepts CRLF (canonical) and bare LF lines in
        the header section, and folded header lines; the body is kept byte for byte."""
        headers, body = split_entity(data)
        return cls(headers, bytes(body))

    # -- access ------------------------------------------------------------------------
    # Both lookups are derived from `headers` alone, which recur message after message
    # (the same few header sections): each distinct section is read once.
    def header(self, name: str) -> str | None:
        try:
            first = _first_values(self.headers)
        except TypeError:  # headers given as a list: not remembered
            first = _first_values.__wrapped__(self.headers)
        return first.get(name.lower())

    @property
    def content_type(self) -> ContentType:
        try:
            return _content_type_of(self.headers)
        except TypeError:
            return _content_type_of.__wrapped__(self.headers)

    @property
    def transfer_encoding(self) -> str:
        """The Content-Transfer-Encoding, lowercase ('binary' when absent)."""
        return (self.header("Content-Transfer-Encoding") or "binary").strip().lower()

    def decoded_body(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone (base64, quoted-printable)."""
        cte = self.transfer_encoding
        if cte in ("binary", "8bit", "7bit"):
            return self.body
        if cte == "base64":
            try:
                return base64.b64decode(b"".join(self.body.split()), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise MalformedError(f"base64 body does not decode: {exc}") from None
        if cte == "quoted-printable":
            return quopri.decodestring(self.body)
        raise MalformedError(f"unknown Content-Transfer-Encoding {cte!r}")

    def head_bytes(self) -> bytes:
        """The header section and the blank line that ends it (what precedes the body)."""
        return "".join(f"{n}: {v}\r\n" for n, v in self.headers).encode() + CRLF

    def to_bytes(self) -> bytes:
        return self.head_bytes() + self.body

    def with_headers(self, headers: Iterable[tuple[str, str]]) -> MimeEntity:
        return MimeEntity(tuple(headers), self.body)


@functools.lru_cache(maxsize=128)
def _first_values(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Lowercase header name -> the value of its first occurrence (not to be changed)."""
    first: dict[str, str] = {}
    for n, v in headers:
        first.setdefault(n.lower(), v)
    return first


@functools.lru_cache(maxsize=128)
def _content_type_of(headers: tuple[tuple[str, str], ...]) -> ContentType:
    value = _first_values(headers).get("content-type")
    if value is None:
        return ContentType("text/plain", (("charset", "us-ascii"),))  # RFC 2045 5.2
    return ContentType.parse(value)


def header_length(data: bytes | memoryview) -> int:
    """Length of the header section of `data` including the blank line after it, or -1
    when no blank line ends it within the first MAX_HEADER_BYTES (not a MIME entity)."""
    prefix = bytes(data[: MAX_HEADER_BYTES + 4])
    end, sep_len = _header_end(prefix)
    if end < 0 or end > MAX_HEADER_BYTES:
        return -1
    return end + sep_len


def split_entity(
    data: bytes | bytearray | memoryview,
) -> tuple[tuple[tuple[str, str], ...], memoryview]:
    """Parse the header section of `data`; the body comes back as a view (no copy), so a
    large body is copied at most once, by whoever needs it as bytes."""
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    # The header section is searched where it lies when `data` is bytes; other buffers
    # give up a copy of their first MAX_HEADER_BYTES only.
    text = data if isinstance(data, bytes) else bytes(view[: MAX_HEADER_BYTES + 4])
    end, sep_len = _header_end(text, MAX_HEADER_BYTES + 4)
    if end < 0 and len(view) <= MAX_HEADER_BYTES + 4:
        # No blank line: a MIME entity needs at least the empty line (RFC 2045).
        raise MalformedError("no blank line ends the MIME header section")
    if end < 0 or end > MAX_HEADER_BYTES:
        raise MalformedError(f"MIME header section is larger than {MAX_HEADER_BYTES} bytes")
    return _parse_headers(text[:end]), view[end + sep_len :]


def _header_end(data: bytes, limit: int | None = None) -> tuple[int, int]:
    """(end of the header section, length of the blank line after it) within the first
    `limit` bytes of `data`, or (-1, 0)."""
    if data.startswith(CRLF):
        return 0, 2
    if data.startswith(b"\n"):
        return 0, 1
    limit = len(data) if limit is None else limit
    crlf = data.find(b"\r\n\r\n", 0, limit)
    lf = data.find(b"\n\n", 0, crlf if crlf >= 0 else limit)
    if lf >= 0:
        return lf + 1, 1
    if crlf >= 0:
        return crlf + 2, 2  # keep the CRLF that ends the last header line in `head`
    return -1, 0


def _parse_headers(head: bytes) -> tuple[tuple[str, str], ...]:
    if len(head) <= 1024:
        return _parse_short_headers(head)  # the same few header sections recur
    return _parse_header_text(head)


@functools.lru_cache(maxsize=256)
def _parse_short_headers(head: bytes) -> tuple[tuple[str, str], ...]:
    return _parse_header_text(head)


def _parse_header_text(head: bytes) -> tuple[tuple[str, str], ...]:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError("MIME header section is not UTF-8 text") from None
    headers: list[tuple[str, str]] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line[0] in " \t":
            if not headers:
                raise MalformedError("MIME header section starts with a continuation line")
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise MalformedError(f"malformed MIME header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return tuple(headers)


# -- multipart (RFC 2046 5.1) ----------------------------------------------------------


def split_multipart(entity: MimeEntity) -> list[bytes]:
    """The raw bytes of each body part of a multipart entity, exactly as they stand
    between the delimiters (the CRLF before a delimiter belongs to the delimiter)."""
    boundary = entity.content_type.param("boundary")
    if not boundary:
        raise MalformedError("multipart entity without a boundary parameter")
    if len(boundary) > 70:
        raise MalformedError("multipart boundary longer than 70 characters")
    delim = b"--" + boundary.encode("utf-8", "replace")
    body = entity.body
    # The first delimiter may open the body; later ones are preceded by CRLF.
    if body.startswith(delim):
        pos = 0
    else:
        pos = body.find(CRLF + delim)
        if pos < 0:
            raise MalformedError("multipart body has no opening boundary")
        pos += 2
    parts: list[bytes] = []
    while True:
        after = pos + len(delim)
        if body[after : after + 2] == b"--":
            break  # close-delimiter
        line_end = body.find(CRLF, after)
        if line_end < 0:
            raise MalformedError("multipart boundary line is not terminated")
        if body[after:line_end].strip(b" \t"):
            raise MalformedError("text after a multipart boundary")
        start = line_end + 2
        nxt = body.find(CRLF + delim, start - 2)
        if nxt < 0:
            raise MalformedError("multipart body has no closing boundary")
        parts.append(body[start:nxt] if nxt >= start else b"")
        pos = nxt + 2
        if len(parts) > 64:
            raise MalformedError("multipart entity with more than 64 parts")
    if not parts:
        raise MalformedError("multipart entity with no parts")
    return parts


def new_boundary(parts: Sequence[bytes], random_bytes=os.urandom) -> str:
    """A boundary that occurs in none of the parts (binary parts may contain anything)."""
    while True:
        boundary = "smime-" + random_bytes(12).hex()
        token = boundary.encode()
        if not any(token in part for part in parts):
            return boundary


def build_multipart(
    subtype: str,
    parts: Sequence[bytes],
    params: Sequence[tuple[str, str]] = (),
    random_bytes=os.urandom,
) -> MimeEntity:
    boundary = new_boundary(parts, random_bytes)
    ctype = ContentType(f"multipart/{subtype}", (*params, ("boundary", boundary)))
    delim = b"--" + boundary.encode()
    body = b"".join(delim + CRLF + part + CRLF for part in parts) + delim + b"--" + CRLF
    return MimeEntity.build(ctype, body)


def canonical_text(data: bytes) -> bytes:
    """Text in MIME canonical form: every line break is CRLF (RFC 2049 4)."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", CRLF)
