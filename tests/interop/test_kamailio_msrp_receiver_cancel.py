"""The receiver cancels a file while it arrives, through Kamailio's msrp relay (fixture
``kamailio_msrp``): the relay answers every chunk with its own 200 and does not pass the
receiver's 413 responses on, nor turn them into a REPORT; the receiver's failure REPORT
(413, sent when it stops the message) is relayed end to end and stops the sender. The same
cancel between two agents without a relay: tests/ua/test_receiver_cancel.py."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ua"))

import msrp_harness as h

from messenger.msrp.uri import MsrpUri
from messenger.ua.events import TransferProgress
from messenger.ua.files import STOPPED_RECEIVING

MB = 1024 * 1024


def test_receiver_cancel_through_kamailio_stops_the_sender(kamailio_msrp, tmp_path) -> None:
    source = h.random_file(tmp_path, "through-the-relay.bin", 5 * MB)
    relay = MsrpUri.parse(f"msrp://127.0.0.1:{kamailio_msrp.msrp_port};tcp")

    async def scenario():
        pair = await h.open_pair(h.make_pki(), tmp_path, relay=relay, timeout=10)
        loop = asyncio.get_running_loop()
        cancelled: asyncio.Future = loop.create_future()
        record = pair.bob.emit

        def bob_sees(event) -> None:
            record(event)
            arriving = isinstance(event, TransferProgress) and event.state == "running"
            if arriving and 0 < event.done < (event.total or 0) and not cancelled.done():
                loop.call_soon(lambda: cancelled.set_result(pair.b.cancel(event.transfer_id)))

        pair.b._emit_event = bob_sees
        try:
            result = await pair.a.send_file(source)
            ended = await asyncio.wait_for(pair.bob.ended.get(), 20)
            return pair, await cancelled, result, ended
        finally:
            await pair.close()

    pair, cancelled, result, ended = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert cancelled
    # Alice: stopped by the 413 REPORT (not by a 408 once her wait for progress ran out)
    assert not result.delivered and result.status == 413 and result.stopped, result
    assert not result.cancelled and STOPPED_RECEIVING in result.explanation
    # Bob: a clear end, nothing kept
    assert ended.state == "aborted" and ended.reason.startswith(f"you {STOPPED_RECEIVING}")
    assert not pair.bob.received.qsize()
    downloads = tmp_path / "bob-downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []
    log = kamailio_msrp.log(limit=1 << 30)
    assert "MSRP REPORT" in log
    chunks = log.count("MSRP SEND")
    assert chunks < (5 * MB) // (8 * 1024) // 2, chunks  # it stopped long before the end
