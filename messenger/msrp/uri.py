"""MSRP and MSRPS URIs (RFC 4975 section 9 grammar, section 6.1 comparison).

This module is the one place in the product that parses and compares MSRP URIs::

    msrp://bobpc.example.org:8888/9di4eae923wzd;tcp
    msrps://[2001:db8::1]:2855/s3ss10n;tcp;extra=1

* `MsrpUri.parse` reads one URI; ``str(uri)`` writes it back exactly as parsed (the parts
  are kept as written).
* ``==`` and ``hash`` follow RFC 4975 section 6.1: scheme, host and transport compare
  case-insensitively (percent-encoded unreserved characters in the host are decoded first,
  IP addresses compare as addresses), the session-id compares case-sensitively, userinfo
  and other URI parameters are ignored. A port given in one URI and not in the other never
  matches: the RFC does not let an explicit 2855 equal an absent port. `effective_port`
  gives the port to connect to.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .errors import MsrpParseError

__all__ = ["DEFAULT_PORT", "MsrpUri", "parse_path"]

DEFAULT_PORT = 2855
"""The port IANA registered for MSRP (RFC 4975 section 15.2)."""

_SCHEME = re.compile(r"(?P<scheme>[Mm][Ss][Rr][Pp][Ss]?)://")
# RFC 3986 userinfo, except ";": it would be read as the start of the URI parameters.
_USERINFO = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,=:]|%[0-9A-Fa-f]{2})*")
_REG_NAME = re.compile(r"(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})+")
_IP_LITERAL = re.compile(r"\[(?P<addr>[0-9A-Fa-f:.]+)\]")
_PORT = re.compile(r"[0-9]{1,5}")
_SESSION_ID = re.compile(r"[A-Za-z0-9\-._~+=/]+")
_TRANSPORT = re.compile(r"[A-Za-z0-9]+")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_PARAM = re.compile(rf"(?P<name>{_TOKEN})(?:=(?P<value>{_TOKEN}))?")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _bad(text: str, why: str) -> MsrpParseError:
    return MsrpParseError(f"bad MSRP URI {text[:120]!r}: {why}", status_code=400)


def _decode_unreserved(host: str) -> str:
    def sub(m: re.Match[str]) -> str:
        ch = chr(int(m[1], 16))
        return ch if ch in _UNRESERVED else m[0].upper()

    return _PCT.sub(sub, host)


@dataclass(frozen=True, eq=False)
class MsrpUri:
    """One MSRP URI. Build with `parse` or directly; fields hold the text as written.

    ``host`` keeps the brackets of an IPv6 reference (``"[2001:db8::1]"``).
    """

    scheme: str
    host: str
    port: int | None
    session_id: str | None
    transport: str = "tcp"
    userinfo: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        # One grammar: whatever is built directly must survive a parse of its own text.
        text = self._text()
        parsed = MsrpUri.parse(text)
        if parsed._fields() != self._fields():
            raise _bad(text, "fields do not serialize to this URI")

    @classmethod
    def parse(cls, text: str) -> MsrpUri:
        """Parse an MSRP or MSRPS URI. Raises `MsrpParseError` (status 400)."""
        if not isinstance(text, str) or not text.isascii():
            raise _bad(str(text), "an MSRP URI is ASCII text")
        m = _SCHEME.match(text)
        if m is None:
            raise _bad(text, "the scheme must be msrp:// or msrps://")
        rest = text[m.end() :]
        hier, semi, tail = rest.partition(";")
        if not semi:
            raise _bad(text, "the ;transport parameter is missing")
        authority, slash, session_id = hier.partition("/")
        if slash and not _SESSION_ID.fullmatch(session_id):
            raise _bad(text, "bad session-id")
        userinfo, at, hostport = authority.rpartition("@")
        if at and not _USERINFO.fullmatch(userinfo):
            raise _bad(text, "bad userinfo")
        host, port = cls._split_hostport(text, hostport)
        transport, *raw_params = tail.split(";")
        if not _TRANSPORT.fullmatch(transport):
            raise _bad(text, "bad transport")
        params = []
        for raw in raw_params:
            p = _PARAM.fullmatch(raw)
            if p is None:
                raise _bad(text, "bad URI parameter")
            params.append((p["name"], p["value"]))
        return cls._make(
            m["scheme"],
            host,
            port,
            session_id if slash else None,
            transport,
            userinfo if at else None,
            tuple(params),
        )

    @classmethod
    def _make(cls, *fields: object) -> MsrpUri:
        uri = object.__new__(cls)  # parsed fields are valid: skip the __post_init__ check
        for name, value in zip(
            ("scheme", "host", "port", "session_id", "transport", "userinfo", "params"),
            fields,
            strict=True,
        ):
            object.__setattr__(uri, name, value)
        return uri

    @staticmethod
    def _split_hostport(text: str, hostport: str) -> tuple[str, int | None]:
        if hostport.startswith("["):
            close = hostport.find("]")
            host, after = hostport[: close + 1], hostport[close + 1 :]
            lit = _IP_LITERAL.fullmatch(host)
            if close < 0 or lit is None:
                raise _bad(text, "bad IPv6 reference")
            try:
                ipaddress.IPv6Address(lit["addr"])
            except ValueError:
                raise _bad(text, "bad IPv6 address") from None
        else:
            host, colon, port_text = hostport.partition(":")
            after = colon + port_text
            if not _REG_NAME.fullmatch(host):
                raise _bad(text, "bad host")
        if not after:
            return host, None
        if not after.startswith(":") or not _PORT.fullmatch(after[1:]):
            raise _bad(text, "bad port")
        port = int(after[1:])
        if port > 65535:
            raise _bad(text, "port out of range")
        return host, port

    def _text(self) -> str:
        parts = [self.scheme, "://"]
        if self.userinfo is not None:
            parts += [self.userinfo, "@"]
        parts.append(self.host)
        if self.port is not None:
            parts += [":", str(self.port)]
        if self.session_id is not None:
            parts += ["/", self.session_id]
        parts += [";", self.transport]
        for name, value in self.params:
            parts += [";", name] + (["=", value] if value is not None else [])
        return "".join(parts)

    def __str__(self) -> str:
        return self._text()

    def _fields(self) -> tuple[object, ...]:
        return (
            self.scheme,
            self.host,
            self.port,
            self.session_id,
            self.transport,
            self.userinfo,
            self.params,
        )

    @property
    def secure(self) -> bool:
        """True for ``msrps`` (TLS)."""
        return self.scheme.lower() == "msrps"

    @property
    def effective_port(self) -> int:
        """The port to connect to: the explicit port, else 2855."""
        return DEFAULT_PORT if self.port is None else self.port

    def _key(self) -> tuple[object, ...]:
        host = self.host
        if host.startswith("["):
            host = "[" + ipaddress.IPv6Address(host[1:-1]).compressed + "]"
        else:
            host = _decode_unreserved(host).lower()
        return (self.scheme.lower(), host, self.port, self.session_id, self.transport.lower())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MsrpUri):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def parse_path(value: str) -> tuple[MsrpUri, ...]:
    """Parse a To-Path or From-Path value: one or more URIs separated by single spaces."""
    if not value or any(not part for part in value.split(" ")):
        raise MsrpParseError(f"bad MSRP path {value[:120]!r}", status_code=400)
    return tuple(MsrpUri.parse(part) for part in value.split(" "))
