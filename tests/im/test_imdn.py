"""IMDN (RFC 5438): the XML document, its CPIM wrapper and hostile documents."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.im.cpim import CpimMessage, parse_cpim
from messenger.im.errors import ImdnError, ImError
from messenger.im.imdn import (
    Imdn,
    build_imdn,
    build_imdn_cpim,
    imdn_of,
    imdn_requested,
    parse_imdn,
)

SENT = datetime(2019, 1, 26, 6, 13, 54, 250000, tzinfo=UTC)
LATER = datetime(2019, 1, 26, 6, 14, 1, tzinfo=UTC)

# RFC 5438 section 7.2.1.2, the delivery notification, typed by hand.
RFC5438_DELIVERED = b"""<?xml version="1.0" encoding="UTF-8"?>
<imdn xmlns="urn:ietf:params:xml:ns:imdn">
  <message-id>34jk324j</message-id>
  <datetime>2008-04-04T12:16:49-05:00</datetime>
  <recipient-uri>im:bob@example.com</recipient-uri>
  <original-recipient-uri>im:bob@example.com</original-recipient-uri>
  <delivery-notification>
    <status>
      <delivered/>
    </status>
  </delivery-notification>
</imdn>
"""

RFC5438_DISPLAYED = b"""<?xml version="1.0" encoding="UTF-8"?>
<imdn xmlns="urn:ietf:params:xml:ns:imdn">
  <message-id>34jk324j</message-id>
  <datetime>2008-04-04T12:16:49-05:00</datetime>
  <recipient-uri>im:bob@example.com</recipient-uri>
  <original-recipient-uri>im:bob@example.com</original-recipient-uri>
  <display-notification>
    <status>
      <displayed/>
    </status>
  </display-notification>
</imdn>
"""


def test_rfc5438_delivery_notification_example() -> None:
    imdn = parse_imdn(RFC5438_DELIVERED)
    assert imdn == Imdn(
        message_id="34jk324j",
        datetime=datetime(2008, 4, 4, 17, 16, 49, tzinfo=UTC),
        recipient_uri="im:bob@example.com",
        original_recipient_uri="im:bob@example.com",
        kind="delivery",
        status="delivered",
    )


def test_rfc5438_display_notification_example() -> None:
    imdn = parse_imdn(RFC5438_DISPLAYED)
    assert (imdn.kind, imdn.status) == ("display", "displayed")


def test_build_imdn_exact_bytes() -> None:
    data = build_imdn(
        message_id="34jk324j",
        datetime=datetime(2008, 4, 4, 12, 16, 49, tzinfo=timezone(timedelta(hours=-5))),
        kind="delivery",
        status="failed",
        recipient_uri="sip:bob@example.org",
    )
    assert data == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>34jk324j</message-id>'
        b"<datetime>2008-04-04T17:16:49.000Z</datetime>"
        b"<recipient-uri>sip:bob@example.org</recipient-uri>"
        b"<delivery-notification><status><failed /></status></delivery-notification>"
        b"</imdn>\n"
    )


@pytest.mark.parametrize(
    ("kind", "status"),
    [("delivery", s) for s in ("delivered", "failed", "forbidden", "error")]
    + [("display", s) for s in ("displayed", "forbidden", "error")]
    + [("processing", s) for s in ("processed", "stored", "forbidden", "error")],
)
def test_every_kind_and_status_round_trips(kind: str, status: str) -> None:
    imdn = Imdn("id<&>1", SENT, "sip:b@example.org", None, kind, status, "caf\u00e9 & <b>")  # type: ignore[arg-type]
    assert parse_imdn(imdn.to_bytes()) == imdn


@pytest.mark.parametrize(
    ("kind", "status"), [("delivery", "displayed"), ("display", "delivered"), ("read", "x")]
)
def test_status_must_belong_to_its_kind(kind: str, status: str) -> None:
    with pytest.raises(ImdnError):
        Imdn("a", SENT, None, None, kind, status)  # type: ignore[arg-type]


def _doc(inner: str, root: str = '<imdn xmlns="urn:ietf:params:xml:ns:imdn">') -> bytes:
    return f"{root}{inner}</imdn>".encode()


GOOD_HEAD = "<message-id>a</message-id><datetime>2008-04-04T12:16:49Z</datetime>"
DELIVERED = "<delivery-notification><status><delivered/></status></delivery-notification>"


def test_a_datetime_without_utc_equivalent_cannot_be_written() -> None:
    imdn = parse_imdn(
        _doc(GOOD_HEAD.replace("2008-04-04T12:16:49Z", "0001-01-01T00:00:00+01:00") + DELIVERED)
    )
    with pytest.raises(ImdnError, match="no UTC"):
        imdn.to_bytes()


def test_extension_elements_of_other_namespaces_are_ignored() -> None:
    data = _doc(
        GOOD_HEAD
        + '<x:extra xmlns:x="urn:example:x">1</x:extra>'
        + "<delivery-notification><status><delivered/>"
        + '<r:reason xmlns:r="urn:example:r">ok</r:reason></status></delivery-notification>'
    )
    assert parse_imdn(data).status == "delivered"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE imdn [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>&lol3;</message-id></imdn>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE imdn SYSTEM "file:///etc/passwd">
<imdn xmlns="urn:ietf:params:xml:ns:imdn"/>"""


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (BILLION_LAUGHS, "DOCTYPE"),
        (EXTERNAL_ENTITY, "DOCTYPE"),
        (b"<!doctype imdn>" + _doc(GOOD_HEAD + DELIVERED), "DOCTYPE"),
        ('<?xml version="1.0" encoding="UTF-16"?><imdn/>'.encode("utf-16"), "UTF-8"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?>' + _doc(GOOD_HEAD + DELIVERED), "UTF-8"),
        (b"<imdn", "well-formed"),
        (b"", "well-formed"),
        (_doc(GOOD_HEAD + DELIVERED, "<imdn>"), "root element"),
        (_doc("<datetime>2008-04-04T12:16:49Z</datetime>" + DELIVERED), "message-id"),
        (
            _doc("<message-id> </message-id><datetime>2008-04-04T12:16:49Z</datetime>" + DELIVERED),
            "empty",
        ),
        (_doc("<message-id>a</message-id><datetime>soon</datetime>" + DELIVERED), "datetime"),
        (_doc(GOOD_HEAD + "<message-id>b</message-id>" + DELIVERED), "more than one"),
        (_doc(GOOD_HEAD), "exactly one"),
        (_doc(GOOD_HEAD + DELIVERED + DELIVERED), "more than one"),
        (_doc(GOOD_HEAD + DELIVERED.replace("delivery", "display")), "status"),
        (_doc(GOOD_HEAD + "<delivery-notification><status/></delivery-notification>"), "status"),
        (_doc(GOOD_HEAD + "<delivery-notification/>"), "status"),
        (_doc(GOOD_HEAD.replace(">a<", "><b/><") + DELIVERED), "text only"),
        (b"x" * 70000, "exceeds"),
    ],
)
def test_malformed_or_dangerous_documents_raise_imdn_error(data: bytes, why: str) -> None:
    with pytest.raises(ImdnError, match=why):
        parse_imdn(data)


# -- IMDN inside CPIM ------------------------------------------------------------------


def _original(disposition: tuple[str, ...]) -> CpimMessage:
    return CpimMessage.build(
        '"Alice" <sip:alice@example.com>',
        ["sip:bob@example.org"],
        b"Hello",
        "text/plain",
        when=SENT,
        message_id="orig0001",
        disposition=disposition,
        extra_headers=[("imdn.Original-To", "<sip:bob@old.example.org>")],
    )


def test_build_imdn_cpim_reverses_from_and_to_and_carries_its_own_message_id() -> None:
    original = parse_cpim(_original(("positive-delivery", "display")).to_bytes())
    reply = build_imdn_cpim(
        original, kind="delivery", status="delivered", when=LATER, message_id="notif001"
    )
    assert reply.to_bytes() == (
        b"From: <sip:bob@example.org>\r\n"
        b'To: "Alice" <sip:alice@example.com>\r\n'
        b"DateTime: 2019-01-26T06:14:01.000Z\r\n"
        b"NS: imdn <urn:ietf:params:imdn>\r\n"
        b"imdn.Message-ID: notif001\r\n"
        b"\r\n"
        b"Content-Type: message/imdn+xml\r\n"
        b"Content-Disposition: notification\r\n"
        b"\r\n"
    ) + build_imdn(
        message_id="orig0001",
        datetime=SENT,
        kind="delivery",
        status="delivered",
        recipient_uri="sip:bob@example.org",
        original_recipient_uri="sip:bob@old.example.org",
    )
    assert reply.disposition_notification == ()  # an IMDN never asks for an IMDN
    received = imdn_of(parse_cpim(reply.to_bytes()))
    assert received.message_id == original.message_id
    assert received.datetime == datetime(2019, 1, 26, 6, 13, 54, 250000, tzinfo=UTC)
    assert received.original_recipient_uri == "sip:bob@old.example.org"


def test_imdn_requested_follows_the_disposition_notification_header() -> None:
    positive = _original(("positive-delivery",))
    assert imdn_requested(positive, "delivery", "delivered")
    assert not imdn_requested(positive, "delivery", "failed")
    assert not imdn_requested(positive, "display", "displayed")
    negative = _original(("negative-delivery", "display", "processing"))
    assert imdn_requested(negative, "delivery", "error")
    assert imdn_requested(negative, "display", "displayed")
    assert imdn_requested(negative, "processing", "stored")
    assert not imdn_requested(negative, "delivery", "delivered")


def test_unrequested_notifications_are_never_built() -> None:
    with pytest.raises(ImdnError, match="did not ask"):
        build_imdn_cpim(
            _original(("positive-delivery",)),
            kind="display",
            status="displayed",
            when=LATER,
            message_id="n2",
        )


def test_reporter_must_be_named_when_the_message_had_several_recipients() -> None:
    original = CpimMessage.build(
        "sip:a@example.com",
        ["sip:b@example.com", "sip:c@example.com"],
        b"",
        "text/plain",
        when=SENT,
        message_id="m",
    )
    with pytest.raises(ImdnError, match="from_uri"):
        build_imdn_cpim(original, kind="delivery", status="delivered", when=LATER, message_id="n")
    reply = build_imdn_cpim(
        original,
        kind="delivery",
        status="delivered",
        when=LATER,
        message_id="n",
        from_uri="sip:c@example.com",
    )
    assert imdn_of(reply).recipient_uri == "sip:c@example.com"


def test_imdn_of_refuses_other_content_types() -> None:
    with pytest.raises(ImdnError, match="not message/imdn"):
        imdn_of(_original(()))


# -- hostile input -------------------------------------------------------------------

SEEDS = [RFC5438_DELIVERED, RFC5438_DISPLAYED, BILLION_LAUGHS]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(
                st.sampled_from(
                    [b"<", b">", b"/>", b"&lol;", b"&#0;", b"<!DOCTYPE x>", b"<status/>", b"\xff"]
                )
            )
        else:
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_im_errors(data: bytes) -> None:
    try:
        parse_imdn(data)
    except ImError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_documents_raise_only_im_errors(data: bytes) -> None:
    try:
        imdn = parse_imdn(data)
        written = imdn.to_bytes()
    except ImError:
        return
    again = parse_imdn(written)  # DateTime is written to the millisecond
    assert again == replace(imdn, datetime=again.datetime)
    assert timedelta(0) <= imdn.datetime - again.datetime < timedelta(milliseconds=1)
