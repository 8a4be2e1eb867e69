"""The transaction layer's timer queue: with many live transactions in every state, the
earliest deadline it reports and the timers it fires are exactly those a walk over all the
transactions would find (fake clock, seeded randomness)."""

from __future__ import annotations

import random

import pytest

from messenger.sip.message import SipRequest
from messenger.sip.transaction import TransactionLayer, new_branch


def _request(n: int) -> SipRequest:
    return SipRequest(
        "MESSAGE",
        "sip:bob@example.org",
        [
            ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@example.com>;tag=t{n}"),
            ("To", "<sip:bob@example.org>"),
            ("Call-ID", f"queue-{n}@192.0.2.1"),
            ("CSeq", "1 MESSAGE"),
        ],
        b"hi",
    )


def _walk(layer: TransactionLayer) -> float | None:
    """The reference: the earliest deadline over every live transaction."""
    deadlines = [
        d
        for table in (layer._clients, layer._servers)
        for entry in table.values()
        if (d := entry.transaction.next_timer()) is not None
    ]
    # completed non-INVITE server transactions over UDP wait out Timer J as plain entries
    deadlines.extend(deadline for _, _, deadline in layer._completed.values())
    return min(deadlines, default=None)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_queue_agrees_with_a_walk_over_all_transactions(seed):
    rng = random.Random(seed)
    layer = TransactionLayer()
    now = 0.0
    fired_total = 0
    for n in range(400):
        now += rng.uniform(0.0, 0.2)
        choice = rng.random()
        if choice < 0.45:  # a request goes out; sometimes an answer comes back
            key = layer.send_request(
                _request(n), remote=("192.0.2.9", 5060), reliable=rng.random() < 0.2, now=now
            )
            if rng.random() < 0.5:
                request = layer.transaction(key).request
                answer = request.make_response(rng.choice([100, 200, 404]))
                layer.receive(answer, remote=("192.0.2.9", 5060), reliable=False, now=now)
        elif choice < 0.8:  # a request comes in and is answered, now or never
            raw = _request(10_000 + n).to_bytes()
            layer.receive_data(raw, remote=("192.0.2.8", 5060), reliable=False, now=now)
            for event in layer.events():
                key = getattr(event, "key", None)
                if key is not None and rng.random() < 0.7:
                    response = event.request.make_response(200)
                    layer.send_response(key, response, now)
        else:  # time passes: fire what is due, exactly as a walk would
            expected_due = {
                key
                for table in (layer._clients, layer._servers)
                for key, entry in table.items()
                if (d := entry.transaction.next_timer()) is not None and d <= now
            }
            before = {
                key: entry.transaction.next_timer()
                for table in (layer._clients, layer._servers)
                for key, entry in table.items()
            }
            layer.handle_timer(now)
            changed = {
                key
                for key, deadline in before.items()
                if (layer.transaction(key) is None)
                or layer.transaction(key).next_timer() != deadline
            }
            assert expected_due <= changed
            assert all(deadline > now for _, _, deadline in layer._completed.values())
            fired_total += len(expected_due)
        layer.messages_to_send()
        layer.events()
        assert layer.next_timer() == _walk(layer)
    # and drained to the end: every transaction terminates through its timers
    for _ in range(10_000):
        deadline = layer.next_timer()
        assert deadline == _walk(layer)
        if deadline is None:
            break
        layer.handle_timer(deadline)
        layer.messages_to_send()
        layer.events()
    assert layer.next_timer() is None
    assert fired_total > 0
