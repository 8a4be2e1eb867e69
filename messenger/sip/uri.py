"""SIP and SIPS URIs (RFC 3261 section 19.1): parsing, serialization and comparison.

This module is the one place in the product that compares SIP URIs.

* `SipUri.parse` reads a ``sip:`` / ``sips:`` URI, decoding %-escapes. IPv6 references are
  kept with their brackets in `SipUri.host` (``"[::1]"``), as they appear in the URI.
* ``==`` on `SipUri` is plain field equality (exact, transitive, hashable). The RFC 3261
  section 19.1.4 rule is `SipUri.matches` (and `uri_equal` for text); it is deliberately not
  ``__eq__`` because it is not transitive (parameters present on one side only are ignored).
* `uri_equal` and `parse_aor` accept either a URI or a name-addr
  (``"Alice" <sip:alice@example.com>;tag=1``): parameters after ``>`` are header parameters
  and never part of the URI. A string without ``<`` is read as a URI, so its ``;params`` are
  URI parameters (for a From/To header value in addr-spec form, use
  `messenger.sip.address.Address`, which applies the header rules).

Fields hold decoded text (``%61lice`` becomes ``alice``); `__str__` escapes again what the
grammar requires. One consequence: a reserved character that may also appear literally in a
component (``;`` in the user part, for instance) compares equal to its escaped form.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

from .errors import SipUriError

__all__ = [
    "TOKEN_CHARS",
    "SipUri",
    "SipUriError",
    "check_uri",
    "parse_aor",
    "parse_hostport",
    "split_name_addr",
    "unbracket",
    "uri_equal",
]

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UNRESERVED = frozenset(_ALNUM + "-_.!~*'()")
_USER_CHARS = _UNRESERVED | frozenset("&=+$,;?/")
_PASSWORD_CHARS = _UNRESERVED | frozenset("&=+$,")
_PARAM_CHARS = _UNRESERVED | frozenset("[]/:&+$")
_HEADER_CHARS = _UNRESERVED | frozenset("[]/?:+$")
_HEX = frozenset("0123456789abcdefABCDEF")

# Parameters that never match when present in only one URI (section 19.1.4).
_SIGNIFICANT_PARAMS = frozenset({"transport", "user", "ttl", "method", "maddr"})

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
_IPV4 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
#: RFC 3261 ``token`` characters (method names, header names, parameter names).
TOKEN_CHARS = frozenset(_ALNUM + "-.!%*_+`'~")
_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[!-~]+$")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _unescape(text: str, allowed: frozenset[str], what: str) -> str:
    """Decode %-escapes in ``text`` after checking every literal character is ``allowed``."""
    if "%" not in text:
        for ch in text:
            if ch not in allowed:
                raise SipUriError(f"character {ch!r} is not allowed in the {what}")
        return text
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not (pair[0] in _HEX and pair[1] in _HEX):
                raise SipUriError(f"bad %-escape {text[i : i + 3]!r} in the {what}")
            out.append(int(pair, 16))
            i += 3
            continue
        if ch not in allowed:
            raise SipUriError(f"character {ch!r} is not allowed in the {what}")
        out.append(ord(ch))
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipUriError(f"%-escapes in the {what} are not UTF-8") from exc


def _escape(text: str, allowed: frozenset[str]) -> str:
    """Escape every character of ``text`` that may not appear literally."""
    if all(ch in allowed for ch in text):
        return text
    parts: list[str] = []
    for ch in text:
        if ch in allowed:
            parts.append(ch)
        else:
            parts.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(parts)


def _check_host(host: str) -> None:
    """Raise `SipUriError` unless ``host`` is a hostname, IPv4 address or IPv6 reference."""
    if not host:
        raise SipUriError("the host is empty")
    if host.startswith("["):
        if not host.endswith("]"):
            raise SipUriError(f"unterminated IPv6 reference {host!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise SipUriError(f"bad IPv6 reference {host!r}") from exc
        return
    if _IPV4.match(host):
        if any(int(part) > 255 for part in host.split(".")):
            raise SipUriError(f"bad IPv4 address {host!r}")
        return
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise SipUriError(f"bad host name {host!r}")
    if not labels[-1][0].isalpha():
        raise SipUriError(f"bad host name {host!r}: the top label must start with a letter")


def unbracket(host: str) -> str:
    """A host without the brackets of an IPv6 reference (``[::1]`` -> ``::1``)."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def _host_key(host: str) -> str:
    """The comparison form of a host: lower case; IPv6 references in compressed form."""
    if host.startswith("[") and host.endswith("]"):
        try:
            return "[" + ipaddress.IPv6Address(host[1:-1]).compressed + "]"
        except ValueError:
            return host.lower()
    return host.lower()


def parse_hostport(text: str) -> tuple[str, int | None]:
    """Split and check ``host[:port]`` (IPv6 in brackets); raise `SipUriError` if bad."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipUriError(f"unterminated IPv6 reference in {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipUriError(f"unexpected {rest!r} after the IPv6 reference")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
    _check_host(host)
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise SipUriError(f"bad port {port_text!r}")
    port = int(port_text)
    if port > 65535:
        raise SipUriError(f"port {port} is out of range")
    return host, port


@dataclass(frozen=True)
class SipUri:
    """A parsed ``sip:`` or ``sips:`` URI (RFC 3261 section 19.1.1).

    ``user``, ``password``, parameter and header names and values are decoded text.
    ``host`` is as written (IPv6 with brackets). ``params`` and ``headers`` keep their order.
    ``==`` is exact field equality; use `matches` for the RFC 3261 section 19.1.4 rule.
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.scheme not in ("sip", "sips"):
            raise SipUriError(f"scheme must be 'sip' or 'sips', not {self.scheme!r}")
        if self.user == "":
            raise SipUriError("the user part is empty (use None for no user)")
        _check_host(self.host)
        if self.port is not None and not 0 <= self.port <= 65535:
            raise SipUriError(f"port {self.port} is out of range")

    # -- parsing -------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a SIP or SIPS URI; raise `SipUriError` when it is malformed."""
        if not isinstance(text, str):
            raise SipUriError(f"expected text, got {type(text).__name__}")
        text = text.strip(" \t\r\n")
        if not text.isascii():
            raise SipUriError("a URI must be ASCII (escape other characters)")
        if _SPACE_OR_CONTROL.search(text):
            raise SipUriError("a URI may not contain spaces or control characters")
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips"):
            raise SipUriError(f"not a SIP or SIPS URI: {text[:80]!r}")

        user: str | None = None
        password: str | None = None
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            if "@" in rest:
                raise SipUriError("more than one unescaped '@' in the URI")
            user_text, has_password, password_text = userinfo.partition(":")
            if not user_text:
                raise SipUriError("the user part before '@' is empty")
            user = _unescape(user_text, _USER_CHARS, "user part")
            if has_password:
                password = _unescape(password_text, _PASSWORD_CHARS, "password")

        rest, has_headers, headers_text = rest.partition("?")
        hostport, *param_texts = rest.split(";")
        host, port = parse_hostport(hostport)

        params: list[tuple[str, str | None]] = []
        seen: set[str] = set()
        for item in param_texts:
            name_text, has_value, value_text = item.partition("=")
            if not name_text:
                raise SipUriError("empty URI parameter name")
            name = _unescape(name_text, _PARAM_CHARS, "parameter name")
            value: str | None = None
            if has_value:
                if not value_text:
                    raise SipUriError(f"URI parameter {name!r} has '=' but no value")
                value = _unescape(value_text, _PARAM_CHARS, "parameter value")
            if name.lower() in seen:
                raise SipUriError(f"URI parameter {name!r} appears twice")
            seen.add(name.lower())
            params.append((name, value))

        headers: list[tuple[str, str]] = []
        if has_headers:
            for item in headers_text.split("&"):
                name_text, has_value, value_text = item.partition("=")
                if not name_text or not has_value:
                    raise SipUriError(f"URI header {item!r} is not name=value")
                headers.append(
                    (
                        _unescape(name_text, _HEADER_CHARS, "header name"),
                        _unescape(value_text, _HEADER_CHARS, "header value"),
                    )
                )

        return cls(scheme, user, password, host, port, tuple(params), tuple(headers))

    # -- serialization -------------------------------------------------------------------

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_CHARS))
            if self.password is not None:
                parts.append(":" + _escape(self.password, _PASSWORD_CHARS))
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        for name, value in self.params:
            parts.append(";" + _escape(name, _PARAM_CHARS))
            if value is not None:
                parts.append("=" + _escape(value, _PARAM_CHARS))
        if self.headers:
            parts.append("?")
            parts.append(
                "&".join(
                    _escape(name, _HEADER_CHARS) + "=" + _escape(value, _HEADER_CHARS)
                    for name, value in self.headers
                )
            )
        return "".join(parts)

    def aor(self) -> str:
        """The address-of-record form ``scheme:user@host[:port]``: no password, parameters
        or headers; host in lower case."""
        user = "" if self.user is None else _escape(self.user, _USER_CHARS) + "@"
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}:{user}{self.host.lower()}{port}"

    # -- accessors -----------------------------------------------------------------------

    def get_param(self, name: str, default: str | None = None) -> str | None:
        """The value of URI parameter ``name`` (case-insensitive); ``default`` if absent
        or if it has no value."""
        lname = name.lower()
        for pname, value in self.params:
            if pname.lower() == lname:
                return default if value is None else value
        return default

    def has_param(self, name: str) -> bool:
        """Whether URI parameter ``name`` (case-insensitive) is present."""
        lname = name.lower()
        return any(pname.lower() == lname for pname, _ in self.params)

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter in lower case, or None."""
        value = self.get_param("transport")
        return None if value is None else value.lower()

    @property
    def host_address(self) -> str:
        """The host without IPv6 brackets, as a socket API wants it."""
        return unbracket(self.host)

    @property
    def default_port(self) -> int:
        """The port to use: the explicit one, else 5061 for sips and 5060 for sip."""
        if self.port is not None:
            return self.port
        return 5061 if self.scheme == "sips" else 5060

    # -- comparison (RFC 3261 section 19.1.4) --------------------------------------------

    def matches(self, other: SipUri) -> bool:
        """RFC 3261 section 19.1.4 equivalence.

        Scheme must be equal; user and password compare case-sensitively after unescaping;
        host case-insensitively; a port present on one side only never matches. URI
        parameters present in both must match (case-insensitively); ``transport``,
        ``user``, ``ttl``, ``method`` and ``maddr`` present in only one never match; other
        parameters present in only one are ignored. URI headers must all be present in both
        (names case-insensitive, values exact, order ignored).
        """
        if not isinstance(other, SipUri):
            return False
        if (
            self.scheme != other.scheme
            or self.user != other.user
            or self.password != other.password
            or self.port != other.port
            or _host_key(self.host) != _host_key(other.host)
        ):
            return False
        mine = _param_map(self.params)
        theirs = _param_map(other.params)
        for name in mine.keys() | theirs.keys():
            if name in mine and name in theirs:
                if mine[name] != theirs[name]:
                    return False
            elif name in _SIGNIFICANT_PARAMS:
                return False
        return _header_key(self.headers) == _header_key(other.headers)


def _param_map(params: tuple[tuple[str, str | None], ...]) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for name, value in params:
        result.setdefault(name.lower(), None if value is None else value.lower())
    return result


def _header_key(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return sorted((name.lower(), value) for name, value in headers)


# -- name-addr ---------------------------------------------------------------------------


def _read_quoted_string(text: str, start: int) -> tuple[str, int]:
    """Read a quoted-string starting at ``text[start] == '"'``; return (content, end)."""
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= n or text[i + 1] in "\r\n":
                raise SipUriError("bad quoted-pair in the display name")
            out.append(text[i + 1])
            i += 2
            continue
        if ch in "\r\n":
            raise SipUriError("line break inside the display name")
        out.append(ch)
        i += 1
    raise SipUriError("unterminated quoted display name")


def split_name_addr(text: str) -> tuple[str | None, str, str]:
    """Split a name-addr or addr-spec (RFC 3261 section 20.10) into its pieces.

    Returns ``(display_name, uri_text, params_text)``: the display name unquoted (None when
    absent), the URI text (not validated here), and what follows the URI (``""`` or text
    starting with ``;``, the header parameters). In the addr-spec form (no ``<``), the URI
    ends at the first ``;``, as section 20.10 requires.
    """
    text = text.strip(" \t\r\n")
    display: str | None = None
    if text.startswith('"'):
        display, end = _read_quoted_string(text, 0)
        rest = text[end:].lstrip(" \t\r\n")
        if not rest.startswith("<"):
            raise SipUriError("a quoted display name must be followed by <URI>")
    else:
        lt = text.find("<")
        if lt < 0:
            uri_text, semi, params = text.partition(";")
            uri_text = uri_text.rstrip(" \t")
            if not uri_text or any(ch in ' \t\r\n<>",' for ch in uri_text):
                raise SipUriError(f"malformed addr-spec {text[:80]!r}")
            return None, uri_text, semi + params
        before = text[:lt]
        if any(ch in '">\r\n' or ord(ch) < 0x20 for ch in before):
            raise SipUriError(f"malformed display name {before[:80]!r}")
        words = before.split()
        display = " ".join(words) if words else None
        rest = text[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise SipUriError("'<' without a matching '>'")
    uri_text = rest[1:gt].strip(" \t")
    if not uri_text:
        raise SipUriError("empty URI between '<' and '>'")
    after = rest[gt + 1 :].strip(" \t\r\n")
    if after and not after.startswith(";"):
        raise SipUriError(f"unexpected {after[:40]!r} after '>'")
    return display, uri_text, after


@functools.lru_cache(maxsize=256)
def check_uri(text: str) -> None:
    """Check a URI found in a message: any absolute URI, and a well-formed one when its
    scheme is sip or sips. Raises `SipUriError`. Remembered when it passes: the same URIs
    recur in every message of a peer."""
    if not _ABSOLUTE_URI.match(text):
        raise SipUriError(f"malformed URI {text[:80]!r}")
    if text.split(":", 1)[0].lower() in ("sip", "sips"):
        SipUri.parse(text)


def _to_uri(value: str | SipUri) -> SipUri:
    if isinstance(value, SipUri):
        return value
    if not isinstance(value, str):
        raise SipUriError(f"expected text or SipUri, got {type(value).__name__}")
    if "<" in value:
        _, uri_text, _ = split_name_addr(value)
        return SipUri.parse(uri_text)
    return SipUri.parse(value)


def uri_equal(a: str | SipUri, b: str | SipUri) -> bool:
    """RFC 3261 section 19.1.4 comparison of two URIs or name-addrs; False (never an
    exception) when either side is malformed or not a SIP/SIPS URI."""
    try:
        return _to_uri(a).matches(_to_uri(b))
    except SipUriError:
        return False


@functools.lru_cache(maxsize=1024)
def parse_aor(text: str) -> str:
    """The canonical address-of-record (`SipUri.aor`) of a URI or name-addr; raises
    `SipUriError` when the input is malformed. Remembered: the same peers recur."""
    return _to_uri(text).aor()
