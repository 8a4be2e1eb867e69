"""SIP message parsing and serialization: RFC 3261 section 7, RFC 4475-style torture input."""

from __future__ import annotations

import random

import pytest

from messenger.sip.address import Address
from messenger.sip.errors import SipParseError
from messenger.sip.headers import CSeq, Headers, Via, split_header_values
from messenger.sip.message import (
    SipRequest,
    SipResponse,
    best_effort_response_400,
    parse_message,
)


def crlf(text: str) -> bytes:
    """Turn a readable multi-line literal into wire bytes (LF -> CRLF)."""
    return text.replace("\n", "\r\n").encode("utf-8")


BASIC = crlf(
    "MESSAGE sip:bob@example.org SIP/2.0\n"
    "Via: SIP/2.0/UDP alice-pc.example.com:5060;branch=z9hG4bK776asdhds;rport\n"
    "Max-Forwards: 70\n"
    'From: "Alice" <sip:alice@example.com>;tag=1928301774\n'
    "To: <sip:bob@example.org>\n"
    "Call-ID: a84b4c76e66710@pc33.example.com\n"
    "CSeq: 1 MESSAGE\n"
    "Content-Type: text/plain\n"
    "Content-Length: 5\n"
    "\n"
    "hello"
)


def test_basic_request_parses() -> None:
    msg = parse_message(BASIC)
    assert isinstance(msg, SipRequest)
    assert msg.method == "MESSAGE"
    assert msg.uri == "sip:bob@example.org"
    assert msg.body == b"hello"
    assert msg.call_id == "a84b4c76e66710@pc33.example.com"
    assert msg.cseq == CSeq(1, "MESSAGE")
    assert msg.from_address.display_name == "Alice"
    assert msg.from_address.tag == "1928301774"
    assert msg.to_address.tag is None
    assert msg.sip_uri.user == "bob"


def test_basic_request_round_trips_byte_for_byte() -> None:
    assert parse_message(BASIC).to_bytes() == BASIC


def test_response_parses() -> None:
    data = crlf(
        "SIP/2.0 202 Accepted\n"
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bKx;received=192.0.2.1;rport=5070\n"
        "From: <sip:alice@example.com>;tag=1\n"
        "To: <sip:bob@example.org>;tag=2\n"
        "Call-ID: c1\n"
        "CSeq: 7 MESSAGE\n"
        "Content-Length: 0\n"
        "\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (202, "Accepted")
    assert msg.top_via.received == "192.0.2.1"
    assert msg.top_via.rport == 5070
    assert msg.to_bytes() == data


def test_status_line_with_empty_reason() -> None:
    data = crlf(
        "SIP/2.0 200 \nVia: SIP/2.0/UDP h.example;branch=z9hG4bK1\nFrom: <sip:a@h.example>;tag=1\n"
        "To: <sip:b@h.example>\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    assert msg.reason == ""


# -- RFC 8591 section 10 vectors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("sip_file", "der_file"),
    [
        ("fig1-message.sip", "fig1-signed-with-cert.der"),
        ("fig2-message.sip", "fig2-signed-no-cert.der"),
    ],
)
def test_rfc8591_vector_parses_with_exact_body_and_round_trips(
    vectors_dir, sip_file: str, der_file: str
) -> None:
    data = (vectors_dir / sip_file).read_bytes()
    der = (vectors_dir / der_file).read_bytes()
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    assert msg.method == "MESSAGE"
    assert msg.body == der
    assert msg.headers.get("Content-Length") == str(len(der))
    assert msg.content_type == 'application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"'
    assert msg.from_address.sip_uri.aor() == "sip:alice@example.com"
    assert msg.from_address.tag == "49597"
    assert msg.to_address.uri == "sip:bob@example.org"
    assert msg.top_via.branch == "z9hG4bK776sgdkfie"
    assert msg.top_via.transport == "TCP"
    assert msg.to_bytes() == data


def test_rfc8591_vector_from_in_addr_spec_form_keeps_tag_out_of_the_uri(vectors_dir) -> None:
    msg = parse_message((vectors_dir / "fig1-message.sip").read_bytes())
    assert msg.from_address.sip_uri.params == ()


# -- torture-style input (RFC 4475 section 3.1.1) ---------------------------------------


def test_compact_forms_expand() -> None:
    data = crlf(
        "MESSAGE sip:bob@example.org SIP/2.0\n"
        "v: SIP/2.0/UDP h.example.com;branch=z9hG4bKc\n"
        "f: <sip:alice@example.com>;tag=1\n"
        "t: sip:bob@example.org\n"
        "i: compact@h.example.com\n"
        "CSeq: 2 MESSAGE\n"
        "c: text/plain\n"
        "k: path, gruu\n"
        "m: <sip:alice@192.0.2.1>\n"
        "s: hi\n"
        "e: gzip\n"
        "l: 2\n"
        "\n"
        "hi"
    )
    msg = parse_message(data)
    names = [name for name, _ in msg.headers]
    assert names == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Content-Type",
        "Supported",
        "Supported",
        "Contact",
        "Subject",
        "Content-Encoding",
        "Content-Length",
    ]
    assert msg.call_id == "compact@h.example.com"
    assert msg.headers.get_all("Supported") == ["path", "gruu"]
    assert msg.body == b"hi"
    assert b"\r\nContent-Length: 2\r\n" in msg.to_bytes()


def test_compact_name_finds_long_header_on_lookup() -> None:
    msg = parse_message(BASIC)
    assert msg.headers.get("i") == msg.call_id
    assert msg.headers.get("CALL-ID") == msg.call_id


def test_folded_header_lines_are_joined() -> None:
    data = crlf(
        "MESSAGE sip:bob@example.org SIP/2.0\n"
        "Via: SIP/2.0/UDP h.example.com;\n"
        "  branch=z9hG4bKfold\n"
        "From: <sip:alice@example.com>\n"
        "\t;tag=1\n"
        "To: sip:bob@example.org\n"
        "Subject: first line\n"
        "   second line\n"
        "Call-ID: fold\n"
        "CSeq: 1 MESSAGE\n"
        "Content-Length: 0\n"
        "\n"
    )
    msg = parse_message(data)
    assert msg.top_via.branch == "z9hG4bKfold"
    assert msg.from_address.tag == "1"
    assert msg.headers.get("Subject") == "first line second line"


def test_weird_whitespace_is_tolerated() -> None:
    data = crlf(
        "MESSAGE sip:bob@example.org SIP/2.0\n"
        "Via  :  SIP  /  2.0  /  UDP   h.example.com : 5070 ;  branch = z9hG4bKws ;rport\n"
        'From   :\t"Alice  \\"A\\""   <sip:alice@example.com>  ;  tag = 88\n'
        "To:sip:bob@example.org\n"
        "Call-ID   : ws@h\n"
        "CSeq:   3     MESSAGE  \n"
        "Content-Length:0\n"
        "\n"
    )
    msg = parse_message(data)
    via = msg.top_via
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP",
        "h.example.com",
        5070,
        "z9hG4bKws",
    )
    assert via.rport_requested and via.rport is None
    assert msg.from_address.display_name == 'Alice  "A"'
    assert msg.from_address.tag == "88"
    assert msg.cseq == CSeq(3, "MESSAGE")


def test_escaped_request_uri_and_headers() -> None:
    data = crlf(
        "MESSAGE sip:sips%3Auser%40example.com@example.net;user=ip SIP/2.0\n"
        "Via: SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKesc;received=2001:db8::9\n"
        "From: <sip:I%20have%20spaces@example.net>;tag=938\n"
        'To: "%Z%45" <sip:resource@example.com>\n'
        "Call-ID: esc01.239409asdfakjkn23onasd0-3234\n"
        "CSeq: 234234 MESSAGE\n"
        "Content-Length: 0\n"
        "\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    assert msg.sip_uri.user == "sips:user@example.com"
    assert msg.top_via.host == "[2001:db8::9]"
    assert msg.from_address.sip_uri.user == "I have spaces"
    assert msg.to_address.display_name == "%Z%45"
    assert parse_message(msg.to_bytes()) == msg


def test_multi_value_headers_split_at_commas_outside_quotes_and_brackets() -> None:
    data = crlf(
        "MESSAGE sip:bob@example.org SIP/2.0\n"
        "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1,"
        " SIP/2.0/TCP p2.example.com;branch=z9hG4bK2\n"
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK3\n"
        'Contact: "Doe, John" <sip:jd,x@example.com>;q=0.5, <sip:other@example.com>\n'
        "Allow: MESSAGE,OPTIONS , INVITE\n"
        "From: <sip:alice@example.com>;tag=1\n"
        "To: sip:bob@example.org\n"
        "Call-ID: split\n"
        "CSeq: 1 MESSAGE\n"
        "Content-Length: 0\n"
        "\n"
    )
    msg = parse_message(data)
    assert [v.host for v in msg.vias] == ["p1.example.com", "p2.example.com", "a.example.com"]
    contacts = msg.contacts
    assert [c.display_name for c in contacts] == ["Doe, John", None]
    assert contacts[0].uri == "sip:jd,x@example.com"
    assert contacts[0].param("q") == "0.5"
    assert msg.headers.get_all("Allow") == ["MESSAGE", "OPTIONS", "INVITE"]


def test_authorization_and_date_headers_are_never_split() -> None:
    data = crlf(
        "MESSAGE sip:bob@example.org SIP/2.0\n"
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK3\n"
        'Authorization: Digest username="alice", realm="example.com", nonce="n"\n'
        "Date: Sat, 13 Nov 2010 23:29:00 GMT\n"
        "From: <sip:alice@example.com>;tag=1\n"
        "To: sip:bob@example.org\n"
        "Call-ID: nosplit\n"
        "CSeq: 1 MESSAGE\n"
        "Content-Length: 0\n"
        "\n"
    )
    msg = parse_message(data)
    assert msg.headers.get_all("Authorization") == [
        'Digest username="alice", realm="example.com", nonce="n"'
    ]
    assert msg.headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_leading_crlf_and_bare_lf_line_ends_are_accepted() -> None:
    data = b"\r\n\r\n" + BASIC.replace(b"\r\n", b"\n")
    msg = parse_message(data)
    assert msg.body == b"hello"
    assert msg.to_bytes() == BASIC


def test_body_is_exact_bytes_and_length_counts_bytes_not_characters() -> None:
    body = "Grüße ✓".encode()
    req = SipRequest(
        "MESSAGE",
        "sip:bob@example.org",
        [
            ("Via", "SIP/2.0/TCP a.example.com;branch=z9hG4bKu"),
            ("From", "<sip:alice@example.com>;tag=1"),
            ("To", "<sip:bob@example.org>"),
            ("Call-ID", "utf8"),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", "text/plain;charset=utf-8"),
        ],
        body,
    )
    wire = req.to_bytes()
    assert wire.endswith(b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert parse_message(wire).body == body


def test_serializer_corrects_a_wrong_content_length() -> None:
    req = parse_message(BASIC)
    assert isinstance(req, SipRequest)
    req.body = b"longer body"
    assert b"Content-Length: 11\r\n" in req.to_bytes()
    assert req.to_bytes().count(b"Content-Length") == 1


def test_extra_bytes_after_content_length_are_dropped() -> None:
    assert parse_message(BASIC + b"garbage").body == b"hello"


def test_missing_content_length_on_datagram_takes_the_rest() -> None:
    data = BASIC.replace(b"Content-Length: 5\r\n", b"")
    assert parse_message(data).body == b"hello"


def test_utf8_header_values_round_trip() -> None:
    data = BASIC.replace(b'"Alice"', '"Alïce ✓"'.encode())
    msg = parse_message(data)
    assert msg.from_address.display_name == "Alïce ✓"
    assert msg.to_bytes() == data


# -- malformed input ---------------------------------------------------------------------


def _replace(old: bytes, new: bytes) -> bytes:
    assert old in BASIC
    return BASIC.replace(old, new)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "empty"),
        (b"MESSAGE sip:bob@example.org SIP/2.0\r\nVia: x", "no empty line"),
        (_replace(b"SIP/2.0\r\nVia", b"SIP/7.0\r\nVia"), "version"),
        (_replace(b"MESSAGE sip:bob", b"MESSAGE  sip:bob"), "start line"),
        (_replace(b"MESSAGE sip:bob", b"MESS@GE sip:bob"), "not a token"),
        (_replace(b"Content-Length: 5", b"Content-Length: 50"), "Content-Length says 50"),
        (_replace(b"Content-Length: 5", b"Content-Length: five"), "Content-Length"),
        (_replace(b"CSeq: 1 MESSAGE", b"CSeq: 1 INVITE"), "does not match"),
        (_replace(b"CSeq: 1 MESSAGE", b"CSeq: 99999999999 MESSAGE"), "CSeq"),
        (_replace(b"Call-ID: a84b4c76e66710@pc33.example.com\r\n", b""), "missing Call-ID"),
        (_replace(b"To: <sip:bob@example.org>", b"To: <sip:bob@example.org"), "address"),
        (_replace(b"Max-Forwards: 70", b"Max-Forwards: seventy"), "Max-Forwards"),
        (_replace(b"Max-Forwards: 70", b"Max-Forwards 70"), "malformed header line"),
        (_replace(b"Max-Forwards: 70", b"Max-Forwards: 7\x000"), "control character"),
        (_replace(b"Max-Forwards: 70", b"Max-Forwards: \xff"), "not UTF-8"),
        (_replace(b"sip:bob@example.org SIP", b"sip:bob@ SIP"), "Request-URI"),
        (
            _replace(b"To: <sip:bob@example.org>", b"To: <sip:bob@example.org>\r\nTo: <sip:c@d.x>"),
            "more than one To",
        ),
        (_replace(b";rport", b";rport=abc"), "rport"),
        (b"SIP/2.0 999 Huh\r\n\r\n", "status code"),
    ],
)
def test_malformed_message_raises_parse_error_saying_what_is_wrong(
    data: bytes, fragment: str
) -> None:
    with pytest.raises(SipParseError, match=fragment):
        parse_message(data)


def test_header_section_over_64_kib_is_rejected() -> None:
    big = BASIC.replace(b"Max-Forwards: 70", b"X-Big: " + b"a" * (64 * 1024))
    with pytest.raises(SipParseError, match="exceeds"):
        parse_message(big)


def test_body_over_the_configured_limit_is_rejected() -> None:
    with pytest.raises(SipParseError, match="exceeds the limit"):
        parse_message(BASIC, max_body_bytes=4)
    assert parse_message(BASIC, max_body_bytes=5).body == b"hello"


def test_parse_error_carries_partial_request_when_answerable() -> None:
    bad = _replace(b"CSeq: 1 MESSAGE", b"CSeq: 1 INVITE")
    with pytest.raises(SipParseError) as info:
        parse_message(bad)
    partial = info.value.partial_request
    assert isinstance(partial, SipRequest)
    assert partial.call_id == "a84b4c76e66710@pc33.example.com"


def test_best_effort_400_answers_a_readable_malformed_request() -> None:
    bad = _replace(b"Content-Length: 5", b"Content-Length: 50")
    wire = best_effort_response_400(bad, to_tag="t400")
    assert wire is not None
    resp = parse_message(wire)
    assert isinstance(resp, SipResponse)
    assert resp.status == 400
    assert resp.headers.get("Via") == (
        "SIP/2.0/UDP alice-pc.example.com:5060;branch=z9hG4bK776asdhds;rport"
    )
    assert resp.to_address.tag == "t400"
    assert resp.cseq == CSeq(1, "MESSAGE")


def test_best_effort_400_is_none_without_via_or_for_good_messages_and_acks() -> None:
    assert best_effort_response_400(BASIC) is None
    no_via = _replace(
        b"Via: SIP/2.0/UDP alice-pc.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n", b""
    )
    assert best_effort_response_400(no_via) is None
    ack = BASIC.replace(b"MESSAGE", b"ACK").replace(b"Content-Length: 5", b"Content-Length: 9")
    assert best_effort_response_400(ack) is None
    assert best_effort_response_400(b"\x00garbage") is None


# -- building ----------------------------------------------------------------------------


def test_make_response_copies_via_from_to_call_id_cseq_and_adds_to_tag() -> None:
    req = parse_message(BASIC)
    assert isinstance(req, SipRequest)
    resp = req.make_response(200, to_tag="abc", headers=[("Server", "test")])
    assert resp.reason == "OK"
    assert [name for name, _ in resp.headers] == ["Via", "From", "To", "Call-ID", "CSeq", "Server"]
    assert resp.headers.get("Via") == req.headers.get("Via")
    assert resp.headers.get("From") == req.headers.get("From")
    assert resp.to_address.tag == "abc"
    assert resp.body == b""


def test_make_response_100_adds_no_to_tag_and_copies_timestamp() -> None:
    req = parse_message(BASIC.replace(b"Max-Forwards: 70", b"Timestamp: 54"))
    assert isinstance(req, SipRequest)
    resp = req.make_response(100)
    assert resp.to_address.tag is None
    assert resp.headers.get("Timestamp") == "54"


def test_make_response_keeps_an_existing_to_tag() -> None:
    req = parse_message(
        BASIC.replace(b"To: <sip:bob@example.org>", b"To: <sip:bob@example.org>;tag=x")
    )
    assert isinstance(req, SipRequest)
    assert req.make_response(486).to_address.tag == "x"


def test_make_response_draws_the_tag_from_the_given_rng() -> None:
    req = parse_message(BASIC)
    assert isinstance(req, SipRequest)
    a = req.make_response(200, rng=random.Random(7)).to_address.tag
    b = req.make_response(200, rng=random.Random(7)).to_address.tag
    assert a == b and a


def test_make_response_of_493_with_body() -> None:
    req = parse_message(BASIC)
    assert isinstance(req, SipRequest)
    resp = req.make_response(
        493,
        headers={"Content-Type": "application/pkcs7-mime; smime-type=certs-only"},
        body=b"\x30\x00",
    )
    assert resp.reason == "Undecipherable"
    assert parse_message(resp.to_bytes()).body == b"\x30\x00"


def test_request_accepts_sip_uri_object() -> None:
    from messenger.sip.uri import SipUri

    req = SipRequest("OPTIONS", SipUri.parse("sip:bob@example.org"))
    assert req.uri == "sip:bob@example.org"


def test_headers_reject_crlf_injection() -> None:
    headers = Headers()
    with pytest.raises(ValueError):
        headers.add("Subject", "hi\r\nVia: evil")
    with pytest.raises(ValueError):
        headers.add("Bad Name", "x")


def test_headers_multidict_keeps_order_and_case() -> None:
    headers = Headers([("via", "a"), ("X-A", "1"), ("Via", "b")])
    assert headers.get_all("VIA") == ["a", "b"]
    headers.prepend("Via", "top")
    assert list(headers) == [("Via", "top"), ("via", "a"), ("X-A", "1"), ("Via", "b")]
    headers.set("x-a", "2")
    assert headers.get("X-A") == "2"
    assert headers.remove("via") == 3
    assert list(headers) == [("X-A", "2")]
    assert "x-a" in headers and "via" not in headers


# -- Via, Address, helpers ---------------------------------------------------------------


def test_via_rport_empty_on_request_filled_on_response() -> None:
    via = Via("UDP", "192.0.2.10", 5060, (("branch", "z9hG4bKr"), ("rport", None)))
    assert str(via) == "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKr;rport"
    stamped = via.stamped("198.51.100.7", 40000)
    assert str(stamped) == (
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKr;rport=40000;received=198.51.100.7"
    )
    assert stamped.rport == 40000


def test_via_received_added_only_when_source_differs_without_rport() -> None:
    via = Via.parse("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKr")
    assert via.stamped("192.0.2.10", 5060) == via
    assert via.stamped("192.0.2.99", 5060).received == "192.0.2.99"


@pytest.mark.parametrize(
    "bad",
    ["", "SIP/2.0/UDP", "SIP/2.0 host", "SIP/2.0/UDP host:port", "SIP/2.0/UDP [::1;branch=x"],
)
def test_malformed_via_raises(bad: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(bad)


def test_address_serializes_in_name_addr_form() -> None:
    addr = Address.parse("sip:alice@example.com;tag=1")
    assert str(addr) == "<sip:alice@example.com>;tag=1"
    named = Address.from_uri("sip:a@b.example", "Alice Smith")
    assert str(named) == "Alice Smith <sip:a@b.example>"
    assert str(Address.from_uri("sip:a@b.example", 'A "q"')) == '"A \\"q\\"" <sip:a@b.example>'


def test_address_accepts_non_sip_uris() -> None:
    addr = Address.parse("<tel:+1-212-555-0101>;tag=3")
    assert addr.uri == "tel:+1-212-555-0101"
    assert addr.with_tag("4").tag == "4"


def test_split_header_values_empty_value() -> None:
    assert split_header_values("") == [""]
    assert split_header_values("a, ,b") == ["a", "b"]


# -- more RFC 4475-style messages --------------------------------------------------------


def _request(start: str, *extra: str, method: str = "MESSAGE", body: str = "") -> bytes:
    lines = [
        start,
        "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bK23",
        "From: <sip:caller@example.com>;tag=323",
        "To: <sip:callee@example.net>",
        "Call-ID: t4475@host1",
        f"CSeq: 8 {method}",
        *extra,
        f"Content-Length: {len(body.encode())}",
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


def test_unusual_method_token_is_accepted() -> None:
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    uri = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
        ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    msg = parse_message(_request(f"{method} {uri} SIP/2.0", method=method))
    assert isinstance(msg, SipRequest)
    assert msg.method == method
    assert msg.sip_uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"


def test_display_name_without_space_before_angle_bracket() -> None:
    data = _request("MESSAGE sip:callee@example.net SIP/2.0").replace(
        b"From: <sip:caller@example.com>", b"From: caller<sip:caller@example.com>"
    )
    assert parse_message(data).from_address.display_name == "caller"


def test_escaped_nul_in_user_part_is_kept() -> None:
    msg = parse_message(_request("MESSAGE sip:null-%00-null@example.com SIP/2.0"))
    assert isinstance(msg, SipRequest)
    assert msg.sip_uri.user == "null-\x00-null"
    assert str(msg.sip_uri) == "sip:null-%00-null@example.com"


def test_unusual_reason_phrase_is_kept() -> None:
    reason = "= 2**3 * 5**2 но сто девяносто девять - простое"
    data = (
        f"SIP/2.0 200 {reason}\r\n"
        "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bK23\r\n"
        "From: <sip:caller@example.com>;tag=323\r\nTo: <sip:callee@example.net>;tag=1\r\n"
        "Call-ID: t4475@host1\r\nCSeq: 8 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    assert msg.reason == reason
    assert msg.to_bytes() == data


def test_non_sip_request_uri_scheme_is_accepted_by_the_parser() -> None:
    msg = parse_message(_request("MESSAGE im:callee@example.net SIP/2.0"))
    assert isinstance(msg, SipRequest)
    assert msg.uri == "im:callee@example.net"


def test_multipart_body_is_kept_byte_for_byte() -> None:
    body = (
        "--boundary\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        "--boundary\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--boundary--\r\n"
    )
    data = _request(
        "MESSAGE sip:callee@example.net SIP/2.0",
        'Content-Type: multipart/mixed;boundary="boundary"',
        body=body,
    )
    msg = parse_message(data)
    assert msg.body == body.encode()
    assert msg.to_bytes() == data
