"""message/cpim (RFC 3862): exact bytes, round trips, the RFC examples and hostile input."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.im.cpim import (
    IMDN_NAMESPACE,
    CpimMessage,
    format_datetime,
    new_message_id,
    parse_cpim,
    parse_datetime,
    uri_of,
)
from messenger.im.errors import CpimError, ImError

WHEN = datetime(2019, 1, 26, 6, 13, 54, 123456, tzinfo=UTC)


def crlf(*lines: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


def alice_to_bob(**kwargs: object) -> CpimMessage:
    args: dict[str, object] = {"when": WHEN, "message_id": "Kd8Lx2pQ7vR1sT4w"}
    args.update(kwargs)
    return CpimMessage.build(
        "sip:alice@example.com",
        ["sip:bob@example.org"],
        b"Watson, come here - I want to see you.",
        "text/plain;charset=utf-8",
        **args,  # type: ignore[arg-type]
    )


# -- building ------------------------------------------------------------------------


def test_build_emits_exact_bytes_in_the_documented_order() -> None:
    assert (
        alice_to_bob().to_bytes()
        == crlf(
            "From: <sip:alice@example.com>",
            "To: <sip:bob@example.org>",
            "DateTime: 2019-01-26T06:13:54.123Z",
            "NS: imdn <urn:ietf:params:imdn>",
            "imdn.Message-ID: Kd8Lx2pQ7vR1sT4w",
            "imdn.Disposition-Notification: positive-delivery",
            "",
            "Content-Type: text/plain;charset=utf-8",
            "",
        )
        + b"Watson, come here - I want to see you."
    )


def test_build_keeps_display_names_several_recipients_and_extra_headers_in_order() -> None:
    msg = CpimMessage.build(
        '"Alice A." <sip:alice@example.com>',
        ["sip:bob@example.org", "Carol <sip:carol@example.net>"],
        b"hi",
        "text/plain",
        when=datetime(2020, 2, 29, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
        message_id="m1",
        disposition=("positive-delivery", "display"),
        extra_headers=[("Subject", "lunch"), ("cc", "<sip:dave@example.com>")],
        extra_content_headers=[("Content-ID", "<1@example.com>")],
    )
    assert (
        msg.to_bytes()
        == crlf(
            'From: "Alice A." <sip:alice@example.com>',
            "To: <sip:bob@example.org>",
            "To: Carol <sip:carol@example.net>",
            "DateTime: 2020-03-01T04:59:59.000Z",
            "NS: imdn <urn:ietf:params:imdn>",
            "imdn.Message-ID: m1",
            "imdn.Disposition-Notification: positive-delivery, display",
            "Subject: lunch",
            "cc: <sip:dave@example.com>",
            "",
            "Content-Type: text/plain",
            "Content-ID: <1@example.com>",
            "",
        )
        + b"hi"
    )
    assert msg.from_uri == "sip:alice@example.com"
    assert msg.to_uris == ("sip:bob@example.org", "sip:carol@example.net")
    assert msg.disposition_notification == ("positive-delivery", "display")


def test_build_without_message_id_leaves_out_the_imdn_headers() -> None:
    msg = alice_to_bob(message_id=None, disposition=())
    assert b"imdn" not in msg.to_bytes()
    assert msg.message_id is None
    assert msg.disposition_notification == ()


def test_build_refuses_a_disposition_request_without_message_id() -> None:
    with pytest.raises(CpimError, match="Message-ID"):
        alice_to_bob(message_id=None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"extra_headers": [("Subject", "a\r\nTo: <sip:mallory@example.com>")]},
        {"extra_headers": [("Bad Name", "x")]},
        {"extra_content_headers": [("X-Evil", "a\nb")]},
        {"message_id": "two words"},
        {"extra_headers": [("From", "<sip:mallory@example.com>")]},
        {"when": datetime(2019, 1, 26)},  # naive
    ],
)
def test_build_refuses_header_injection_and_inconsistent_messages(kwargs: dict) -> None:
    with pytest.raises(CpimError):
        alice_to_bob(**kwargs)


@pytest.mark.parametrize("uri", ["sip:a b@example.com", "sip:a@example.com\r\nX: y", ""])
def test_build_refuses_bad_addresses(uri: str) -> None:
    with pytest.raises(CpimError):
        CpimMessage.build(
            uri,
            ["sip:bob@example.org"],
            b"",
            "text/plain",
            when=WHEN,
            message_id=None,
            disposition=(),
        )


def test_direct_construction_must_agree_with_the_headers() -> None:
    good = alice_to_bob()
    with pytest.raises(CpimError, match="disagree"):
        CpimMessage(
            "<sip:mallory@example.com>",
            good.to,
            good.datetime,
            good.headers,
            good.content_headers,
            good.body,
        )


# -- parsing -------------------------------------------------------------------------


def test_parse_round_trips_what_build_emits() -> None:
    msg = alice_to_bob(disposition=("positive-delivery", "negative-delivery", "display"))
    parsed = parse_cpim(msg.to_bytes())
    assert parsed == msg
    assert parsed.message_id == "Kd8Lx2pQ7vR1sT4w"
    assert parsed.content_type == "text/plain;charset=utf-8"
    assert parsed.datetime == datetime(2019, 1, 26, 6, 13, 54, 123000, tzinfo=UTC)


# RFC 3862 section 6, the message/cpim body (the "h:" and "e:" lines), typed by hand.
RFC3862_EXAMPLE = crlf(
    "From: MR SANDERS <im:piglet@100akerwood.com>",
    "To: Depressed Donkey <im:eeyore@100akerwood.com>",
    "DateTime: 2000-12-13T13:40:00-08:00",
    "Subject: the weather will be fine today",
    "Subject:;lang=fr beau temps prevu pour aujourd'hui",
    "NS: MyFeatures <mid:MessageFeatures@id.foo.com>",
    "Require: MyFeatures.VitalMessageOption",
    "MyFeatures.VitalMessageOption: Confirmation-requested",
    "MyFeatures.WackyMessageOption: Use-silly-font",
    "",
    "Content-type: text/xml; charset=utf-8",
    "Content-ID: <1234567890@foo.com>",
    "",
    "<body>",
    "Here is the text of my message.",
    "</body>",
)


def test_rfc3862_section6_example() -> None:
    msg = parse_cpim(RFC3862_EXAMPLE)
    assert msg.from_ == "MR SANDERS <im:piglet@100akerwood.com>"
    assert msg.from_uri == "im:piglet@100akerwood.com"
    assert msg.to_uris == ("im:eeyore@100akerwood.com",)
    assert msg.datetime == datetime(2000, 12, 13, 21, 40, tzinfo=UTC)
    assert msg.get_all("Subject") == (
        "the weather will be fine today",
        "beau temps prevu pour aujourd'hui",
    )
    assert msg.headers[4] == ("Subject;lang=fr", "beau temps prevu pour aujourd'hui")
    assert msg.get_ns("mid:MessageFeatures@id.foo.com", "WackyMessageOption") == ("Use-silly-font",)
    assert msg.message_id is None  # no IMDN namespace: the prefixed headers are not IMDN
    assert msg.content_type == "text/xml; charset=utf-8"
    assert msg.content_headers[1] == ("Content-ID", "<1234567890@foo.com>")
    assert msg.body == b"<body>\r\nHere is the text of my message.\r\n</body>\r\n"
    assert msg.to_bytes() == RFC3862_EXAMPLE


# RFC 5438 section 7.2.1.1 (message asking for delivery and display notifications), typed
# by hand; the RFC prints the CPIM and MIME headers without the blank line between them.
RFC5438_REQUEST = crlf(
    "From: Alice <im:alice@example.com>",
    "To: Bob <im:bob@example.com>",
    "NS: imdn <urn:ietf:params:imdn>",
    "imdn.Message-ID: 34jk324j",
    "DateTime: 2006-04-04T12:16:49-05:00",
    "imdn.Disposition-Notification: positive-delivery, display",
    "",
    "Content-type: text/plain",
    "Content-length: 12",
    "",
    "Hello World",
)


def test_rfc5438_request_example() -> None:
    msg = parse_cpim(RFC5438_REQUEST)
    assert msg.message_id == "34jk324j"
    assert msg.disposition_notification == ("positive-delivery", "display")
    assert msg.datetime == datetime(2006, 4, 4, 17, 16, 49, tzinfo=UTC)
    assert msg.body == b"Hello World\r\n"
    assert msg.to_bytes() == RFC5438_REQUEST


def test_imdn_headers_are_found_through_any_prefix_bound_to_the_namespace() -> None:
    data = crlf(
        "From: <sip:a@example.com>",
        "To: <sip:b@example.com>",
        "DateTime: 2006-04-04T12:16:49Z",
        "NS: notif <urn:ietf:params:imdn>",
        "notif.Message-ID: abc",
        "imdn.Message-ID: not-this-one",
        "",
        "",
    )
    msg = parse_cpim(data)
    assert msg.message_id == "abc"
    assert msg.get("imdn.Message-ID") == "not-this-one"  # kept, not interpreted


def test_headers_are_matched_case_insensitively_and_empty_mime_part_is_allowed() -> None:
    data = (
        crlf(
            "from: <sip:a@example.com>",
            "TO: <sip:b@example.com>",
            "datetime: 2006-04-04t12:16:49.5z",
            "",
            "",
        )
        + b"x"
    )
    msg = parse_cpim(data)
    assert msg.content_headers == ()
    assert msg.body == b"x"
    assert msg.datetime == datetime(2006, 4, 4, 12, 16, 49, 500000, tzinfo=UTC)
    assert msg.to_bytes() == data


def test_extra_spaces_after_the_colon_stay_in_the_value_so_bytes_round_trip() -> None:
    data = crlf(
        "From:  <sip:a@example.com>",
        "To: <sip:b@example.com>",
        "DateTime: 2006-04-04T12:16:49Z",
        "Subject:  two",
        "",
        "",
    )
    msg = parse_cpim(data)
    assert msg.get("Subject") == " two"
    assert msg.from_uri == "sip:a@example.com"
    assert msg.to_bytes() == data


BASE_LINES = [
    "From: <sip:a@example.com>",
    "To: <sip:b@example.com>",
    "DateTime: 2006-04-04T12:16:49Z",
]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"From: <sip:a@example.com>\r\n", "blank line"),
        (crlf("From:<sip:a@example.com>", *BASE_LINES[1:], "", ""), "malformed"),
        (crlf(*BASE_LINES, " folded", "", ""), "malformed"),
        (crlf(*BASE_LINES[1:], "", ""), "From"),
        (crlf(BASE_LINES[0], BASE_LINES[2], "", ""), "To"),
        (crlf(*BASE_LINES[:2], "", ""), "DateTime"),
        (crlf(*BASE_LINES, BASE_LINES[0], "", ""), "From"),
        (crlf(*BASE_LINES, "X: a\x00b", "", ""), "malformed"),
        ("\r\n".join([*BASE_LINES, "", "", ""]).replace("To:", "To\n:").encode(), "LF"),
        (crlf(*BASE_LINES[:2], "DateTime: yesterday", "", ""), "date-time"),
        (crlf(*BASE_LINES[:2], "DateTime: 2006-02-30T12:16:49Z", "", ""), "impossible"),
        (crlf(*BASE_LINES, "", "Content-Type: text/plain"), "blank line"),
        (crlf(*BASE_LINES, "NS: a <urn:x>", "NS: a <urn:y>", "", ""), "two namespaces"),
        (
            crlf(
                *BASE_LINES,
                "NS: imdn <urn:ietf:params:imdn>",
                "imdn.Message-ID: a",
                "imdn.Message-ID: b",
                "",
                "",
            ),
            "more than one",
        ),
        (crlf(*BASE_LINES, "", "").replace(b"\r\n\r\n", b"\r\nSubject: caf\xe9\r\n\r\n"), "UTF-8"),
        (crlf("From: sip:a@example.com <", *BASE_LINES[1:], "", ""), "address"),
    ],
)
def test_malformed_messages_raise_cpim_error(data: bytes, why: str) -> None:
    with pytest.raises(CpimError, match=why):
        parse_cpim(data)


# -- DateTime, addresses, ids --------------------------------------------------------


def test_datetime_has_one_exact_emitted_format_and_accepts_rfc3339_offsets() -> None:
    assert format_datetime(datetime(2000, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)) == (
        "2000-01-02T03:04:05.999Z"
    )
    eastern = timezone(timedelta(hours=-5))
    assert format_datetime(datetime(2008, 4, 4, 12, 16, 49, tzinfo=eastern)) == (
        "2008-04-04T17:16:49.000Z"
    )
    assert parse_datetime("2008-04-04T12:16:49-05:00") == datetime(
        2008, 4, 4, 17, 16, 49, tzinfo=UTC
    )
    assert parse_datetime("2020-07-07T14:32:00+0000") == datetime(2020, 7, 7, 14, 32, tzinfo=UTC)
    assert parse_datetime("2000-01-02T03:04:05.123456789Z").microsecond == 123456
    assert format_datetime(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00.000Z"
    with pytest.raises(CpimError, match="no UTC"):
        format_datetime(parse_datetime("0001-01-01T00:00:00+05:00"))
    when = datetime(2024, 5, 6, 7, 8, 9, 10000, tzinfo=UTC)
    assert parse_datetime(format_datetime(when)) == when
    for bad in [
        "2008-04-04 12:16:49Z",
        "2008-04-04T12:16:49",
        "2008-04-04T12:16:49+24:00",
        "２００８-04-04T12:16:49Z",
        "2008-04-04T12:16:60Z",
    ]:
        with pytest.raises(CpimError):
            parse_datetime(bad)


@pytest.mark.parametrize(
    ("value", "uri"),
    [
        ("<sip:alice@example.com>", "sip:alice@example.com"),
        ("Alice <sip:alice@example.com>", "sip:alice@example.com"),
        ('"Alice <A.>" <sip:alice@example.com>', "sip:alice@example.com"),
        ("sip:alice@example.com", "sip:alice@example.com"),
        ("  <im:piglet@100akerwood.com> ", "im:piglet@100akerwood.com"),
    ],
)
def test_uri_of(value: str, uri: str) -> None:
    assert uri_of(value) == uri


@pytest.mark.parametrize(
    "value", ["", "Alice", "<a b>", "<nocolon>", "<sip:a@b", '"x" sip:a@b', "<<a>>"]
)
def test_uri_of_rejects_what_is_not_an_address(value: str) -> None:
    with pytest.raises(CpimError):
        uri_of(value)


def test_new_message_id_is_url_safe_random_and_pinnable() -> None:
    ids = {new_message_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        assert len(value) == 16 and value.isascii() and value.isalnum()
    assert new_message_id(random.Random(7)) == new_message_id(random.Random(7))


def test_imdn_namespace_constant() -> None:
    assert IMDN_NAMESPACE == "urn:ietf:params:imdn"


# -- hostile input -------------------------------------------------------------------

SEEDS = [RFC3862_EXAMPLE, RFC5438_REQUEST, alice_to_bob().to_bytes()]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and pos < len(data):
            data[pos] = draw(st.sampled_from(b'\r\n :;<>".\x00\xff\xc3aZ0'))
        elif action == "insert":
            data[pos:pos] = draw(
                st.sampled_from(
                    [
                        b"\r\n",
                        b"\r",
                        b"\n",
                        b": ",
                        b"\r\n\r\n",
                        b"NS: imdn <urn:ietf:params:imdn>\r\n",
                    ]
                )
            )
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            del data[pos:]
    return bytes(data)


def _parse_or_im_error(data: bytes) -> None:
    try:
        msg = parse_cpim(data)
    except ImError:
        return
    assert msg.to_bytes() == data  # whatever is accepted round-trips exactly
    _ = (msg.message_id, msg.disposition_notification, msg.content_type, msg.to_uris)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_im_errors(data: bytes) -> None:
    _parse_or_im_error(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_raise_only_im_errors_or_round_trip(data: bytes) -> None:
    _parse_or_im_error(data)
