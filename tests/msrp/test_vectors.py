"""RFC 8591 section 10 MSRP examples (../shared/vectors/rfc8591): figure 3 and the two
figure 4 chunks parse, and the chunks reassemble byte for byte into the figure 3 body."""

from __future__ import annotations

import random
from pathlib import Path

from messenger.msrp.chunking import Reassembler
from messenger.msrp.frame import FrameParser, MsrpRequest, parse_frame
from messenger.msrp.session import (
    IncomingMessage,
    IncomingProgress,
    IncomingRefused,
    MsrpSession,
)
from messenger.msrp.uri import MsrpUri

ALICE = MsrpUri.parse("msrp://alicepc.example.com:7777/iau39soe2843z;tcp")
BOB = MsrpUri.parse("msrp://bobpc.example.org:8888/9di4eae923wzd;tcp")


def _alice(**kw) -> MsrpSession:
    """Alice's end of the figure 3 session: Bob sends to her."""
    return MsrpSession(local_uri=ALICE, to_path=[BOB], now=0.0, **kw)


def test_figure3_frame_parses(vectors: Path) -> None:
    der = (vectors / "fig3-authenveloped.der").read_bytes()
    frame = parse_frame((vectors / "fig3-chunk.msrp").read_bytes())
    assert isinstance(frame, MsrpRequest)
    assert (frame.method, frame.transaction_id, frame.message_id) == (
        "SEND",
        "dsdfoe38sd",
        "456so39s",
    )
    assert frame.to_path == (ALICE,) and frame.from_path == (BOB,)
    assert str(frame.byte_range) == "1-1940/1940" and frame.continuation == "$"
    assert frame.get("Content-Disposition") == 'attachment; filename="smime.p7m"'
    assert frame.content_type.startswith("application/pkcs7-mime")
    assert frame.body == der


def test_figure4_chunks_parse(vectors: Path) -> None:
    one = parse_frame((vectors / "fig4-chunk1.msrp").read_bytes())
    two = parse_frame((vectors / "fig4-chunk2.msrp").read_bytes())
    assert (one.transaction_id, one.continuation, str(one.byte_range)) == (
        "d93kswow",
        "+",
        "1-960/1940",
    )
    assert (two.transaction_id, two.continuation, str(two.byte_range)) == (
        "op2nc9a",
        "$",
        "961-1940/1940",
    )
    assert one.message_id == two.message_id == "12339sdqwer"
    assert len(one.body) == 960 and len(two.body) == 980


def test_figure4_chunks_reassemble_into_the_figure3_body(vectors: Path) -> None:
    der = (vectors / "fig3-authenveloped.der").read_bytes()
    chunks = [(vectors / f"fig4-chunk{i}.msrp").read_bytes() for i in (1, 2)]
    for order in (chunks, chunks[::-1]):
        reassembler = Reassembler()
        states = [reassembler.add(parse_frame(c)) for c in order]
        assert [s.state for s in states] == ["partial", "complete"]
        assert states[-1].body == der


def test_figure3_through_the_session_in_every_split(vectors: Path) -> None:
    der = (vectors / "fig3-authenveloped.der").read_bytes()
    data = (vectors / "fig3-chunk.msrp").read_bytes()
    rng = random.Random(3)
    for cut in [*range(0, 60), *rng.sample(range(60, len(data)), 60), len(data) - 1]:
        alice = _alice()
        events = alice.feed(data[:cut], now=1) + alice.feed(data[cut:], now=1)
        [msg] = [e for e in events if isinstance(e, IncomingMessage)]
        assert msg.body == der and msg.message_id == "456so39s"
        assert msg.headers == (("Content-Disposition", 'attachment; filename="smime.p7m"'),)
        [response] = FrameParser().feed(b"".join(bytes(b) for b in alice.pull()))
        assert response.status == 200 and response.transaction_id == "dsdfoe38sd"


def test_figure4_first_chunk_through_the_session(vectors: Path) -> None:
    """Chunk 1 names Alice's session and is taken. Chunk 2, as printed in the RFC, names
    another session in its To-Path (the README lists this inconsistency): the session
    answers it 481 rather than splice it into the message."""
    alice = _alice()
    one = alice.feed((vectors / "fig4-chunk1.msrp").read_bytes(), now=1)
    assert [type(e) for e in one] == [IncomingProgress] and one[0].received == 960
    two = alice.feed((vectors / "fig4-chunk2.msrp").read_bytes(), now=1)
    assert [(type(e), e.status) for e in two] == [(IncomingRefused, 481)]
    statuses = [r.status for r in FrameParser().feed(b"".join(bytes(b) for b in alice.pull()))]
    assert statuses == [200, 481]
