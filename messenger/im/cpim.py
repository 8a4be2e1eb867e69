"""The ``message/cpim`` wrapper (RFC 3862): build, serialize and parse CPIM messages.

This module is the one CPIM formatter of the product. The bytes it emits are exact, because
RFC 8591 section 9 protects the whole CPIM message with S/MIME: every header line is
``Name: value`` with exactly one space after the colon, every line ends in CRLF, and headers
are never reordered (``parse_cpim(data).to_bytes() == data`` for every message it accepts).

Wire layout (RFC 3862 section 2)::

    From: <sip:alice@example.com>               message headers (CPIM, UTF-8)
    To: <sip:bob@example.org>
    DateTime: 2019-01-26T06:13:54.000Z
    NS: imdn <urn:ietf:params:imdn>
    imdn.Message-ID: Kd8Lx2pQ7vR1sT4w
    imdn.Disposition-Notification: positive-delivery
                                                blank line
    Content-Type: text/plain;charset=utf-8      encapsulated MIME headers
                                                blank line
    Hello                                       body (bytes, untouched)

Representation:

* ``CpimMessage.headers`` holds the message headers as ``(name, value)`` pairs in wire order.
  ``value`` is the text after the single space following the colon, kept verbatim. Header
  parameters (RFC 3862 section 3.3.2, such as ``Subject:;lang=fr beau temps``) stay attached
  to the name: ``("Subject;lang=fr", "beau temps")``; a CPIM name never contains ``;``.
* Namespaces (RFC 3862 section 3.3.3): ``NS: imdn <urn:ietf:params:imdn>`` binds the prefix
  ``imdn``; ``imdn.Message-ID`` is then the Message-ID header of that namespace. Lookups go
  through the namespace URI, so a sender that binds another prefix to the IMDN namespace is
  understood. Headers with an unknown prefix are kept and re-emitted, never interpreted.
* DateTime is emitted in one exact format, UTC with milliseconds and ``Z``:
  ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (sub-millisecond digits are truncated). On receive any
  RFC 3339 date-time is accepted (``Z`` or a numeric offset, any number of fraction digits).

Receive-side leniency, limited to what cannot change meaning or break the exact round trip:
header names are matched case-insensitively, extra spaces after ``": "`` stay part of the
value, and a DateTime may use a lowercase ``t``/``z`` or an offset without a colon.
What is rejected: bare CR or LF, a missing space after the colon, folded header lines,
control characters other than HTAB, invalid UTF-8 in headers, a missing blank line, and a
message without exactly one From, at least one To and exactly one DateTime.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from random import Random

from .errors import CpimError

__all__ = [
    "IMDN_NAMESPACE",
    "CpimMessage",
    "format_datetime",
    "new_message_id",
    "parse_cpim",
    "parse_datetime",
    "uri_of",
]

IMDN_NAMESPACE = "urn:ietf:params:imdn"
"""The CPIM header namespace of RFC 5438 (bound with ``NS: imdn <urn:ietf:params:imdn>``)."""

_CRLF = b"\r\n"

# RFC 3862 section 3.3.2: NAMECHAR is any character except CTLs, SP and separators.
_NAMECHAR = r"[!#$%&'*+\-^_`|~A-Za-z0-9]"
_NAME = rf"(?:{_NAMECHAR}+\.)?{_NAMECHAR}+"
_PARAM = rf'{_NAMECHAR}+=(?:(?:{_NAMECHAR}|\.)+|"(?:[^"\\\x00-\x1f\x7f]|\\[\x20-\x7e])*")'
# A header value: any UTF-8 text without control characters (HTAB is tolerated).
_VALUE = r"[^\x00-\x08\x0a-\x1f\x7f]*"
_HEADER_LINE = re.compile(rf"(?P<name>{_NAME}):(?P<params>(?:;{_PARAM})*) (?P<value>{_VALUE})")
# The encapsulated MIME headers (RFC 2045 / RFC 5322 field names), unfolded.
_MIME_LINE = re.compile(r"(?P<name>[!-9;-~]+): (?P<value>" + _VALUE + ")")

_DATETIME = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt]"
    r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})(?:\.(?P<frac>[0-9]{1,9}))?"
    r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>[0-9]{2}):?(?P<om>[0-9]{2}))"
)
_URI = r'[A-Za-z][A-Za-z0-9+.\-]*:[^\s"<>]+'  # scheme ":" then no space, quote or bracket
_ANGLE_URI = re.compile(rf'(?:"(?:[^"\\]|\\.)*" *|[^"<>]*)<(?P<uri>{_URI})>')
_BARE_URI = re.compile(_URI)
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ID_LENGTH = 16  # 62**16 is about 2**95: well above the 64 bits asked for


def new_message_id(rng: Random | None = None) -> str:
    """Return a fresh ``imdn.Message-ID`` value: 16 URL-safe alphanumerics (about 95 bits).

    ``rng`` pins the randomness in tests; by default the ``secrets`` module is used.
    """
    choice = secrets.choice if rng is None else rng.choice
    return "".join(choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def format_datetime(when: datetime) -> str:
    """Format ``when`` the way this product emits CPIM DateTime and IMDN ``<datetime>``.

    The format is ``YYYY-MM-DDTHH:MM:SS.mmmZ``: UTC, exactly three fraction digits
    (truncated, not rounded). ``when`` must be timezone-aware.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise CpimError("a CPIM DateTime needs a timezone-aware datetime")
    try:
        u = when.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        raise CpimError(f"{when.isoformat()} has no UTC equivalent") from None
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond // 1000:03d}Z"
    )


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 date-time (CPIM DateTime, IMDN ``<datetime>``) to an aware datetime.

    Accepts ``Z`` or a numeric offset (``-05:00``, also ``-0500``) and any number of fraction
    digits up to nine (kept to the microsecond). Raises `CpimError` otherwise.
    """
    m = _DATETIME.fullmatch(text)
    if m is None:
        raise CpimError(f"not an RFC 3339 date-time: {text[:64]!r}")
    frac = (m["frac"] or "").ljust(6, "0")[:6]
    if m["z"]:
        tz = UTC
    else:
        hours, minutes = int(m["oh"]), int(m["om"])
        if hours > 23 or minutes > 59:
            raise CpimError(f"bad UTC offset in date-time: {text[:64]!r}")
        delta = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-delta if m["sign"] == "-" else delta)
    try:
        return datetime(
            int(m["y"]),
            int(m["mo"]),
            int(m["d"]),
            int(m["h"]),
            int(m["mi"]),
            int(m["s"]),
            int(frac),
            tzinfo=tz,
        )
    except ValueError as exc:  # month 13, second 60 (leap seconds are not representable)...
        raise CpimError(f"impossible date-time {text[:64]!r}: {exc}") from None


def uri_of(value: str) -> str:
    """Return the bare URI of a CPIM From/To/cc value.

    ``<sip:alice@example.com>``, ``Alice <sip:alice@example.com>`` and
    ``"Alice A." <sip:alice@example.com>`` all give ``sip:alice@example.com``; a value
    without angle brackets is taken as a bare URI. The URI needs a scheme and may not hold
    spaces, quotes or angle brackets. Raises `CpimError` for anything else.
    """
    text = value.strip()
    m = _ANGLE_URI.fullmatch(text)
    if m is not None:
        return m["uri"]
    if _BARE_URI.fullmatch(text):
        return text
    raise CpimError(f"not a CPIM address: {value[:80]!r}")


def _address(value: str) -> str:
    """A From/To value as emitted: a bare URI is wrapped in ``<>``, a name-addr is kept."""
    text = value.strip()
    if "<" in text:
        uri_of(text)  # validates
        return text
    return f"<{uri_of(text)}>"


def _split_name(name: str) -> tuple[str, str]:
    """Split a stored header name into ``(Header-name, ";params")``."""
    base, sep, params = name.partition(";")
    return base, sep + params


def _header_line(name: str, value: str) -> str:
    base, params = _split_name(name)
    return f"{base}:{params} {value}"


def _decode_lines(block: bytes, what: str) -> list[str]:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CpimError(f"{what} are not valid UTF-8 (byte {exc.start})") from None
    lines = text.split("\r\n")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise CpimError(f"bare CR or LF in the {what}; CPIM lines end in CRLF")
    return lines


def _parse_header_lines(block: bytes) -> tuple[tuple[str, str], ...]:
    headers = []
    for line in _decode_lines(block, "CPIM message headers"):
        m = _HEADER_LINE.fullmatch(line)
        if m is None:
            raise CpimError(f"malformed CPIM header line: {line[:80]!r}")
        headers.append((m["name"] + m["params"], m["value"]))
    return tuple(headers)


def _parse_mime_lines(block: bytes) -> tuple[tuple[str, str], ...]:
    headers = []
    for line in _decode_lines(block, "encapsulated MIME headers"):
        m = _MIME_LINE.fullmatch(line)
        if m is None:
            raise CpimError(f"malformed MIME header line in CPIM: {line[:80]!r}")
        headers.append((m["name"], m["value"]))
    return tuple(headers)


def _namespaces(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Prefix (casefolded) to namespace URI, from the NS headers of a message."""
    bound: dict[str, str] = {}
    for name, value in headers:
        if _split_name(name)[0].casefold() != "ns":
            continue
        m = re.fullmatch(rf"(?:(?P<prefix>{_NAMECHAR}+) +)?<(?P<uri>[^<>\s]+)>", value.strip())
        if m is None:
            raise CpimError(f"malformed NS header: {value[:80]!r}")
        if m["prefix"] is None:  # a default-namespace declaration: kept, not interpreted
            continue
        prefix, uri = m["prefix"].casefold(), m["uri"]
        if prefix in bound and bound[prefix].casefold() != uri.casefold():
            raise CpimError(f"NS prefix {m['prefix']!r} is bound to two namespaces")
        bound[prefix] = uri
    return bound


@dataclass(frozen=True)
class CpimMessage:
    """One ``message/cpim`` message (RFC 3862).

    ``from_``, ``to`` and ``datetime`` repeat the From, To and DateTime headers for
    convenience; construction checks that they agree with ``headers``, which alone decide
    the bytes (`to_bytes`). Build messages with `CpimMessage.build` or `parse_cpim`.
    """

    from_: str
    to: tuple[str, ...]
    datetime: datetime
    headers: tuple[tuple[str, str], ...]
    content_headers: tuple[tuple[str, str], ...]
    body: bytes

    def __post_init__(self) -> None:
        for name, value in self.headers:
            if not isinstance(name, str) or not isinstance(value, str):
                raise CpimError("CPIM headers are (str, str) pairs")
            if _HEADER_LINE.fullmatch(_header_line(name, value)) is None:
                raise CpimError(f"not a valid CPIM header: {name[:40]!r}: {value[:40]!r}")
        for name, value in self.content_headers:
            if not isinstance(name, str) or not isinstance(value, str):
                raise CpimError("MIME headers are (str, str) pairs")
            if _MIME_LINE.fullmatch(f"{name}: {value}") is None:
                raise CpimError(f"not a valid MIME header: {name[:40]!r}: {value[:40]!r}")
        if not isinstance(self.body, bytes):
            raise CpimError("the CPIM body is bytes")
        from_, to, when = _core_headers(self.headers)
        if (from_, to, when) != (self.from_, self.to, self.datetime):
            raise CpimError("from_, to and datetime disagree with the From, To, DateTime headers")
        self._unique_imdn_headers()

    # -- building and serializing -------------------------------------------------------

    @classmethod
    def build(
        cls,
        from_uri: str,
        to_uris: Sequence[str],
        body: bytes,
        content_type: str,
        *,
        when: datetime,
        message_id: str | None,
        disposition: tuple[str, ...] = ("positive-delivery",),
        extra_headers: Iterable[tuple[str, str]] = (),
        extra_content_headers: Iterable[tuple[str, str]] = (),
    ) -> CpimMessage:
        """Build a CPIM message with the header order this product always emits.

        Order: From, To (one per recipient), DateTime, then, when ``message_id`` is given,
        ``NS: imdn <urn:ietf:params:imdn>``, ``imdn.Message-ID`` and (unless ``disposition``
        is empty) ``imdn.Disposition-Notification``, then ``extra_headers`` as given.
        The encapsulated MIME headers are Content-Type then ``extra_content_headers``.

        ``from_uri`` and each of ``to_uris`` are bare URIs (wrapped in ``<>``) or CPIM
        name-addrs kept as given (``"Alice" <sip:alice@example.com>``). ``message_id=None``
        leaves out the IMDN headers; asking for a disposition without a message id raises
        `CpimError` (RFC 5438 section 6.3 needs the id to correlate the notification).
        """
        if isinstance(to_uris, str):
            raise CpimError("to_uris is a sequence of URIs, not one string")
        if not to_uris:
            raise CpimError("a CPIM message needs at least one To")
        headers: list[tuple[str, str]] = [("From", _address(from_uri))]
        headers += [("To", _address(uri)) for uri in to_uris]
        headers.append(("DateTime", format_datetime(when)))
        if message_id is not None:
            if not re.fullmatch(r"[!-~]+", message_id):
                raise CpimError(f"imdn.Message-ID must be a token: {message_id[:40]!r}")
            headers.append(("NS", f"imdn <{IMDN_NAMESPACE}>"))
            headers.append(("imdn.Message-ID", message_id))
            if disposition:
                headers.append(("imdn.Disposition-Notification", ", ".join(disposition)))
        elif disposition:
            raise CpimError("imdn.Disposition-Notification needs an imdn.Message-ID")
        headers += list(extra_headers)
        content_headers = (("Content-Type", content_type), *extra_content_headers)
        return cls._from_parts(tuple(headers), tuple(content_headers), bytes(body))

    @classmethod
    def _from_parts(
        cls,
        headers: tuple[tuple[str, str], ...],
        content_headers: tuple[tuple[str, str], ...],
        body: bytes,
    ) -> CpimMessage:
        from_, to, when = _core_headers(headers)
        return cls(from_, to, when, headers, content_headers, body)

    def to_bytes(self) -> bytes:
        """Serialize exactly: headers, blank line, MIME headers, blank line, body."""
        head = "".join(_header_line(n, v) + "\r\n" for n, v in self.headers)
        mime = "".join(f"{n}: {v}\r\n" for n, v in self.content_headers)
        return (head + "\r\n" + mime + "\r\n").encode("utf-8") + self.body

    # -- header access ------------------------------------------------------------------

    def get_all(self, name: str) -> tuple[str, ...]:
        """Values of the message headers called ``name`` (case-insensitive, parameters ignored).

        ``name`` is matched literally, prefix included (``"imdn.Message-ID"``); to look a
        header up by namespace whatever prefix the sender chose, use `get_ns`.
        """
        key = name.casefold()
        return tuple(v for n, v in self.headers if _split_name(n)[0].casefold() == key)

    def get(self, name: str) -> str | None:
        """The first value of the message header ``name``, or None (see `get_all`)."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_ns(self, namespace: str, name: str) -> tuple[str, ...]:
        """Values of header ``name`` in ``namespace`` (a URI bound with NS), in wire order."""
        return _ns_values(self.headers, namespace.casefold(), name.casefold())

    @property
    def message_id(self) -> str | None:
        """The ``imdn.Message-ID`` value (RFC 5438 section 6.3), or None."""
        values = self.get_ns(IMDN_NAMESPACE, "Message-ID")
        return values[0].strip() if values else None

    @property
    def disposition_notification(self) -> tuple[str, ...]:
        """The requested notifications of ``imdn.Disposition-Notification``, lowercased.

        For example ``("positive-delivery", "display")``; empty when none is asked for.
        """
        values = self.get_ns(IMDN_NAMESPACE, "Disposition-Notification")
        if not values:
            return ()
        return tuple(t.strip().lower() for t in values[0].split(",") if t.strip())

    @property
    def from_uri(self) -> str:
        """The bare URI of From."""
        return uri_of(self.from_)

    @property
    def to_uris(self) -> tuple[str, ...]:
        """The bare URIs of every To, in order."""
        return tuple(uri_of(t) for t in self.to)

    @property
    def content_type(self) -> str | None:
        """The Content-Type of the encapsulated MIME object, or None."""
        for name, value in self.content_headers:
            if name.casefold() == "content-type":
                return value
        return None

    def _unique_imdn_headers(self) -> None:
        for local in ("Message-ID", "Disposition-Notification"):
            if len(self.get_ns(IMDN_NAMESPACE, local)) > 1:
                raise CpimError(f"more than one imdn.{local} header")


def _ns_values(headers: Sequence[tuple[str, str]], namespace: str, key: str) -> tuple[str, ...]:
    """`CpimMessage.get_ns` (``namespace`` and ``key`` casefolded), remembered for the few
    messages at hand: opening one asks for its imdn headers several times."""
    try:
        return _ns_values_remembered(headers, namespace, key)  # type: ignore[arg-type]
    except TypeError:  # headers given as lists: nothing to remember them by
        return _ns_values_of(headers, namespace, key)


def _ns_values_of(headers: Sequence[tuple[str, str]], namespace: str, key: str) -> tuple[str, ...]:
    prefixes = {p for p, uri in _namespaces(headers).items() if uri.casefold() == namespace}
    found = []
    for full, value in headers:
        prefix, dot, local = _split_name(full)[0].rpartition(".")
        if dot and prefix.casefold() in prefixes and local.casefold() == key:
            found.append(value)
    return tuple(found)


_ns_values_remembered = functools.lru_cache(maxsize=64)(_ns_values_of)


def _core_headers(headers: Sequence[tuple[str, str]]) -> tuple[str, tuple[str, ...], datetime]:
    """From, To and DateTime of a header list, checked for count and syntax."""
    froms: list[str] = []
    tos: list[str] = []
    dates: list[str] = []
    for name, value in headers:
        key = _split_name(name)[0].casefold()
        if key == "from":
            froms.append(value)
        elif key == "to":
            tos.append(value)
        elif key == "datetime":
            dates.append(value)
    if len(froms) != 1:
        raise CpimError(f"a CPIM message needs exactly one From header, found {len(froms)}")
    if not tos:
        raise CpimError("a CPIM message needs at least one To header")
    if len(dates) != 1:
        raise CpimError(f"a CPIM message needs exactly one DateTime header, found {len(dates)}")
    for address in (*froms, *tos):
        uri_of(address)
    return froms[0], tuple(tos), parse_datetime(dates[0].strip())


def parse_cpim(data: bytes) -> CpimMessage:
    """Parse a ``message/cpim`` body. Raises `CpimError` (and nothing else) on bad input.

    ``parse_cpim(data).to_bytes() == data`` holds for every accepted ``data``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CpimError("parse_cpim takes bytes")
    data = bytes(data)
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise CpimError("no blank line after the CPIM message headers")
    headers = _parse_header_lines(data[:end])
    rest = data[end + 4 :]
    if rest.startswith(_CRLF):  # an encapsulated object without MIME headers
        content_headers: tuple[tuple[str, str], ...] = ()
        body = rest[2:]
    else:
        mime_end = rest.find(b"\r\n\r\n")
        if mime_end < 0:
            raise CpimError("no blank line after the encapsulated MIME headers")
        content_headers = _parse_mime_lines(rest[:mime_end])
        body = rest[mime_end + 4 :]
    return CpimMessage._from_parts(headers, content_headers, body)
