"""Session mode through a real RFC 4976 relay: Kamailio's msrp module (fixture
``kamailio_msrp``). Alice AUTHs to the relay and sends through its Use-Path; the relay
opens the connection to Bob, who is passive; Bob's REPORTs come back over Alice's
connection. See ../shared/spec/interop.md for the relay's pitfalls: it answers every chunk
itself, drops frames above its 16 KiB read buffer and frames it cannot queue (32 KiB per
connection), which is why the sender uses 8 KiB chunks and a window paced by Bob's REPORTs.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ua"))

import msrp_harness as h

from messenger.msrp.uri import MsrpUri
from messenger.ua.events import TransferProgress

MB = 1024 * 1024


def _file(folder: Path, size: int) -> Path:
    path = folder / "through-the-relay.bin"
    rng = random.Random(4976)
    with path.open("wb") as f:
        for _ in range(size // MB):
            f.write(rng.randbytes(MB))
        f.write(rng.randbytes(size % MB))
    return path


def test_signed_and_encrypted_50mb_file_through_kamailio(kamailio_msrp, tmp_path: Path) -> None:
    source = _file(tmp_path, 50 * MB)
    relay = MsrpUri.parse(f"msrp://127.0.0.1:{kamailio_msrp.msrp_port};tcp")
    pki = h.make_pki()

    async def scenario():
        pair = await h.open_pair(pki, tmp_path, relay=relay, timeout=10)
        try:
            # the relay's Use-Path (a session of its own) leads the To-Path
            to_path = pair.a.msrp.to_path
            assert to_path[0].port == kamailio_msrp.msrp_port and to_path[0].session_id
            assert to_path[-1] == pair.b.local_uri
            result = await pair.a.send_file(source)
            received = await asyncio.wait_for(pair.bob.received.get(), 60)
            return pair, result, received
        finally:
            await pair.close()

    pair, result, received = asyncio.run(asyncio.wait_for(scenario(), 150))
    assert result.delivered and result.encrypted and result.signed, result
    assert received.report["authenticity"] == "verified" and received.report["green"]
    assert received.filename == source.name
    got = hashlib.sha256(Path(received.path).read_bytes()).hexdigest()
    assert got == hashlib.sha256(source.read_bytes()).hexdigest()
    assert pair.bob.of(TransferProgress)[-1].state == "complete"
    log = kamailio_msrp.log(limit=1 << 30)
    assert "MSRP AUTH" in log and "MSRP SEND" in log and "MSRP REPORT" in log
    assert "forwarding frame failed" not in log


def test_text_through_kamailio_and_back(kamailio_msrp, tmp_path: Path) -> None:
    relay = MsrpUri.parse(f"msrp://127.0.0.1:{kamailio_msrp.msrp_port};tcp")
    pki = h.make_pki()

    async def scenario():
        pair = await h.open_pair(pki, tmp_path, relay=relay, timeout=10)
        try:
            there = await pair.a.send_text("over the relay")
            got = await asyncio.wait_for(pair.bob.received.get(), 10)
            return there, got
        finally:
            await pair.close()

    there, got = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert there.delivered and got.text == "over the relay" and got.report["green"]
