"""SIP header fields (RFC 3261 sections 7.3 and 20): the header multidict, compact forms,
comma splitting, generic parameters, and the Via and CSeq values.

`Headers` keeps the order and the spelling of names for serialization and looks names up
case-insensitively (a compact form such as ``i`` finds ``Call-ID`` too).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .errors import SipParseError, SipUriError
from .uri import parse_hostport, unbracket

__all__ = [
    "COMPACT_FORMS",
    "MULTI_VALUE_HEADERS",
    "CSeq",
    "Headers",
    "Via",
    "canonical_name",
    "find_param",
    "format_params",
    "is_token",
    "parse_params",
    "quote",
    "replace_param",
    "split_header_values",
    "unquote",
]

#: Compact header forms (RFC 3261 section 7.3.3 and the IANA SIP header registry).
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

#: Headers whose grammar is a comma-separated list (``Name: a, b`` equals two lines).
#: Never WWW-Authenticate, Authorization and the like (commas inside one value), nor Date.
MULTI_VALUE_HEADERS: frozenset[str] = frozenset(
    name.lower()
    for name in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "Path",
        "Proxy-Require",
        "Record-Route",
        "Reject-Contact",
        "Request-Disposition",
        "Require",
        "Route",
        "Security-Client",
        "Security-Server",
        "Security-Verify",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    )
)


#: RFC 3261 ``token`` (method names, header names, parameter names), as a pattern.
_TOKEN_RE = r"[A-Za-z0-9.!%*_+`'~-]+"
_TOKEN = re.compile(_TOKEN_RE)


def is_token(text: str) -> bool:
    """Whether ``text`` is an RFC 3261 ``token``."""
    return _TOKEN.fullmatch(text) is not None


@functools.lru_cache(maxsize=4096)  # bounded: names come from the network
def _key(name: str) -> str:
    """The case-insensitive lookup key of a header name (compact forms expanded)."""
    lname = name.lower()
    compact = COMPACT_FORMS.get(lname)
    return compact.lower() if compact is not None else lname


def canonical_name(name: str) -> str:
    """The long form of a (possibly compact) header name: ``i`` -> ``Call-ID``."""
    return COMPACT_FORMS.get(name.lower(), name)


def _check_field(name: str, value: str) -> None:
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError("header names and values are str")
    if not is_token(name):
        raise ValueError(f"header name {name!r} is not a token")
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError(f"header {name} value contains CR, LF or NUL")


class Headers:
    """An ordered multidict of SIP header fields.

    Names keep their spelling for serialization and are looked up case-insensitively;
    compact and long forms are the same key. Values are validated against CR/LF injection.
    Lookups go through an index (lookup key -> values in order) built on first use and
    dropped by every change.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        self._index: dict[str, tuple[str, ...]] | None = None
        if items is None:
            return
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self.add(name, value)

    @classmethod
    def _trusted(cls, items: list[tuple[str, str]]) -> Headers:
        """Headers over ``items`` whose names and values were already checked."""
        headers = cls.__new__(cls)
        headers._items = items
        headers._index = None
        return headers

    def _lookup(self) -> dict[str, tuple[str, ...]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                key = _key(name)
                found = index.get(key)
                index[key] = (value,) if found is None else (*found, value)
            self._index = index
        return index

    def add(self, name: str, value: str) -> None:
        """Append a header field."""
        _check_field(name, value)
        self._items.append((name, value))
        self._index = None

    def insert(self, index: int, name: str, value: str) -> None:
        """Insert a header field at ``index`` of the field list (0 prepends)."""
        _check_field(name, value)
        self._items.insert(index, (name, value))
        self._index = None

    def prepend(self, name: str, value: str) -> None:
        """Put a field before the first field of the same name (or at the end), as a proxy
        adds its Via."""
        key = _key(name)
        for i, (n, _) in enumerate(self._items):
            if _key(n) == key:
                self.insert(i, name, value)
                return
        self.add(name, value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        values = self._lookup().get(_key(name))
        return default if values is None else values[0]

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return list(self._lookup().get(_key(name), ()))

    def count(self, name: str) -> int:
        """How many fields named ``name`` there are."""
        return len(self._lookup().get(_key(name), ()))

    def set(self, name: str, value: str) -> None:
        """Replace the first field named ``name`` (dropping the others), or append it."""
        _check_field(name, value)
        key = _key(name)
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self._items:
            if _key(n) == key:
                if not placed:
                    out.append((n, value))
                    placed = True
                continue
            out.append((n, v))
        if not placed:
            out.append((name, value))
        self._items = out
        self._index = None

    def remove(self, name: str) -> int:
        """Remove every field named ``name``; return how many were removed."""
        key = _key(name)
        before = len(self._items)
        self._items = [(n, v) for n, v in self._items if _key(n) != key]
        self._index = None
        return before - len(self._items)

    def copy(self) -> Headers:
        """A shallow copy."""
        return Headers._trusted(list(self._items))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


# -- lexical helpers ---------------------------------------------------------------------


def split_header_values(value: str) -> list[str]:
    """Split a comma-separated header value outside quoted strings and ``<...>``.

    Empty items are dropped; an empty value gives ``[""]``.
    """
    if "," not in value:
        return [value.strip(" \t")]
    items: list[str] = []
    current: list[str] = []
    in_quotes = False
    in_angle = False
    i = 0
    while i < len(value):
        ch = value[i]
        if in_quotes:
            current.append(ch)
            if ch == "\\" and i + 1 < len(value):
                current.append(value[i + 1])
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
            current.append(ch)
        elif ch == "<":
            in_angle = True
            current.append(ch)
        elif ch == ">":
            in_angle = False
            current.append(ch)
        elif ch == "," and not in_angle:
            items.append("".join(current).strip(" \t"))
            current = []
        else:
            current.append(ch)
        i += 1
    items.append("".join(current).strip(" \t"))
    kept = [item for item in items if item]
    return kept or [""]


def unquote(value: str) -> str:
    """Remove the quotes and quoted-pair escapes of a quoted-string; other text as is."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.S)
    return value


def quote(value: str) -> str:
    """Make a quoted-string of ``value``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_semicolons(text: str) -> list[str]:
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_quotes:
            current.append(ch)
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
            current.append(ch)
        elif ch == ";":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if in_quotes:
        raise SipParseError(f"unterminated quoted string in parameters {text[:60]!r}")
    parts.append("".join(current))
    return parts


_GEN_VALUE = re.compile(r"^(?:[A-Za-z0-9.!%*_+`'~:\[\]-]+|\"(?:[^\"\\\r\n]|\\[^\r\n])*\")$")


def parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """Parse ``;name[=value]...`` generic parameters (RFC 3261 ``generic-param``).

    Values keep their quotes (use `unquote`); whitespace around ``;`` and ``=`` is allowed.
    """
    text = text.strip(" \t")
    if not text:
        return ()
    if not text.startswith(";"):
        raise SipParseError(f"parameters must start with ';': {text[:60]!r}")
    result: list[tuple[str, str | None]] = []
    for part in _split_semicolons(text)[1:]:
        name, has_value, value = part.partition("=")
        name = name.strip(" \t")
        if not is_token(name):
            raise SipParseError(f"bad parameter name {name!r}")
        if not has_value:
            result.append((name, None))
            continue
        value = value.strip(" \t")
        if not _GEN_VALUE.match(value):
            raise SipParseError(f"bad value {value[:60]!r} for parameter {name!r}")
        result.append((name, value))
    return tuple(result)


def format_params(params: Iterable[tuple[str, str | None]]) -> str:
    """Serialize parameters as ``;name=value`` (values written as stored)."""
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def find_param(params: tuple[tuple[str, str | None], ...], name: str) -> tuple[bool, str | None]:
    """``(present, raw value)`` of parameter ``name`` (case-insensitive)."""
    lname = name.lower()
    for n, v in params:
        if n.lower() == lname:
            return True, v
    return False, None


def replace_param(
    params: tuple[tuple[str, str | None], ...], name: str, value: str | None
) -> tuple[tuple[str, str | None], ...]:
    """``params`` with ``name`` set to ``value``: replaced in place, or appended."""
    lname = name.lower()
    out = [(n, v) for n, v in params if n.lower() != lname]
    for i, (n, _) in enumerate(params):
        if n.lower() == lname:
            out.insert(min(i, len(out)), (n, value))
            return tuple(out)
    return (*out, (name, value))


# -- Via ---------------------------------------------------------------------------------

_SENT_PROTOCOL = re.compile(
    rf"^({_TOKEN_RE})[ \t]*/[ \t]*({_TOKEN_RE})[ \t]*/[ \t]*({_TOKEN_RE})[ \t]+(.*)$", re.S
)

_PORT_SPACES = re.compile(r"[ \t]*:[ \t]*(\d+)[ \t]*$")

#: How many parsed values are remembered (see `_parse_via_remembered`).
_PARSED_LIMIT = 256


@dataclass(frozen=True)
class Via:
    """One Via header value (RFC 3261 section 20.42, RFC 3581 ``rport``).

    ``params`` keeps order and spelling; values are as written (quotes kept).
    """

    transport: str
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value; raise `SipParseError` when malformed."""
        if cls is Via:
            return _parse_via_remembered(text)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> Via:
        match = _SENT_PROTOCOL.match(text.strip(" \t"))
        if not match:
            raise SipParseError(f"malformed Via {text[:80]!r}")
        name, version, transport, rest = match.groups()
        sent_by, semi, params_text = rest.partition(";")
        sent_by = _PORT_SPACES.sub(r":\1", sent_by.strip(" \t"))
        try:
            host, port = parse_hostport(sent_by)
        except SipUriError as exc:
            raise SipParseError(f"bad Via sent-by {sent_by[:80]!r}: {exc}") from exc
        params = parse_params(semi + params_text)
        via = cls(transport.upper(), host, port, params, f"{name}/{version}")
        rport = via.param("rport")
        if rport is not None and not (rport.isascii() and rport.isdigit()):
            raise SipParseError(f"bad Via rport {rport!r}")
        return via

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` (case-insensitive), unquoted; None if absent
        or valueless."""
        _, value = find_param(self.params, name)
        return None if value is None else unquote(value)

    def has_param(self, name: str) -> bool:
        """Whether parameter ``name`` is present (with or without a value)."""
        return find_param(self.params, name)[0]

    def with_param(self, name: str, value: str | None) -> Via:
        """A copy with parameter ``name`` set (replaced in place, or appended)."""
        return Via(
            self.transport,
            self.host,
            self.port,
            replace_param(self.params, name, value),
            self.protocol,
        )

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter."""
        return self.param("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter."""
        return self.param("received")

    @property
    def rport(self) -> int | None:
        """The filled-in ``rport`` value (RFC 3581), None when absent or still empty."""
        value = self.param("rport")
        return None if value is None else int(value)

    @property
    def rport_requested(self) -> bool:
        """Whether the sender asked for ``rport`` (the parameter is present)."""
        return self.has_param("rport")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        """``(host in lower case, port or None)``: the sent-by used to match transactions."""
        return self.host.lower(), self.port

    def stamped(self, source_host: str, source_port: int) -> Via:
        """The Via a server keeps after receiving a request from ``source_host:port``.

        Adds ``received`` when the source differs from sent-by (RFC 3261 section 18.2.1) or
        when ``rport`` was requested, and fills an empty ``rport`` (RFC 3581 section 4).
        """
        via = self
        if self.rport_requested:
            via = via.with_param("rport", str(source_port))
        if self.rport_requested or self.host_address.lower() != source_host.lower():
            via = via.with_param("received", source_host)
        return via

    @property
    def host_address(self) -> str:
        """The sent-by host without IPv6 brackets."""
        return unbracket(self.host)


@functools.lru_cache(maxsize=_PARSED_LIMIT)
def _parse_via_remembered(text: str) -> Via:
    """`Via.parse`, remembered: a message's top Via is read by the parser, the transaction
    layer and the response (a `Via` is immutable, so one value serves every caller)."""
    return Via._parse(text)


# -- CSeq --------------------------------------------------------------------------------

_CSEQ = re.compile(rf"^[ \t]*(\d{{1,10}})[ \t]+({_TOKEN_RE})[ \t]*$")


@dataclass(frozen=True)
class CSeq:
    """A CSeq value (RFC 3261 section 20.16): sequence number below 2**31 and method."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse ``"1 MESSAGE"``; raise `SipParseError` when malformed."""
        match = _CSEQ.match(text)
        if not match:
            raise SipParseError(f"malformed CSeq {text[:80]!r}")
        seq = int(match.group(1))
        if seq >= 2**31:
            raise SipParseError(f"CSeq number {seq} is not below 2**31")
        return cls(seq, match.group(2))

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
