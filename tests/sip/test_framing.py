"""Stream framing by Content-Length and CRLF keep-alives (RFC 3261 18.3, RFC 5626 4.4.1)."""

from __future__ import annotations

import pytest

from messenger.sip.errors import SipParseError
from messenger.sip.framing import KEEPALIVE_PING, StreamFramer, is_keepalive
from messenger.sip.message import parse_message

MSG = (
    b"MESSAGE sip:bob@example.org SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP a.example.com;branch=z9hG4bKf\r\n"
    b"From: <sip:alice@example.com>;tag=1\r\n"
    b"To: <sip:bob@example.org>\r\n"
    b"Call-ID: frame\r\n"
    b"CSeq: 1 MESSAGE\r\n"
    b"Content-Length: 10\r\n"
    b"\r\n"
    b"0123456789"
)


def test_two_messages_in_one_chunk_are_split() -> None:
    assert StreamFramer().feed(MSG + MSG) == [MSG, MSG]


def test_message_split_at_every_position_reassembles() -> None:
    for cut in range(1, len(MSG)):
        framer = StreamFramer()
        assert framer.feed(MSG[:cut]) == []
        assert framer.feed(MSG[cut:]) == [MSG]
        assert framer.buffered == 0


def test_message_fed_byte_by_byte() -> None:
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(len(MSG)):
        out += framer.feed(MSG[i : i + 1])
    assert out == [MSG]


def test_rfc8591_vector_frames_on_a_stream(vectors_dir) -> None:
    data = (vectors_dir / "fig1-message.sip").read_bytes()
    framer = StreamFramer()
    messages = framer.feed(data[:500]) + framer.feed(data[500:] + data)
    assert messages == [data, data]
    assert parse_message(messages[0]).to_bytes() == data


def test_double_crlf_ping_is_counted_and_skipped() -> None:
    framer = StreamFramer()
    assert framer.feed(KEEPALIVE_PING) == []
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n" + MSG + b"\r\n\r\n") == [MSG]
    assert framer.take_pings() == 3
    assert framer.take_pings() == 0


def test_single_crlf_pong_is_not_a_ping() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n" + MSG) == [MSG]
    assert framer.take_pings() == 0


def test_compact_content_length_frames() -> None:
    msg = MSG.replace(b"Content-Length: 10", b"l:10")
    assert StreamFramer().feed(msg) == [msg]


def test_missing_content_length_on_a_stream_is_an_error() -> None:
    with pytest.raises(SipParseError, match="no Content-Length"):
        StreamFramer().feed(MSG.replace(b"Content-Length: 10\r\n", b""))


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x16\x03\x01\x02\x00", "does not start"),
        (b"hello world\r\n", "start line"),
        (MSG.replace(b"Content-Length: 10", b"Content-Length: ten"), "Content-Length"),
        (MSG.replace(b"Content-Length: 10", b"Content-Length: 10\r\nl: 11"), "conflicting"),
    ],
)
def test_garbage_raises_parse_error(data: bytes, fragment: str) -> None:
    with pytest.raises(SipParseError, match=fragment):
        StreamFramer().feed(data)


def test_oversized_header_section_is_refused_before_it_ends() -> None:
    framer = StreamFramer(max_header_bytes=1024)
    framer.feed(b"MESSAGE sip:bob@example.org SIP/2.0\r\n")
    with pytest.raises(SipParseError, match="exceeds"):
        for _ in range(100):
            framer.feed(b"X-Filler: " + b"a" * 50 + b"\r\n")


def test_oversized_body_is_refused_from_content_length() -> None:
    with pytest.raises(SipParseError, match="exceeds the limit"):
        StreamFramer(max_body_bytes=9).feed(MSG[:-10])


def test_a_failed_stream_stays_failed() -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError):
        framer.feed(b"\x00\x01")
    with pytest.raises(SipParseError, match="already failed"):
        framer.feed(MSG)


def test_is_keepalive() -> None:
    assert is_keepalive(b"\r\n\r\n")
    assert is_keepalive(b"\r\n")
    assert not is_keepalive(b"")
    assert not is_keepalive(MSG)
