"""Property tests: malformed input of any shape ends in a `SipError`, never a crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.sip.address import Address
from messenger.sip.digest import parse_challenges, parse_credentials
from messenger.sip.errors import SipError
from messenger.sip.framing import StreamFramer
from messenger.sip.headers import Via
from messenger.sip.message import (
    SipRequest,
    SipResponse,
    best_effort_response_400,
    parse_message,
)
from messenger.sip.uri import uri_equal

VALID = [
    (
        b"MESSAGE sip:bob@example.org SIP/2.0\r\n"
        b"v: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKx;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b'f: "A \\"b\\"" <sip:%61lice@example.com;transport=tcp>;tag=1\r\n'
        b"t: sip:bob@example.org\r\n"
        b"i: fuzz@h\r\n"
        b"CSeq: 1 MESSAGE\r\n"
        b"Subject: folded\r\n  line\r\n"
        b'Contact: <sip:a@192.0.2.1>;q=0.5, "x, y" <sip:b@h.example>\r\n'
        b"c: text/plain\r\n"
        b"l: 5\r\n"
        b"\r\n"
        b"hello"
    ),
    (
        b"SIP/2.0 401 Unauthorized\r\n"
        b"Via: SIP/2.0/TCP h.example;branch=z9hG4bKy;received=192.0.2.9;rport=5070\r\n"
        b"From: <sip:alice@example.com>;tag=1\r\n"
        b"To: <sip:alice@example.com>;tag=2\r\n"
        b"Call-ID: r@h\r\n"
        b"CSeq: 2 REGISTER\r\n"
        b'WWW-Authenticate: Digest realm="example.com", nonce="abc", qop="auth"\r\n'
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
]


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if not data:
            break
        pos = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            chunk = draw(
                st.one_of(
                    st.sampled_from([b"\r\n", b" ", b",", b";", b":", b"<", b">", b'"', b"%"]),
                    st.binary(min_size=1, max_size=4),
                )
            )
            data[pos:pos] = chunk
        else:
            del data[pos : pos + draw(st.integers(min_value=1, max_value=8))]
    return bytes(data)


def parse_message_or_none(data: bytes) -> SipRequest | SipResponse | None:
    try:
        return parse_message(data)
    except SipError:
        return None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_raise_sip_error(data: bytes) -> None:
    parse_message_or_none(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_mutated_messages_parse_or_raise_and_serialize_to_a_fixed_point(data: bytes) -> None:
    msg = parse_message_or_none(data)
    if msg is not None:
        wire = msg.to_bytes()
        assert parse_message(wire).to_bytes() == wire


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_best_effort_400_is_none_or_a_framed_400(data: bytes) -> None:
    answer = best_effort_response_400(data)
    if answer is not None:
        # From/To are copied as received, so the 400 may carry their flaws; it is framed
        assert answer.startswith(b"SIP/2.0 400 Bad Request\r\nVia: ")
        assert answer.endswith(b"\r\nContent-Length: 0\r\n\r\n")
        assert StreamFramer().feed(answer) == [answer]


def _frame(chunks: list[bytes]) -> list[bytes] | None:
    framer = StreamFramer()
    out: list[bytes] = []
    try:
        for chunk in chunks:
            out += framer.feed(chunk)
    except SipError:
        return None
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_stream_framer_split_at_every_position_agrees_with_one_feed(data: bytes) -> None:
    stream = b"\r\n\r\n" + data + b"\r\n" + VALID[0]
    whole = _frame([stream])
    for cut in range(1, len(stream)):
        assert _frame([stream[:cut], stream[cut:]]) == whole
    for message in whole or []:
        parse_message_or_none(message)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_stream_framer_on_arbitrary_bytes_raises_only_sip_errors(data: bytes, step: int) -> None:
    _frame([data[i : i + step] for i in range(0, len(data), step)])


_TEXT = st.text(
    alphabet=st.sampled_from([*'sip:@<>";,= \t\\abcDigest%[]?&', "\u00e9", "\x00", "\r"]),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_header_value_parsers_raise_only_sip_errors(text: str) -> None:
    for parse in (Address.parse, Via.parse, parse_challenges, parse_credentials):
        try:
            parse(text)
        except SipError:
            pass
    assert uri_equal(text, text) in (True, False)
