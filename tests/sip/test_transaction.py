"""Non-INVITE transactions (RFC 3261 sections 17.1.2, 17.2.2) driven by a fake clock."""

from __future__ import annotations

import random

import pytest

from messenger.sip.errors import SipTransactionError
from messenger.sip.events import (
    MessageDiscarded,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    UnmatchedResponse,
)
from messenger.sip.ids import BRANCH_MAGIC_COOKIE, new_call_id, new_tag
from messenger.sip.message import SipRequest, SipResponse, parse_message
from messenger.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    TimerConfig,
    TransactionKey,
    TransactionLayer,
    TransactionState,
    client_key,
    new_branch,
    server_key,
)

T1, T2, T4 = 0.5, 4.0, 5.0


def make_request(branch: str = "z9hG4bKabc", method: str = "MESSAGE") -> SipRequest:
    return SipRequest(
        method,
        "sip:bob@example.org",
        [
            ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.com>;tag=a1"),
            ("To", "<sip:bob@example.org>"),
            ("Call-ID", "call-1@192.0.2.1"),
            ("CSeq", f"1 {method}"),
        ],
        b"hi",
    )


def run_until(tx: ClientTransaction | ServerTransaction, end: float) -> list[float]:
    """Fire timers up to ``end``; return the times at which something was sent."""
    sent_at: list[float] = []
    while (deadline := tx.next_timer()) is not None and deadline <= end:
        tx.handle_timer(deadline)
        if tx.messages_to_send():
            sent_at.append(deadline)
    return sent_at


# -- client ------------------------------------------------------------------------------


def test_client_sends_request_on_creation() -> None:
    req = make_request()
    tx = ClientTransaction(req, reliable=False, now=0.0)
    assert tx.messages_to_send() == [req.to_bytes()]
    assert tx.state is TransactionState.TRYING
    assert tx.next_timer() == pytest.approx(T1)


def test_timer_e_doubles_to_t2() -> None:
    tx = ClientTransaction(make_request(), reliable=False, now=0.0)
    tx.messages_to_send()
    sent = run_until(tx, 20.0)
    assert sent == pytest.approx([0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5])


def test_timer_f_times_out_after_64_t1() -> None:
    tx = ClientTransaction(make_request(), reliable=False, now=0.0)
    tx.messages_to_send()
    sent = run_until(tx, 100.0)
    assert sent[-1] < 64 * T1
    events = tx.events()
    assert events == [TransactionTimeout(tx.key), TransactionTerminated(tx.key)]
    assert tx.state is TransactionState.TERMINATED
    assert tx.next_timer() is None


def test_reliable_client_never_retransmits_but_still_times_out() -> None:
    tx = ClientTransaction(make_request(), reliable=True, now=10.0)
    tx.messages_to_send()
    assert tx.next_timer() == pytest.approx(10.0 + 64 * T1)
    assert run_until(tx, 100.0) == []
    assert TransactionTimeout(tx.key) in tx.events()


def test_provisional_response_moves_to_proceeding_and_retransmits_at_t2() -> None:
    req = make_request()
    tx = ClientTransaction(req, reliable=False, now=0.0)
    tx.messages_to_send()
    tx.handle_timer(0.5)  # first retransmission, next E at 1.5
    tx.messages_to_send()
    trying = req.make_response(100)
    tx.receive_response(trying, 0.7)
    assert tx.state is TransactionState.PROCEEDING
    assert tx.events() == [ResponseReceived(tx.key, trying)]
    sent = run_until(tx, 14.0)
    assert sent == pytest.approx([1.5, 5.5, 9.5, 13.5])


def test_final_response_completes_and_timer_k_is_t4_on_udp() -> None:
    req = make_request()
    tx = ClientTransaction(req, reliable=False, now=0.0)
    ok = req.make_response(200, to_tag="b1")
    tx.receive_response(ok, 1.0)
    assert tx.state is TransactionState.COMPLETED
    assert tx.next_timer() == pytest.approx(1.0 + T4)
    assert tx.events() == [ResponseReceived(tx.key, ok)]
    tx.receive_response(ok, 2.0)  # retransmitted final is absorbed
    assert tx.events() == []
    tx.handle_timer(1.0 + T4)
    assert tx.state is TransactionState.TERMINATED
    assert tx.events() == [TransactionTerminated(tx.key)]


def test_timer_k_is_zero_on_reliable_transport() -> None:
    req = make_request()
    tx = ClientTransaction(req, reliable=True, now=0.0)
    tx.receive_response(req.make_response(404, to_tag="b1"), 1.0)
    assert tx.state is TransactionState.TERMINATED
    assert tx.next_timer() is None
    assert [type(e) for e in tx.events()] == [ResponseReceived, TransactionTerminated]


def test_no_retransmission_after_final_response() -> None:
    req = make_request()
    tx = ClientTransaction(req, reliable=False, now=0.0)
    tx.messages_to_send()
    tx.receive_response(req.make_response(200, to_tag="x"), 0.2)
    assert run_until(tx, 10.0) == []


def test_timers_are_configurable() -> None:
    tx = ClientTransaction(
        make_request(), reliable=False, now=0.0, timers=TimerConfig(t1=0.1, t2=0.3, t4=1.0)
    )
    tx.messages_to_send()
    assert run_until(tx, 1.0) == pytest.approx([0.1, 0.3, 0.6, 0.9])
    run_until(tx, 100.0)
    assert TransactionTimeout(tx.key) in tx.events()


def test_transport_error_terminates_client() -> None:
    tx = ClientTransaction(make_request(), reliable=True, now=0.0)
    tx.handle_transport_error(0.1)
    assert tx.events() == [TransportFailed(tx.key), TransactionTerminated(tx.key)]
    assert tx.terminated


def test_client_rejects_invite_and_branch_without_magic_cookie() -> None:
    with pytest.raises(SipTransactionError):
        ClientTransaction(make_request(method="INVITE"), reliable=True, now=0.0)
    with pytest.raises(SipTransactionError):
        ClientTransaction(make_request(branch="oldstyle"), reliable=True, now=0.0)


def test_client_matches_by_branch_and_cseq_method() -> None:
    req = make_request()
    tx = ClientTransaction(req, reliable=True, now=0.0)
    assert tx.matches(req.make_response(200))
    other_branch = make_request(branch="z9hG4bKother").make_response(200)
    assert not tx.matches(other_branch)
    wrong_method = req.make_response(200)
    wrong_method.headers.set("CSeq", "1 OPTIONS")
    assert not tx.matches(wrong_method)


# -- server ------------------------------------------------------------------------------


def test_server_answers_retransmitted_request_with_last_response() -> None:
    req = make_request()
    tx = ServerTransaction(req, reliable=False, now=0.0)
    tx.receive_request(req, 0.1)  # Trying: nothing to re-send
    assert tx.messages_to_send() == []
    trying = req.make_response(100)
    tx.send_response(trying, 0.2)
    assert tx.messages_to_send() == [trying.to_bytes()]
    tx.receive_request(req, 0.3)
    assert tx.messages_to_send() == [trying.to_bytes()]
    ok = req.make_response(200, to_tag="b1")
    tx.send_response(ok, 0.4)
    assert tx.state is TransactionState.COMPLETED
    assert tx.messages_to_send() == [ok.to_bytes()]
    tx.receive_request(req, 5.0)
    assert tx.messages_to_send() == [ok.to_bytes()]


def test_server_timer_j_is_64_t1_on_udp() -> None:
    req = make_request()
    tx = ServerTransaction(req, reliable=False, now=0.0)
    tx.send_response(req.make_response(200, to_tag="b1"), 1.0)
    assert tx.next_timer() == pytest.approx(1.0 + 64 * T1)
    tx.handle_timer(1.0 + 64 * T1 - 0.001)
    assert tx.state is TransactionState.COMPLETED
    tx.handle_timer(1.0 + 64 * T1)
    assert tx.state is TransactionState.TERMINATED
    assert tx.events() == [TransactionTerminated(tx.key)]


def test_server_timer_j_is_zero_on_reliable_transport() -> None:
    req = make_request()
    tx = ServerTransaction(req, reliable=True, now=0.0)
    tx.send_response(req.make_response(200, to_tag="b1"), 1.0)
    assert tx.state is TransactionState.TERMINATED
    assert tx.next_timer() is None


def test_server_discards_second_final_response() -> None:
    req = make_request()
    tx = ServerTransaction(req, reliable=False, now=0.0)
    tx.send_response(req.make_response(200, to_tag="b1"), 0.1)
    tx.messages_to_send()
    tx.send_response(req.make_response(500, to_tag="b1"), 0.2)
    assert tx.messages_to_send() == []


def test_server_key_uses_branch_sent_by_and_method() -> None:
    req = make_request()
    key = server_key(req)
    assert key == TransactionKey("z9hG4bKabc", "MESSAGE", ("192.0.2.1", 5060))
    other = make_request()
    other.headers.set("Via", "SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKabc")
    assert server_key(other) != key
    assert client_key(req) == TransactionKey("z9hG4bKabc", "MESSAGE")


def test_server_key_without_magic_cookie_falls_back_to_rfc2543_fields() -> None:
    a = make_request(branch="1")
    b = make_request(branch="1")
    assert server_key(a) == server_key(b)
    b.headers.set("CSeq", "2 MESSAGE")
    assert server_key(a) != server_key(b)


# -- identifiers -------------------------------------------------------------------------


def test_new_branch_carries_magic_cookie_and_is_unique() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100
    assert all(b.startswith(BRANCH_MAGIC_COOKIE) for b in branches)


def test_identifiers_are_reproducible_with_a_seeded_rng() -> None:
    assert new_branch(random.Random(1)) == new_branch(random.Random(1))
    assert new_tag(random.Random(2)) == new_tag(random.Random(2))
    assert new_call_id("h.example", random.Random(3)).endswith("@h.example")


# -- layer -------------------------------------------------------------------------------

ALICE = ("192.0.2.1", 5060)
BOB = ("192.0.2.2", 5060)


def test_layer_runs_a_message_exchange_between_two_uas() -> None:
    alice, bob = TransactionLayer(), TransactionLayer()
    req = make_request(branch=new_branch(random.Random(5)))
    key = alice.send_request(req, remote=BOB, reliable=False, now=0.0)
    [out] = alice.messages_to_send()
    assert out.remote == BOB

    bob.receive_data(out.data, remote=ALICE, reliable=False, now=0.01)
    [event] = bob.events()
    assert isinstance(event, RequestReceived)
    assert event.key is not None and event.remote == ALICE
    bob.send_response(event.key, event.request.make_response(200, to_tag="b"), 0.02)
    [answer] = bob.messages_to_send()
    assert answer.remote == ALICE

    alice.receive_data(answer.data, remote=BOB, reliable=False, now=0.03)
    [got] = alice.events()
    assert isinstance(got, ResponseReceived) and got.key == key
    assert got.response.status == 200

    # retransmitted request reaches bob's Completed transaction: answered, not re-reported
    bob.receive_data(out.data, remote=ALICE, reliable=False, now=0.5)
    assert bob.events() == []
    assert [o.data for o in bob.messages_to_send()] == [answer.data]

    # timers K and J clean up
    for layer in (alice, bob):
        while (deadline := layer.next_timer()) is not None:
            layer.handle_timer(deadline)
        assert len(layer) == 0
        assert any(isinstance(e, TransactionTerminated) for e in layer.events())


def test_layer_retransmits_and_times_out_over_udp() -> None:
    layer = TransactionLayer()
    key = layer.send_request(make_request(), remote=BOB, reliable=False, now=0.0)
    layer.messages_to_send()
    sends = 0
    while (deadline := layer.next_timer()) is not None:
        layer.handle_timer(deadline)
        sends += len(layer.messages_to_send())
    assert sends == 10  # 0.5, 1.5, 3.5, then every 4 s up to 31.5
    assert layer.events() == [TransactionTimeout(key), TransactionTerminated(key)]


def test_layer_reports_unmatched_response() -> None:
    layer = TransactionLayer()
    resp = make_request().make_response(200, to_tag="t")
    layer.receive(resp, remote=BOB, reliable=True, now=0.0)
    assert layer.events() == [UnmatchedResponse(resp, BOB)]


def test_layer_answers_malformed_request_with_400() -> None:
    layer = TransactionLayer()
    bad = make_request().to_bytes().replace(b"CSeq: 1 MESSAGE", b"CSeq: 1 INVITE")
    layer.receive_data(bad, remote=ALICE, reliable=False, now=0.0)
    [event] = layer.events()
    assert isinstance(event, MessageDiscarded) and event.answered
    [out] = layer.messages_to_send()
    resp = parse_message(out.data)
    assert isinstance(resp, SipResponse) and resp.status == 400
    assert out.remote == ALICE


def test_layer_reports_ack_without_transaction() -> None:
    layer = TransactionLayer()
    ack = make_request(method="ACK")
    layer.receive(ack, remote=ALICE, reliable=False, now=0.0)
    assert layer.events() == [RequestReceived(None, ack, ALICE)]
    assert len(layer) == 0


def test_layer_transport_error_terminates_the_transaction() -> None:
    layer = TransactionLayer()
    key = layer.send_request(make_request(), remote=BOB, reliable=True, now=0.0)
    layer.handle_transport_error(key, 0.1)
    assert layer.events() == [TransportFailed(key), TransactionTerminated(key)]
    assert layer.transaction(key) is None


def test_layer_refuses_duplicate_client_branch_and_unknown_server_key() -> None:
    layer = TransactionLayer()
    layer.send_request(make_request(), remote=BOB, reliable=True, now=0.0)
    with pytest.raises(SipTransactionError):
        layer.send_request(make_request(), remote=BOB, reliable=True, now=0.0)
    with pytest.raises(SipTransactionError):
        layer.send_response(
            TransactionKey("z9hG4bKnone", "MESSAGE", ("h", None)),
            make_request().make_response(200),
            0.0,
        )


def test_fresh_call_ids_and_tags_make_distinct_requests() -> None:
    assert new_call_id() != new_call_id()
    assert new_tag() != new_tag()


def test_layer_reports_invite_without_a_non_invite_transaction() -> None:
    layer = TransactionLayer()
    invite = make_request(method="INVITE")
    layer.receive(invite, remote=ALICE, reliable=True, now=0.0)
    assert layer.events() == [RequestReceived(None, invite, ALICE)]
    layer.send_stateless(invite.make_response(501, to_tag="n"), ALICE)
    [out] = layer.messages_to_send()
    assert out.data.startswith(b"SIP/2.0 501 Not Implemented\r\n")
