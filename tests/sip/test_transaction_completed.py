"""Completed non-INVITE server transactions over UDP wait out Timer J as plain entries
(the final response bytes, the remote and the deadline): they still absorb
retransmissions, discard a second final response and end at Timer J, but hold no live
object the cycle collector has to walk."""

from __future__ import annotations

import gc

from messenger.sip.events import RequestReceived, TransactionTerminated, TransportFailed
from messenger.sip.message import SipRequest
from messenger.sip.transaction import TransactionLayer, TransactionState

ALICE = ("192.0.2.1", 5060)
T1 = 0.5


def _request(n: int = 1) -> bytes:
    return SipRequest(
        "MESSAGE",
        "sip:bob@example.org",
        [
            ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKdone{n};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@example.com>;tag=a{n}"),
            ("To", "<sip:bob@example.org>"),
            ("Call-ID", f"done-{n}@192.0.2.1"),
            ("CSeq", "1 MESSAGE"),
        ],
        b"hi",
    ).to_bytes()


def _answered(layer: TransactionLayer, n: int = 1, status: int = 200) -> tuple[object, bytes]:
    layer.receive_data(_request(n), remote=ALICE, reliable=False, now=0.0)
    [event] = layer.events()
    assert isinstance(event, RequestReceived) and event.key is not None
    layer.send_response(event.key, event.request.make_response(status, to_tag="b"), 0.1)
    [out] = layer.messages_to_send()
    return event.key, out.data


def test_completed_udp_server_transaction_absorbs_retransmissions_until_timer_j() -> None:
    layer = TransactionLayer()
    key, answer = _answered(layer)
    assert layer.transaction(key) is None  # no live transaction object any more
    assert len(layer) == 1
    assert layer.next_timer() == 0.1 + 64 * T1

    for now in (0.6, 1.6, 30.0):
        layer.receive_data(_request(), remote=ALICE, reliable=False, now=now)
        assert layer.events() == []
        assert [(o.data, o.remote) for o in layer.messages_to_send()] == [(answer, ALICE)]

    layer.handle_timer(0.1 + 64 * T1 - 0.001)
    assert len(layer) == 1 and layer.events() == []
    layer.handle_timer(0.1 + 64 * T1)
    assert len(layer) == 0
    assert layer.events() == [TransactionTerminated(key)]
    assert layer.next_timer() is None

    # after Timer J the same bytes are a new request again
    layer.receive_data(_request(), remote=ALICE, reliable=False, now=40.0)
    [event] = layer.events()
    assert isinstance(event, RequestReceived) and event.key == key


def test_second_final_response_is_discarded() -> None:
    layer = TransactionLayer()
    key, answer = _answered(layer, status=404)
    request = SipRequest("MESSAGE", "sip:bob@example.org", [])
    layer.send_response(key, request.make_response(200), 0.2)
    assert layer.messages_to_send() == []
    layer.receive_data(_request(), remote=ALICE, reliable=False, now=0.3)
    assert [o.data for o in layer.messages_to_send()] == [answer]


def test_transport_error_ends_a_completed_entry() -> None:
    layer = TransactionLayer()
    key, _ = _answered(layer)
    layer.handle_transport_error(key, 0.5)
    assert layer.events() == [TransportFailed(key), TransactionTerminated(key)]
    assert len(layer) == 0 and layer.next_timer() is None


def test_provisional_response_keeps_the_live_transaction() -> None:
    layer = TransactionLayer()
    layer.receive_data(_request(), remote=ALICE, reliable=False, now=0.0)
    [event] = layer.events()
    layer.send_response(event.key, event.request.make_response(100), 0.1)
    tx = layer.transaction(event.key)
    assert tx is not None and tx.state is TransactionState.PROCEEDING


def test_completed_entries_are_not_tracked_by_the_cycle_collector() -> None:
    layer = TransactionLayer()
    for n in range(50):
        _answered(layer, n)
    # a collection stops tracking a tuple whose items are untracked; each level of
    # nesting may take one more pass
    for _ in range(3):
        gc.collect()
    assert len(layer._completed) == 50
    assert not any(gc.is_tracked(k) for k in layer._completed)
    assert not any(gc.is_tracked(v) for v in layer._completed.values())
    assert not any(gc.is_tracked(item) for item in layer._timer_heap)
