"""name-addr / addr-spec header values (From, To, Contact, Route, ...; RFC 3261 section 20.10).

Parameters after the URI are header parameters (``tag``, ``expires``, ``q``...). In the
addr-spec form (no ``<>``) every ``;param`` belongs to the header, never to the URI.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .errors import SipParseError, SipUriError
from .headers import (
    find_param,
    format_params,
    is_token,
    parse_params,
    quote,
    replace_param,
    unquote,
)
from .uri import SipUri, check_uri, split_name_addr

__all__ = ["Address"]


@dataclass(frozen=True)
class Address:
    """A parsed name-addr or addr-spec.

    ``uri`` is the URI text as written (any absolute URI; SIP and SIPS URIs are checked
    strictly when parsed), `sip_uri` parses it. ``params`` are the header parameters with
    values as written (quotes kept).
    """

    uri: str
    display_name: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse a From/To/Contact-style value; raise `SipParseError` when malformed."""
        if cls is Address:
            return _parse_remembered(text)
        return cls(*_parts(text))

    @classmethod
    def from_uri(
        cls,
        uri: SipUri | str,
        display_name: str | None = None,
        params: tuple[tuple[str, str | None], ...] = (),
    ) -> Address:
        """Build an address for an outgoing header."""
        return cls(str(uri), display_name, params)

    def __str__(self) -> str:
        """Always the name-addr form, so URI parameters can never turn into header ones."""
        display = ""
        if self.display_name is not None:
            name = self.display_name
            words = name.split(" ")
            display = (name if all(is_token(w) for w in words) else quote(name)) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @property
    def sip_uri(self) -> SipUri:
        """The URI as a `SipUri` (raises `SipUriError` for other schemes)."""
        return SipUri.parse(self.uri)

    def param(self, name: str) -> str | None:
        """Header parameter ``name`` (case-insensitive), unquoted; None if absent or empty."""
        _, value = find_param(self.params, name)
        return None if value is None else unquote(value)

    def has_param(self, name: str) -> bool:
        """Whether header parameter ``name`` is present."""
        return find_param(self.params, name)[0]

    def with_param(self, name: str, value: str | None) -> Address:
        """A copy with header parameter ``name`` set."""
        return Address(self.uri, self.display_name, replace_param(self.params, name, value))

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From/To)."""
        return self.param("tag")

    def with_tag(self, tag: str) -> Address:
        """A copy with ``tag`` set."""
        return self.with_param("tag", tag)


def _parts(text: str) -> tuple[str, str | None, tuple[tuple[str, str | None], ...]]:
    try:
        display, uri_text, params_text = split_name_addr(text)
    except SipUriError as exc:
        raise SipParseError(f"malformed address {text[:80]!r}: {exc}") from exc
    try:
        check_uri(uri_text)
    except SipUriError as exc:
        raise SipParseError(f"bad URI in address: {exc}") from exc
    return uri_text, display, parse_params(params_text)


@functools.lru_cache(maxsize=1024)
def _parse_remembered(text: str) -> Address:
    """`Address.parse`, remembered: the To and Contact of a peer recur in every request
    (an `Address` is immutable, so one value serves every caller)."""
    return Address(*_parts(text))
