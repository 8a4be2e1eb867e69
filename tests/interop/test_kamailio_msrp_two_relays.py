"""Relays on both sides (RFC 4976 section 6): the sender reaches the network through its
own Kamailio msrp relay, the receiver is reached only through a second, separate one. The
SEND's To-Path names both relays and then the receiver; the first relay forwards to the
second, which hands the frames over the receiver's own AUTH connection, and the REPORTs
come back the same way. A protected file sent by ``messenger send --file`` arrives at a
``messenger agent`` verified and byte for byte."""

from __future__ import annotations

from pathlib import Path

import peers
import pytest
from agent_process import Pki
from peers import LOCALHOST
from test_msrp_pager_cli import ALICE, BOB, MB, _agent, _check_received, _file, _send, cli_ready

__all__ = ["cli_ready"]


@pytest.fixture(scope="module")
def second_relay(tmp_path_factory):
    reason = peers.kamailio_available(msrp=True)
    if reason:
        pytest.skip(reason)
    k = peers.Kamailio(tmp_path_factory.mktemp("kamailio-msrp-b"), msrp=True)
    k.start(timeout=10)
    yield k
    k.stop()


def test_file_through_a_relay_on_each_side(
    cli_ready, kamailio_msrp, second_relay, tmp_path: Path
) -> None:
    assert kamailio_msrp.msrp_port != second_relay.msrp_port
    pki = Pki.create(tmp_path / "pki")
    pki.identity(ALICE)
    pki.identity(BOB)
    alices_relay = f"msrp://{LOCALHOST}:{kamailio_msrp.msrp_port};tcp"
    bobs_relay = f"msrp://{LOCALHOST}:{second_relay.msrp_port};tcp"
    source = _file(tmp_path, 5 * MB + 3)
    with _agent(pki, tmp_path, bobs_relay) as bob:
        answer = _send(pki, source, bob, alices_relay, tmp_path)
        assert answer["delivered"] and answer["encrypted"] and answer["signed"], answer
        _check_received(bob, source, tmp_path)
    sender_side = kamailio_msrp.log(limit=1 << 30)
    receiver_side = second_relay.log(limit=1 << 30)
    for log in (sender_side, receiver_side):
        # each side AUTHed to its own relay, and the frames crossed both
        assert "MSRP AUTH" in log and "MSRP SEND" in log and "MSRP REPORT" in log
        assert "forwarding frame failed" not in log
