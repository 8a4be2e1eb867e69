"""Instant Message Disposition Notifications (RFC 5438): ``message/imdn+xml`` and its CPIM.

* `Imdn` is one notification; `build_imdn` / `Imdn.to_bytes` write the XML document and
  `parse_imdn` reads one, raising `ImdnError` (never anything else) on bad input.
* `build_imdn_cpim` answers a received `CpimMessage` with the CPIM message that carries the
  notification (RFC 5438 section 7.1.1): From and To reversed, its own ``imdn.Message-ID``,
  no disposition request of its own, ``Content-Type: message/imdn+xml`` and
  ``Content-Disposition: notification``. `imdn_of` reads that back.
* `imdn_requested` tells whether the sender asked for a given notification at all; a
  notification nobody asked for is never built.

Parsing is hardened: the document must be UTF-8 (declared or not), at most ``max_size``
bytes, and any DOCTYPE or ENTITY declaration is refused before the XML parser runs, so
entity expansion (billion laughs) and external entities cannot happen.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast, get_args

from .cpim import CpimMessage, format_datetime, parse_datetime, uri_of
from .errors import CpimError, ImdnError

__all__ = [
    "IMDN_CONTENT_TYPE",
    "IMDN_XML_NAMESPACE",
    "STATUSES",
    "Imdn",
    "ImdnKind",
    "build_imdn",
    "build_imdn_cpim",
    "imdn_of",
    "imdn_requested",
    "parse_imdn",
]

IMDN_XML_NAMESPACE = "urn:ietf:params:xml:ns:imdn"
IMDN_CONTENT_TYPE = "message/imdn+xml"

ImdnKind = Literal["delivery", "display", "processing"]

STATUSES: dict[str, frozenset[str]] = {
    "delivery": frozenset({"delivered", "failed", "forbidden", "error"}),
    "display": frozenset({"displayed", "forbidden", "error"}),
    "processing": frozenset({"processed", "stored", "forbidden", "error"}),
}
"""The status values RFC 5438 section 9 allows in each kind of notification."""

_MAX_SIZE = 64 * 1024
_NS = "{" + IMDN_XML_NAMESPACE + "}"
_DECLARATION = re.compile(r'<\?xml[^>]*?encoding\s*=\s*["\'](?P<enc>[^"\']*)["\']')
_FORBIDDEN_MARKUP = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True)
class Imdn:
    """One disposition notification (the ``<imdn>`` element of RFC 5438 section 9).

    ``message_id`` and ``datetime`` are those of the message being reported on (its
    ``imdn.Message-ID`` and DateTime); ``recipient_uri`` is who reports, and
    ``original_recipient_uri`` the address the message was first sent to, when a
    server changed it (``imdn.Original-To``).
    """

    message_id: str
    datetime: datetime
    recipient_uri: str | None
    original_recipient_uri: str | None
    kind: ImdnKind
    status: str
    subject: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in STATUSES:
            raise ImdnError(f"unknown IMDN kind {self.kind!r}")
        if self.status not in STATUSES[self.kind]:
            raise ImdnError(f"{self.status!r} is not a status of a {self.kind}-notification")
        if not self.message_id or self.message_id != self.message_id.strip():
            raise ImdnError("an IMDN needs a message-id without surrounding spaces")
        if self.datetime.tzinfo is None or self.datetime.utcoffset() is None:
            raise ImdnError("an IMDN datetime must be timezone-aware")
        for text in (
            self.message_id,
            self.recipient_uri,
            self.original_recipient_uri,
            self.subject,
        ):
            if text is not None and re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", text):
                raise ImdnError("control characters cannot be written in XML")

    def to_bytes(self) -> bytes:
        """The ``message/imdn+xml`` document (UTF-8, no whitespace between elements)."""
        root = ET.Element(_NS + "imdn")
        ET.SubElement(root, _NS + "message-id").text = self.message_id
        try:
            ET.SubElement(root, _NS + "datetime").text = format_datetime(self.datetime)
        except CpimError as exc:
            raise ImdnError(str(exc)) from None
        if self.recipient_uri is not None:
            ET.SubElement(root, _NS + "recipient-uri").text = self.recipient_uri
        if self.original_recipient_uri is not None:
            ET.SubElement(root, _NS + "original-recipient-uri").text = self.original_recipient_uri
        if self.subject is not None:
            ET.SubElement(root, _NS + "subject").text = self.subject
        notification = ET.SubElement(root, f"{_NS}{self.kind}-notification")
        status = ET.SubElement(notification, _NS + "status")
        ET.SubElement(status, _NS + self.status)
        body = ET.tostring(root, encoding="unicode", default_namespace=IMDN_XML_NAMESPACE)
        return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")


def build_imdn(
    *,
    message_id: str,
    datetime: datetime,
    kind: ImdnKind,
    status: str,
    recipient_uri: str | None = None,
    original_recipient_uri: str | None = None,
    subject: str | None = None,
) -> bytes:
    """Build a ``message/imdn+xml`` document; see `Imdn` for the fields."""
    return Imdn(
        message_id, datetime, recipient_uri, original_recipient_uri, kind, status, subject
    ).to_bytes()


def _checked_text(data: bytes, max_size: int) -> str:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImdnError("parse_imdn takes bytes")
    if len(data) > max_size:
        raise ImdnError(f"IMDN document of {len(data)} bytes exceeds {max_size}")
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImdnError("an IMDN document must be UTF-8") from None
    declaration = _DECLARATION.match(text)
    if declaration and declaration["enc"].lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise ImdnError(f"IMDN documents must be UTF-8, not {declaration['enc'][:20]!r}")
    if _FORBIDDEN_MARKUP.search(text):
        raise ImdnError("DOCTYPE and ENTITY declarations are refused in IMDN documents")
    return text


def _only_child(parent: ET.Element, local: str, *, required: bool) -> ET.Element | None:
    found = parent.findall(_NS + local)
    if len(found) > 1:
        raise ImdnError(f"more than one <{local}> element")
    if not found:
        if required:
            raise ImdnError(f"missing <{local}> element")
        return None
    element = found[0]
    if len(element):
        raise ImdnError(f"<{local}> must hold text only")
    return element


def _text(parent: ET.Element, local: str, *, required: bool) -> str | None:
    element = _only_child(parent, local, required=required)
    if element is None:
        return None
    text = (element.text or "").strip()
    if required and not text:
        raise ImdnError(f"empty <{local}> element")
    return text


def parse_imdn(data: bytes, *, max_size: int = _MAX_SIZE) -> Imdn:
    """Parse a ``message/imdn+xml`` document (RFC 5438 section 9). Raises `ImdnError` only.

    Elements of other namespaces (extensions) are ignored; a status must be one RFC 5438
    defines for its kind of notification.
    """
    text = _checked_text(data, max_size)
    try:
        root = ET.fromstring(text)  # a str: expat does not re-read the declared encoding
    except (ET.ParseError, ValueError) as exc:
        raise ImdnError(f"IMDN document is not well-formed XML: {exc}") from None
    if root.tag != _NS + "imdn":
        raise ImdnError(f"root element is {root.tag[:80]!r}, not <imdn> of {IMDN_XML_NAMESPACE}")
    message_id = _text(root, "message-id", required=True)
    datetime_text = _text(root, "datetime", required=True)
    assert message_id is not None and datetime_text is not None
    try:
        when = parse_datetime(datetime_text)
    except CpimError as exc:
        raise ImdnError(f"bad <datetime>: {exc}") from None
    kinds = [k for k in STATUSES if root.find(f"{_NS}{k}-notification") is not None]
    if len(kinds) != 1:
        raise ImdnError("an IMDN holds exactly one delivery, display or processing notification")
    kind = kinds[0]
    notification = root.findall(f"{_NS}{kind}-notification")
    if len(notification) != 1:
        raise ImdnError(f"more than one <{kind}-notification> element")
    status_element = notification[0].findall(_NS + "status")
    if len(status_element) != 1:
        raise ImdnError(f"<{kind}-notification> needs exactly one <status>")
    statuses = [c.tag[len(_NS) :] for c in status_element[0] if c.tag.startswith(_NS)]
    if len(statuses) != 1 or statuses[0] not in STATUSES[kind]:
        raise ImdnError(
            f"<status> of a {kind}-notification must be one of {sorted(STATUSES[kind])}"
        )
    return Imdn(
        message_id=message_id,
        datetime=when,
        recipient_uri=_text(root, "recipient-uri", required=False),
        original_recipient_uri=_text(root, "original-recipient-uri", required=False),
        kind=cast(ImdnKind, kind),
        status=statuses[0],
        subject=_text(root, "subject", required=False),
    )


def imdn_requested(original: CpimMessage, kind: ImdnKind, status: str) -> bool:
    """Whether ``original`` asked for this notification (RFC 5438 sections 5 and 6).

    A delivery notification with status ``delivered`` answers ``positive-delivery``; any
    other delivery status answers ``negative-delivery``; display and processing
    notifications answer ``display`` and ``processing``. A message without an
    ``imdn.Message-ID`` cannot be answered at all.
    """
    if original.message_id is None:
        return False
    wanted = original.disposition_notification
    if kind == "delivery":
        return ("positive-delivery" if status == "delivered" else "negative-delivery") in wanted
    return kind in wanted


def build_imdn_cpim(
    original: CpimMessage,
    *,
    kind: ImdnKind,
    status: str,
    when: datetime,
    message_id: str,
    from_uri: str | None = None,
) -> CpimMessage:
    """The CPIM message that carries a notification about ``original`` (RFC 5438 §7.1.1).

    ``from_uri`` is the reporting user (by default the single To of ``original``); the
    notification goes To the original From. ``message_id`` is the new ``imdn.Message-ID``
    of the notification itself, ``when`` its DateTime. The ``<imdn>`` body repeats the
    original ``imdn.Message-ID`` and DateTime, names the reporter in ``<recipient-uri>``,
    and ``imdn.Original-To`` (if any) in ``<original-recipient-uri>``.

    Raises `ImdnError` when ``original`` did not ask for this notification. Routing through
    ``imdn.IMDN-Record-Route`` is a SIP matter left to the caller.
    """
    if kind not in get_args(ImdnKind):
        raise ImdnError(f"unknown IMDN kind {kind!r}")
    if not imdn_requested(original, kind, status):
        raise ImdnError(f"the message did not ask for a {kind} notification with {status!r}")
    if from_uri is None:
        if len(original.to) != 1:
            raise ImdnError("from_uri is needed when the message had several To headers")
        from_uri = original.to[0]
    original_to = original.get_ns("urn:ietf:params:imdn", "Original-To")
    try:
        body = build_imdn(
            message_id=original.message_id or "",
            datetime=original.datetime,
            kind=kind,
            status=status,
            recipient_uri=uri_of(from_uri),
            original_recipient_uri=uri_of(original_to[0]) if original_to else None,
        )
        return CpimMessage.build(
            from_uri,
            [original.from_],
            body,
            IMDN_CONTENT_TYPE,
            when=when,
            message_id=message_id,
            disposition=(),
            extra_content_headers=[("Content-Disposition", "notification")],
        )
    except CpimError as exc:
        raise ImdnError(f"cannot build the IMDN message: {exc}") from None


def imdn_of(message: CpimMessage, *, max_size: int = _MAX_SIZE) -> Imdn:
    """The notification carried by a CPIM message whose content is ``message/imdn+xml``."""
    content_type = (message.content_type or "").split(";")[0].strip().lower()
    if content_type != IMDN_CONTENT_TYPE:
        raise ImdnError(f"content type {content_type[:60]!r} is not {IMDN_CONTENT_TYPE}")
    return parse_imdn(message.body, max_size=max_size)
