"""The receiver cancels a file while it arrives (two in-process agents on loopback): the
sender is told with MSRP 413 and stops, both sides end in a clear state in words, and
nothing of the file is kept or presented as received.

Through Kamailio's msrp relay (interop): the relay answers every chunk with its own 200
and does not pass the receiver's 413 responses on, nor turn them into a REPORT; the
receiver's failure REPORT (413, sent when it stops the message) is relayed end to end and
stops the sender."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import pytest

from messenger.msrp.uri import MsrpUri
from messenger.ua.events import TransferProgress
from messenger.ua.files import STOPPED_RECEIVING

_TESTS = Path(__file__).resolve().parents[1]
for _folder in (_TESTS / "ua", _TESTS / "interop"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import msrp_harness as h  # noqa: E402  (tests/ua/msrp_harness.py)
import peers  # noqa: E402  (tests/interop/peers.py)

MB = 1024 * 1024


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


async def _pair(net, tmp_path: Path):
    alice = await net.add("alice", listens=("tcp",), crls=[net.pki.ca.last_crl])
    bob = await net.add(
        "bob", listens=("tcp",), crls=[net.pki.ca.last_crl], downloads=tmp_path / "bob-downloads"
    )
    net.link(alice, bob, "tcp")
    net.link(bob, alice, "tcp")
    alice.set_peer_certificate(bob.aor, net.pki.bob.certificate)
    bob.set_peer_certificate(alice.aor, net.pki.alice.certificate)
    return alice, bob


def test_receiver_cancels_an_incoming_file_mid_transfer(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await _pair(net, tmp_path)
            source = h.random_file(tmp_path, "holiday.mov", 24 * MB)
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


@pytest.fixture(scope="module")
def msrp_relay(tmp_path_factory):
    reason = peers.kamailio_available(msrp=True)
    if reason:
        pytest.skip(reason)
    relay = peers.Kamailio(tmp_path_factory.mktemp("kamailio-msrp"), msrp=True)
    relay.start(timeout=10)
    yield relay
    relay.stop()


@pytest.mark.interop
def test_receiver_cancel_through_kamailio_stops_the_sender(msrp_relay, tmp_path) -> None:
    source = h.random_file(tmp_path, "through-the-relay.bin", 5 * MB)
    relay = MsrpUri.parse(f"msrp://127.0.0.1:{msrp_relay.msrp_port};tcp")

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
    log = msrp_relay.log(limit=1 << 30)
    assert "MSRP REPORT" in log
    chunks = log.count("MSRP SEND")
    assert chunks < (5 * MB) // (8 * 1024) // 2, chunks  # it stopped long before the end
