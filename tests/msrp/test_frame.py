"""MSRP frames (RFC 4975): the RFC 8591 vectors, framing edge cases, limits and speed."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from messenger.msrp.errors import MsrpByteRangeError, MsrpError, MsrpParseError
from messenger.msrp.frame import (
    ByteRange,
    FrameParser,
    MsrpRequest,
    MsrpResponse,
    Status,
    parse_frame,
    response_to,
)
from messenger.msrp.uri import MsrpUri

ALICE = "msrp://alicepc.example.com:7777/iau39soe2843z;tcp"
BOB = "msrp://bobpc.example.org:8888/9di4eae923wzd;tcp"
PATHS = (("To-Path", ALICE), ("From-Path", BOB))


def feed_in_pieces(data: bytes, cuts: list[int], **limits: int) -> list:
    parser = FrameParser(**limits)
    frames = []
    last = 0
    for cut in [*cuts, len(data)]:
        frames += parser.feed(data[last:cut])
        last = cut
    assert parser.buffered == 0
    return frames


def send(tid: str, body: bytes, *headers: tuple[str, str], flag: str = "$") -> bytes:
    lines = [f"MSRP {tid} SEND", f"To-Path: {ALICE}", f"From-Path: {BOB}"]
    lines += [f"{n}: {v}" for n, v in headers]
    lines.append("Content-Type: text/plain")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + body + f"\r\n-------{tid}{flag}\r\n".encode()


# -- the RFC 8591 section 10 vectors ------------------------------------------------------


def test_fig3_chunk_parses_with_the_documented_headers(vectors: Path) -> None:
    data = (vectors / "fig3-chunk.msrp").read_bytes()
    assert hashlib.sha256(data).hexdigest() == (
        "f414281d8071dc889038506a93a2458c69998bfbf5aa4b815ec8ece6f8425c20"
    )
    frame = parse_frame(data)
    assert isinstance(frame, MsrpRequest)
    assert (frame.method, frame.transaction_id, frame.continuation) == ("SEND", "dsdfoe38sd", "$")
    assert frame.headers == (
        ("To-Path", ALICE),
        ("From-Path", BOB),
        ("Message-ID", "456so39s"),
        ("Byte-Range", "1-1940/1940"),
        ("Content-Disposition", 'attachment; filename="smime.p7m"'),
        (
            "Content-Type",
            'application/pkcs7-mime; smime-type=auth-enveloped-data; name="smime.p7m"',
        ),
    )
    assert frame.byte_range == ByteRange(1, 1940, 1940)
    assert frame.message_id == "456so39s"
    assert frame.body == (vectors / "fig3-authenveloped.der").read_bytes()
    assert frame.to_path == (MsrpUri.parse(ALICE),)
    assert frame.from_path[0].port == 8888
    assert frame.to_bytes() == data


def test_fig4_chunks_parse_with_the_documented_headers(vectors: Path) -> None:
    one = parse_frame((vectors / "fig4-chunk1.msrp").read_bytes())
    two = parse_frame((vectors / "fig4-chunk2.msrp").read_bytes())
    assert isinstance(one, MsrpRequest) and isinstance(two, MsrpRequest)
    assert (one.transaction_id, one.continuation, len(one.body)) == ("d93kswow", "+", 960)
    assert (two.transaction_id, two.continuation, len(two.body)) == ("op2nc9a", "$", 980)
    assert one.message_id == two.message_id == "12339sdqwer"
    assert one.byte_range == ByteRange(1, 960, 1940)
    assert two.byte_range == ByteRange(961, 1940, 1940)
    assert "smime-type=enveloped-data" in (one.content_type or "")
    # As printed in the RFC, chunk 2 has other paths than chunk 1 (see the README).
    assert str(two.get("To-Path")) == "msrp://alicepc.example.com:8888/9di4eae923wzd;tcp"
    assert str(two.get("From-Path")) == "msrp://bobpc.example.org:7654/iau39soe2843z;tcp"
    der = (vectors / "fig3-authenveloped.der").read_bytes()
    assert one.body + two.body == der


@pytest.mark.parametrize("name", ["fig3-chunk.msrp", "fig4-chunk1.msrp", "fig4-chunk2.msrp"])
def test_vectors_parse_the_same_fed_whole_or_byte_by_byte(vectors: Path, name: str) -> None:
    data = (vectors / name).read_bytes()
    whole = feed_in_pieces(data, [])
    assert feed_in_pieces(data, list(range(1, len(data)))) == whole
    assert len(whole) == 1 and whole[0].to_bytes() == data


def test_fig4_chunk1_split_at_every_position(vectors: Path) -> None:
    data = (vectors / "fig4-chunk1.msrp").read_bytes()
    expected = parse_frame(data)
    for cut in range(len(data) + 1):
        assert feed_in_pieces(data, [cut]) == [expected], cut


def test_the_three_vectors_back_to_back_in_one_stream(vectors: Path) -> None:
    names = ["fig4-chunk1.msrp", "fig3-chunk.msrp", "fig4-chunk2.msrp"]
    stream = b"".join((vectors / n).read_bytes() for n in names)
    frames = feed_in_pieces(stream, list(range(7, len(stream), 97)))
    assert [f.transaction_id for f in frames] == ["d93kswow", "dsdfoe38sd", "op2nc9a"]


# -- where a body ends --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"x-------tid1$\r\nmore",  # same transaction id, not preceded by CRLF
        b"-------tid1$\r\nat the very start",  # the blank line's CRLF is not body
        b"a\r\n-------other$\r\nb",  # another transaction's end-line
        b"a\r\n-------tid1X$\r\nb",  # a longer transaction id
        b"a\r\n-------tid1*\r\nb",  # not a continuation flag
        b"a\r\n-------tid1$ \r\nb",  # flag not followed by CRLF
        b"a\r\n-------tid1$\r",  # the framing CRLF follows: "$\r\r\n" is no end-line
        b"\r\n\r\n-------",
        b"",
    ],
)
def test_look_alike_end_lines_are_body_bytes(body: bytes) -> None:
    data = send("tid1", body)
    for cuts in ([], list(range(1, len(data)))):
        (frame,) = feed_in_pieces(data, cuts)
        assert frame.body == body


@pytest.mark.parametrize("body", [b"a\r\n-------tid1+\r\nb", b"a\r\n-------tid1#"])
def test_a_body_holding_its_own_end_line_is_refused_on_send(body: bytes) -> None:
    request = MsrpRequest("SEND", "tid1", (*PATHS, ("Content-Type", "t/p")), body)
    with pytest.raises(MsrpError, match="end-line"):
        request.to_bytes()


def test_frames_without_body_and_responses() -> None:
    report = MsrpRequest(
        "REPORT",
        "rep0001",
        (*PATHS, ("Message-ID", "m1"), ("Byte-Range", "1-10/10"), ("Status", "000 200 OK")),
    )
    bodiless = MsrpRequest("SEND", "bodyless", (*PATHS, ("Message-ID", "m2")))
    ok = MsrpResponse("abcd1234", 200, "OK", PATHS)
    too_large = MsrpResponse("abcd1235", 413, None, PATHS)
    assert report.to_bytes() == (
        b"MSRP rep0001 REPORT\r\nTo-Path: "
        + ALICE.encode()
        + b"\r\nFrom-Path: "
        + BOB.encode()
        + b"\r\nMessage-ID: m1\r\nByte-Range: 1-10/10\r\nStatus: 000 200 OK\r\n-------rep0001$\r\n"
    )
    assert too_large.to_bytes().startswith(b"MSRP abcd1235 413\r\n")
    stream = b"".join(f.to_bytes() for f in (report, bodiless, ok, too_large))
    assert feed_in_pieces(stream, list(range(1, len(stream)))) == [report, bodiless, ok, too_large]
    assert report.status == Status(0, 200, "OK")
    assert not bodiless.has_body_section and bodiless.content_type is None


def test_empty_body_section_is_kept_distinct_from_no_body() -> None:
    empty = MsrpRequest("SEND", "tid1", (*PATHS, ("Content-Type", "text/plain")), b"")
    assert empty.to_bytes().endswith(b"text/plain\r\n\r\n\r\n-------tid1$\r\n")
    assert parse_frame(empty.to_bytes()) == empty


def test_response_to_swaps_the_hops() -> None:
    request = MsrpRequest(
        "SEND", "tid1", (("To-Path", f"{ALICE} {BOB}"), ("From-Path", f"{BOB} {ALICE}"))
    )
    response = response_to(request, 200, "OK")
    assert response.headers == (("To-Path", BOB), ("From-Path", ALICE))
    assert response.to_bytes().startswith(b"MSRP tid1 200 OK\r\n")


# -- what construction refuses ------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("SEND", "ab", PATHS),  # transaction id too short
        ("SEND", "-abc", PATHS),
        ("SEND", "a" * 33, PATHS),
        ("send", "tid1", PATHS),
        ("SEND", "tid1", PATHS[::-1]),
        ("SEND", "tid1", PATHS[:1]),
        ("SEND", "tid1", (*PATHS, ("Bad Name", "x"))),
        ("SEND", "tid1", (*PATHS, ("X", "a\r\nInjected: 1"))),
        ("SEND", "tid1", (*PATHS, ("Content-Type", "a/b"), ("Message-ID", "m"))),
        ("SEND", "tid1", (*PATHS, ("Content-Type", "a/b"), ("content-type", "a/b"))),
        ("SEND", "tid1", PATHS, b"body without content type"),
        ("SEND", "tid1", PATHS, b"", "*"),
    ],
)
def test_requests_that_a_sender_may_not_write_are_refused(args: tuple) -> None:
    with pytest.raises(MsrpError):
        MsrpRequest(*args)


# -- malformed and oversized input --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\n", 400),
        (b"MSRP ab SEND\r\n", 400),
        (b"MSRP abcd send\r\n", 400),
        (b"MSRP abcd 20 OK\r\n", 400),
        (b"MSRP abcd  SEND\r\n", 400),
        (b"MSRP abcd SEND\nTo-Path: x\r\n", 400),
        (b"MSRP abcd SEND\r\nTo-Path:" + ALICE.encode() + b"\r\n", 400),
        (b"MSRP abcd SEND\r\nFrom-Path: " + BOB.encode() + b"\r\n-------abcd$\r\n", 400),
        (b"MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abce$\r\n", 400),
        (b"MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd*\r\n", 400),
        (b"MSRP abcd 200 OK\r\nTo-Path: a\r\nFrom-Path: b\r\n\r\n", 400),
        (b"MSRP abcd 200 OK\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd+\r\n", 400),
        (b"MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n\r\nxx\r\n-------abcd$\r\n", 400),
        (b"MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nX: \xff\r\n", 400),
        (
            b"MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nContent-Type: t/p\r\n"
            b"-------abcd$\r\n",
            400,
        ),
    ],
)
def test_malformed_frames_raise_400(data: bytes, status: int) -> None:
    with pytest.raises(MsrpParseError) as caught:
        FrameParser().feed(data)
    assert caught.value.status_code == status


def test_header_block_is_bounded() -> None:
    parser = FrameParser(max_header_size=1024)
    parser.feed(b"MSRP abcd SEND\r\nTo-Path: " + b"a" * 900)
    with pytest.raises(MsrpParseError) as caught:
        parser.feed(b"a" * 200)  # still no end of line
    assert caught.value.status_code == 413
    assert caught.value.transaction_id == "abcd"
    many = b"MSRP abcd SEND\r\n" + b"X-Pad: 0123456789\r\n" * 100
    with pytest.raises(MsrpParseError) as caught:
        FrameParser(max_header_size=1024).feed(many)
    assert caught.value.status_code == 413


def test_chunk_body_is_bounded_whether_or_not_the_end_line_has_arrived() -> None:
    parser = FrameParser(max_body_size=1000)
    parser.feed(send("tid1", b"")[:-16])  # headers and blank line
    with pytest.raises(MsrpParseError) as caught:
        for _ in range(20):
            parser.feed(b"z" * 100)
    assert caught.value.status_code == 413 and caught.value.transaction_id == "tid1"
    with pytest.raises(MsrpParseError) as caught:
        FrameParser(max_body_size=1000).feed(send("tid1", b"z" * 1001))
    assert caught.value.status_code == 413
    assert FrameParser(max_body_size=1000).feed(send("tid1", b"z" * 1000))[0].body == b"z" * 1000


def test_an_error_keeps_the_frames_before_it_and_the_parser_stays_failed() -> None:
    good = send("tid1", b"hello")
    parser = FrameParser()
    with pytest.raises(MsrpParseError) as caught:
        parser.feed(good + b"garbage\r\n")
    assert [f.body for f in caught.value.frames] == [b"hello"]  # type: ignore[attr-defined]
    with pytest.raises(MsrpParseError, match="failed earlier"):
        parser.feed(good)


def test_no_allocation_follows_a_claimed_byte_range() -> None:
    frame = parse_frame(send("tid1", b"abc", ("Byte-Range", "1-3/999999999999999999")))
    assert isinstance(frame, MsrpRequest)
    assert frame.byte_range == ByteRange(1, 3, 999999999999999999)


# -- header values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1-960/1940", ByteRange(1, 960, 1940)),
        ("961-1940/1940", ByteRange(961, 1940, 1940)),
        ("1-*/*", ByteRange(1, None, None)),
        ("1-0/0", ByteRange(1, 0, 0)),
        ("5-*/10", ByteRange(5, None, 10)),
    ],
)
def test_byte_range_round_trips(text: str, value: ByteRange) -> None:
    assert ByteRange.parse(text) == value
    assert str(value) == text


@pytest.mark.parametrize(
    "text",
    [
        "0-1/2",
        "5-3/10",
        "1-11/10",
        "12-*/10",
        "a-b/c",
        "1-2",
        "1 -2/3",
        "\uff11-2/3",
        "1-2/3 ",
        "1" * 19 + "-2/3",
        "-1-2/3",
    ],
)
def test_bad_byte_ranges_raise_400(text: str) -> None:
    with pytest.raises(MsrpByteRangeError) as caught:
        ByteRange.parse(text)
    assert caught.value.status_code == 400


def test_status_header() -> None:
    assert Status.parse("000 413 Message too large") == Status(0, 413, "Message too large")
    assert str(Status(0, 200)) == "000 200"
    assert Status.parse("000 200  ").comment == " "  # utf8text may be blank
    for bad in ["200", "000 20", "000 200\t", "000\t200", "0 200", "000 200 a\x00"]:
        with pytest.raises(MsrpParseError):
            Status.parse(bad)


# -- speed --------------------------------------------------------------------------------


def test_a_50_mb_body_in_64_kib_pieces_parses_in_linear_time() -> None:
    body = os.urandom(50 * 1024 * 1024)
    total = len(body)
    request = MsrpRequest(
        "SEND",
        "big00001",
        (
            *PATHS,
            ("Message-ID", "m"),
            ("Byte-Range", f"1-{total}/{total}"),
            ("Content-Type", "a/b"),
        ),
        body,
    )
    data = request.to_bytes()
    parser = FrameParser(max_body_size=total)
    view = memoryview(data)
    started = time.perf_counter()
    frames = []
    for i in range(0, len(data), 64 * 1024):
        frames += parser.feed(view[i : i + 64 * 1024])
    elapsed = time.perf_counter() - started
    assert len(frames) == 1 and frames[0].body == body
    assert elapsed < 5.0, f"{elapsed:.2f} s: the parser rescans what it searched already"


def test_a_body_fed_one_byte_at_a_time_is_not_rescanned() -> None:
    data = send("tid1", b"\r\n-------" * 10_000)  # 90 kB of near-misses
    parser = FrameParser()
    started = time.perf_counter()
    frames = []
    for i in range(len(data)):
        frames += parser.feed(data[i : i + 1])
    assert len(frames) == 1
    assert time.perf_counter() - started < 5.0
