"""Hostile input to the MSRP core: only `MsrpError` may come out, whatever the cuts."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.msrp.chunking import Reassembler
from messenger.msrp.errors import MsrpError, MsrpParseError
from messenger.msrp.frame import FrameParser, MsrpRequest
from messenger.msrp.uri import MsrpUri

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS = [
    b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n"
    b"From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\nMessage-ID: 87652491\r\n"
    b"Byte-Range: 1-25/50\r\nContent-Type: text/plain\r\n\r\nHey Bob, are you there?\r\n\r\n"
    b"-------a786hjs2+\r\n",
    b"MSRP a786hjs2 200 OK\r\nTo-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n"
    b"From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n-------a786hjs2$\r\n",
    b"MSRP dkei38sd REPORT\r\nTo-Path: msrp://a.example.com:1/s;tcp\r\n"
    b"From-Path: msrp://b.example.com:2/t;tcp\r\nMessage-ID: 12339sdqwer\r\n"
    b"Byte-Range: 1-106/106\r\nStatus: 000 200 OK\r\n-------dkei38sd$\r\n",
]


def outcome(data: bytes, cuts: list[int]) -> tuple[list, int | None]:
    """Frames produced and the status of the error (None if none) for data cut at cuts."""
    parser = FrameParser(max_header_size=4096, max_body_size=4096)
    frames: list = []
    last = 0
    try:
        for cut in [*sorted(cuts), len(data)]:
            frames += parser.feed(data[last:cut])
            last = cut
    except MsrpParseError as exc:
        return frames + list(exc.frames), exc.status_code
    return frames, None


def exercise(frames: list) -> None:
    """Touch what a session would read from a frame: parsing helpers may raise MsrpError."""
    reassembler = Reassembler(max_message_size=1 << 16)
    for frame in frames:
        assert FrameParser().feed(frame.to_bytes()) == [frame]
        for reader in ("to_path", "from_path", "byte_range", "status"):
            try:
                getattr(frame, reader, None)
            except MsrpError:
                pass
        if isinstance(frame, MsrpRequest):
            try:
                reassembler.add(frame)
            except MsrpError:
                pass


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=2))))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip" and pos < len(data):
            data[pos] = draw(st.sampled_from(b"\r\n -$+#*:/0\x00\xff"))
        elif action == "insert":
            data[pos:pos] = draw(
                st.sampled_from(
                    [
                        b"\r\n",
                        b"-------a786hjs2$\r\n",
                        b"\r\n\r\n",
                        b"-------",
                        b"Byte-Range: 1-*/*\r\n",
                        b"9",
                    ]
                )
            )
        else:
            del data[pos : pos + draw(st.integers(1, 12))]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_arbitrary_bytes_raise_only_msrp_errors_and_cuts_do_not_matter(data, cuts) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    whole = outcome(data, [])
    assert outcome(data, cuts) == whole
    exercise(whole[0])


@FUZZ
@given(mutated())
def test_mutated_frames_split_at_every_position_give_the_same_result(data: bytes) -> None:
    whole = outcome(data, [])
    for cut in range(len(data) + 1):
        assert outcome(data, [cut]) == whole, cut
    exercise(whole[0])


@FUZZ
@given(mutated(), st.data())
def test_mutated_frames_fed_in_many_pieces_give_the_same_result(data: bytes, more) -> None:
    cuts = more.draw(st.lists(st.integers(0, len(data)), max_size=40))
    assert outcome(data, cuts) == outcome(data, [])


@FUZZ
@given(st.text(max_size=80))
def test_arbitrary_uri_text_raises_only_msrp_errors(text: str) -> None:
    try:
        uri = MsrpUri.parse(text)
    except MsrpError:
        return
    assert MsrpUri.parse(str(uri)) == uri


@FUZZ
@given(
    st.from_regex(
        r"msrps?://[a-z0-9.%\[\]:@]{0,20}(/[A-Za-z0-9+=/]{0,8})?;[a-z]{0,4}(;[a-z=]{0,5})?",
        fullmatch=True,
    )
)
def test_uri_like_text_raises_only_msrp_errors_or_round_trips(text: str) -> None:
    try:
        uri = MsrpUri.parse(text)
    except MsrpError:
        return
    assert str(uri) == text and MsrpUri.parse(str(uri)) == uri
