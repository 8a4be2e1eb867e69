"""MSRP chunking and reassembly by Byte-Range (RFC 4975 sections 5.1 and 7.1)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from messenger.msrp.chunking import Reassembler, chunk_message
from messenger.msrp.errors import MsrpByteRangeError, MsrpError, MsrpParseError
from messenger.msrp.frame import ByteRange, MsrpRequest, parse_frame
from messenger.msrp.uri import MsrpUri

ALICE = "msrp://alicepc.example.com:7777/iau39soe2843z;tcp"
BOB = "msrp://bobpc.example.org:8888/9di4eae923wzd;tcp"
PATHS = (("To-Path", ALICE), ("From-Path", BOB))


def counter(prefix: str = "tx") -> object:
    numbers = itertools.count(1)
    return lambda: f"{prefix}{next(numbers):04d}"


def chunk(
    message_id: str,
    start: int,
    body: bytes,
    total: int | str,
    flag: str = "+",
    end: int | str | None = None,
) -> MsrpRequest:
    end = start + len(body) - 1 if end is None else end
    headers = (
        *PATHS,
        ("Message-ID", message_id),
        ("Byte-Range", f"{start}-{end}/{total}"),
        ("Content-Type", "application/octet-stream"),
    )
    return MsrpRequest("SEND", "tid" + str(random.randrange(10**6)), headers, body, flag)


def rechunk(body: bytes, pieces: list[tuple[int, int]], message_id: str = "m1") -> list:
    """Chunks covering ``[a, b)`` ranges of ``body`` (0-based), the last one flagged ``$``."""
    out = []
    for a, b in pieces:
        flag = "$" if b == len(body) else "+"
        out.append(chunk(message_id, a + 1, body[a:b], len(body), flag))
    return out


# -- chunk_message ------------------------------------------------------------------------


def test_chunk_message_reproduces_rfc8591_figure4_chunk1(vectors: Path) -> None:
    der = (vectors / "fig3-authenveloped.der").read_bytes()
    chunks = chunk_message(
        der,
        message_id="12339sdqwer",
        content_type='application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
        to_path=[MsrpUri.parse(ALICE)],
        from_path=BOB,
        chunk_size=960,
        transaction_id_factory=iter(["d93kswow", "second01", "third001"]).__next__,
        extra_headers=[("Content-Disposition", 'attachment; filename="smime.p7m"')],
    )
    assert next(chunks).to_bytes() == (vectors / "fig4-chunk1.msrp").read_bytes()
    # The RFC sent the other 980 bytes in one chunk; 960-byte chunks need two more.
    rest = list(chunks)
    assert [c.get("Byte-Range") for c in rest] == ["961-1920/1940", "1921-1940/1940"]
    assert [c.continuation for c in rest] == ["+", "$"]


def test_fig4_chunks_reassemble_byte_for_byte_in_either_order(vectors: Path) -> None:
    der = (vectors / "fig3-authenveloped.der").read_bytes()
    one = parse_frame((vectors / "fig4-chunk1.msrp").read_bytes())
    two = parse_frame((vectors / "fig4-chunk2.msrp").read_bytes())
    for order in ([one, two], [two, one]):
        reassembler = Reassembler()
        first = reassembler.add(order[0])  # type: ignore[arg-type]
        assert first.state == "partial" and first.total == 1940
        assert reassembler.progress("12339sdqwer") == (first.received, 1940)
        done = reassembler.add(order[1])  # type: ignore[arg-type]
        assert done.state == "complete" and done.body == der and done.received == 1940
        assert reassembler.pending() == ()


def test_chunk_message_headers_ranges_and_flags() -> None:
    body = bytes(range(256)) * 20  # 5120 bytes
    chunks = list(
        chunk_message(
            body,
            message_id="msg1",
            content_type="text/plain",
            to_path=ALICE,
            from_path=[BOB],
            transaction_id_factory=counter(),
            extra_headers=[("Success-Report", "yes"), ("Failure-Report", "yes")],
        )
    )
    assert [c.get("Byte-Range") for c in chunks] == [
        "1-2048/5120",
        "2049-4096/5120",
        "4097-5120/5120",
    ]
    assert [c.continuation for c in chunks] == ["+", "+", "$"]
    assert [name for name, _ in chunks[0].headers] == [
        "To-Path",
        "From-Path",
        "Message-ID",
        "Success-Report",
        "Failure-Report",
        "Byte-Range",
        "Content-Type",
    ]
    assert len({c.transaction_id for c in chunks}) == 3
    assert b"".join(c.body for c in chunks) == body


def test_an_empty_message_is_one_chunk_of_range_1_0_0() -> None:
    (only,) = chunk_message(
        b"", message_id="msg1", content_type="text/plain", to_path=ALICE, from_path=BOB
    )
    assert only.byte_range == ByteRange(1, 0, 0) and only.continuation == "$"
    result = Reassembler().add(parse_frame(only.to_bytes()))  # type: ignore[arg-type]
    assert result.state == "complete" and result.body == b""


def test_a_transaction_id_found_in_the_body_is_replaced() -> None:
    tids = iter(["clash001", "fresh001"])
    (only,) = chunk_message(
        b"x-------clash001$y",
        message_id="msg1",
        content_type="t/p",
        to_path=ALICE,
        from_path=BOB,
        transaction_id_factory=lambda: next(tids),
    )
    assert only.transaction_id == "fresh001"
    with pytest.raises(MsrpError, match="factory"):
        list(
            chunk_message(
                b"x-------clash001$y",
                message_id="msg1",
                content_type="t/p",
                to_path=ALICE,
                from_path=BOB,
                transaction_id_factory=lambda: "clash001",
            )
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chunk_size": 0},
        {"extra_headers": [("Content-Type", "x/y")]},
        {"to_path": []},
        {"message_id": "m1"},
    ],
)
def test_chunk_message_refuses_bad_arguments(kwargs: dict) -> None:
    args = {"message_id": "msg1", "content_type": "t/p", "to_path": ALICE, "from_path": BOB}
    args.update(kwargs)
    with pytest.raises(MsrpError):
        list(chunk_message(b"abc", **args))


# -- Reassembler --------------------------------------------------------------------------


def test_rechunked_reordered_and_overlapping_chunks_reassemble() -> None:
    body = random.Random(5).randbytes(10_000)
    pieces = [(0, 3000), (2500, 6000), (6000, 6001), (5990, 10_000), (100, 200), (7000, 9000)]
    for seed in range(20):
        order = rechunk(body, pieces)
        random.Random(seed).shuffle(order)
        reassembler = Reassembler()
        results = [reassembler.add(c) for c in order]
        states = [r.state for r in results]
        # Some pieces are redundant: the message completes when the last byte is covered,
        # and later copies are duplicates.
        done = states.index("complete")
        assert states == ["partial"] * done + ["complete"] + ["duplicate"] * (
            len(states) - done - 1
        )
        assert results[done].body == body
        received = [r.received for r in results[: done + 1]]
        assert received == sorted(received) and received[-1] == 10_000


def test_completion_waits_for_every_byte_even_after_the_last_chunk() -> None:
    body = b"abcdefghij"
    reassembler = Reassembler()
    assert reassembler.add(chunk("m1", 6, b"fghij", 10, "$")).state == "partial"
    assert reassembler.add(chunk("m1", 1, b"abc", 10)).state == "partial"
    assert reassembler.progress("m1") == (8, 10)
    done = reassembler.add(chunk("m1", 3, b"cde", 10))
    assert (done.state, done.body) == ("complete", body)


def test_several_messages_interleave_and_duplicates_after_completion_are_ignored() -> None:
    reassembler = Reassembler()
    assert reassembler.add(chunk("a", 1, b"aa", 4)).state == "partial"
    assert reassembler.add(chunk("b", 1, b"bbbb", 4, "$")).body == b"bbbb"
    assert reassembler.add(chunk("a", 3, b"AA", 4, "$")).body == b"aaAA"
    assert reassembler.add(chunk("a", 3, b"AA", 4, "$")).state == "duplicate"


def test_an_aborted_message_is_discarded() -> None:
    reassembler = Reassembler()
    reassembler.add(chunk("m1", 1, b"abc", 10))
    aborted = reassembler.add(chunk("m1", 4, b"de", 10, "#"))
    assert (aborted.state, aborted.received, aborted.total) == ("aborted", 3, 10)
    assert reassembler.pending() == () and reassembler.progress("m1") is None
    assert reassembler.add(chunk("m2", 1, b"", "*", "#", end="*")).state == "aborted"


def test_a_total_above_the_limit_is_refused_with_413_before_any_allocation() -> None:
    reassembler = Reassembler(max_message_size=1 << 20)
    huge = chunk("m1", 1, b"abc", 10**15)  # allocating this would fail loudly
    with pytest.raises(MsrpByteRangeError) as caught:
        reassembler.add(huge)
    assert caught.value.status_code == 413
    assert reassembler.pending() == ()
    assert reassembler.add(chunk("m2", 1, b"abc", 1 << 20)).state == "partial"


@pytest.mark.parametrize(
    ("second", "why"),
    [
        (chunk("m1", 4, b"def", 11), "contradicts"),
        (chunk("m1", 9, b"ijk", 10), "past"),
        (chunk("m1", 4, b"def", 10, end=7), "does not match"),
        (chunk("m1", 4, b"def", 10, end=5), "does not match"),
    ],
)
def test_inconsistent_chunks_raise_400_and_drop_the_message(second: MsrpRequest, why: str) -> None:
    reassembler = Reassembler()
    reassembler.add(chunk("m1", 1, b"abc", 10))
    with pytest.raises(MsrpByteRangeError, match=why) as caught:
        reassembler.add(second)
    assert caught.value.status_code == 400
    assert reassembler.pending() == ()


def test_unknown_totals_are_accepted_only_on_a_single_last_chunk() -> None:
    reassembler = Reassembler()
    unchunked = MsrpRequest(
        "SEND", "tid1", (*PATHS, ("Message-ID", "m1"), ("Content-Type", "text/plain")), b"hello"
    )
    assert reassembler.add(unchunked).body == b"hello"  # no Byte-Range: 1-*/*
    assert reassembler.add(chunk("m2", 1, b"abc", "*", "$", end="*")).body == b"abc"
    with pytest.raises(MsrpByteRangeError) as caught:
        reassembler.add(chunk("m3", 1, b"abc", "*", "+"))
    assert caught.value.status_code == 413


def test_the_number_of_incomplete_messages_is_bounded() -> None:
    reassembler = Reassembler(max_pending=2)
    reassembler.add(chunk("a", 1, b"x", 2))
    reassembler.add(chunk("b", 1, b"x", 2))
    with pytest.raises(MsrpParseError) as caught:
        reassembler.add(chunk("c", 1, b"x", 2))
    assert caught.value.status_code == 413
    assert reassembler.discard("a") and not reassembler.discard("a")
    assert reassembler.add(chunk("c", 1, b"x", 2)).state == "partial"


def test_a_chunk_without_message_id_is_refused() -> None:
    request = MsrpRequest("SEND", "tid1", (*PATHS, ("Content-Type", "t/p")), b"x")
    with pytest.raises(MsrpParseError) as caught:
        Reassembler().add(request)
    assert caught.value.status_code == 400


def test_a_malformed_byte_range_raises_400() -> None:
    request = MsrpRequest(
        "SEND",
        "tid1",
        (*PATHS, ("Message-ID", "m"), ("Byte-Range", "x"), ("Content-Type", "t/p")),
        b"x",
    )
    with pytest.raises(MsrpByteRangeError) as caught:
        Reassembler().add(request)
    assert caught.value.status_code == 400
