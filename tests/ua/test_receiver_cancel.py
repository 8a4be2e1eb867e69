"""The receiver cancels a file while it arrives (two in-process agents on loopback): the
sender is told with MSRP 413 and stops, both sides end in a clear state in words, and
nothing of the file is kept or presented as received. The same through Kamailio's msrp
relay: tests/interop/test_kamailio_msrp_receiver_cancel.py."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from messenger.ua.files import STOPPED_RECEIVING

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import msrp_harness as h  # noqa: E402  (tests/ua/msrp_harness.py)


def _open_temp_files() -> int:
    """Files of this process open in the temporary folder (partial messages live there,
    unlinked, until they are whole or dropped)."""
    folder = os.path.realpath(tempfile.gettempdir())
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(folder + "/") and target.endswith("(deleted)"):
            count += 1
    return count


def test_receiver_cancels_an_incoming_file_mid_transfer(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await h.agent_pair(net, tmp_path)
            source = h.random_file(tmp_path, "holiday.mov", 24 * h.MB)
            baseline = _open_temp_files()
            loop = asyncio.get_running_loop()
            cancelled: asyncio.Future = loop.create_future()
            during: list[int] = []

            def on_event(event) -> None:
                running = (
                    event.kind == "progress"
                    and event.direction == "in"
                    and event.state == "running"
                    and 0 < event.done < (event.total or 0)
                )
                if running and not cancelled.done():
                    during.append(_open_temp_files())
                    # the person's click comes after the current batch of chunks
                    loop.call_soon(
                        lambda: cancelled.set_result(bob.cancel_transfer(event.transfer_id))
                    )

            bob.subscribe(on_event)
            result = await alice.send_file(bob.aor, source)
            assert await cancelled is True
            transfer_id = result.message_id

            # Alice: stopped by the receiver, in words, with what to do; nothing more sent
            assert not result.delivered and result.status == 413, result
            assert result.reason_phrase == "Stopped By The Receiver"
            assert STOPPED_RECEIVING in result.explanation
            assert "send it again if they ask" in result.explanation
            out = [e for e in alice.recorder.of("progress") if e.direction == "out"]
            assert out[-1].state == "failed" and STOPPED_RECEIVING in out[-1].reason
            assert out[-1].transfer_id == transfer_id
            stored = alice.store.message(transfer_id)
            assert stored.delivery == "failed" and STOPPED_RECEIVING in stored.reason

            # Bob: aborted part-way, said in words; nothing kept, nothing received
            ended = await bob.recorder.wait(
                "progress", lambda e: e.direction == "in" and e.state != "running"
            )
            assert ended.state == "aborted" and ended.transfer_id == transfer_id
            assert ended.reason.startswith(f"you {STOPPED_RECEIVING}")
            assert "nothing of it was kept" in ended.reason
            assert 0 < ended.done < ended.total
            later = [
                e
                for e in bob.recorder.of("progress")
                if e.transfer_id == transfer_id and e.at >= ended.at
            ]
            assert [e.state for e in later] == ["aborted"]  # no progress after the stop
            assert bob.recorder.of("message") == []
            downloads = tmp_path / "bob-downloads"
            assert not downloads.exists() or list(downloads.iterdir()) == []
            assert bob.store.messages(alice.aor) == []
            # the partial bytes were in a temporary file while it arrived; it is gone
            assert during and during[0] > baseline
            assert _open_temp_files() == baseline
            # it has ended: cancelling again does nothing
            assert not bob.cancel_transfer(transfer_id)

            # the session goes on: the next file arrives whole
            small = h.random_file(tmp_path, "next.bin", 200_000)
            again = await alice.send_file(bob.aor, small)
            assert again.delivered, again
            got = await bob.recorder.wait("message", timeout=20)
            assert Path(got.path).read_bytes() == small.read_bytes()

    run(body())
