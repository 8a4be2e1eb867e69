"""INVITE transactions (RFC 3261 sections 17.1.1, 17.2.1, 9; RFC 6026) on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.sip.errors import SipTransactionError
from messenger.sip.events import (
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    UnmatchedResponse,
)
from messenger.sip.invite import (
    TIMER_D,
    AckTimeout,
    InviteCancelled,
    InviteClientTransaction,
    InviteServerTransaction,
    InviteState,
    build_ack,
    build_cancel,
)
from messenger.sip.message import SipRequest, SipResponse, parse_message
from messenger.sip.transaction import (
    ClientTransaction,
    TimerConfig,
    TransactionKey,
    TransactionLayer,
)

T1, T2, T4 = 0.5, 4.0, 5.0
ALICE = ("192.0.2.1", 5060)
BOB = ("192.0.2.2", 5060)


def make_invite(branch: str = "z9hG4bKinv1", cseq: int = 1) -> SipRequest:
    return SipRequest(
        "INVITE",
        "sip:bob@192.0.2.2",
        [
            ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("Route", "<sip:proxy.example.org;lr>"),
            ("From", "<sip:alice@example.com>;tag=a1"),
            ("To", "<sip:bob@example.org>"),
            ("Call-ID", "call-inv@192.0.2.1"),
            ("CSeq", f"{cseq} INVITE"),
            ("Contact", "<sip:alice@192.0.2.1:5060>"),
            ("Content-Type", "application/sdp"),
        ],
        b"v=0\r\n",
    )


def run_until(tx: object, end: float) -> list[float]:
    """Fire timers up to ``end``; return the times at which something was sent."""
    sent_at: list[float] = []
    while (deadline := tx.next_timer()) is not None and deadline <= end:  # type: ignore[attr-defined]
        tx.handle_timer(deadline)  # type: ignore[attr-defined]
        if tx.messages_to_send():  # type: ignore[attr-defined]
            sent_at.append(deadline)
    return sent_at


# -- client transaction ------------------------------------------------------------------


def test_client_sends_invite_and_timer_a_doubles_without_cap_until_timer_b() -> None:
    invite = make_invite()
    tx = InviteClientTransaction(invite, reliable=False, now=0.0)
    assert tx.messages_to_send() == [invite.to_bytes()]
    assert tx.state is InviteState.CALLING
    sent = run_until(tx, 100.0)
    # T1 doubling: 0.5, 1, 2, 4, 8, 16 -> no cap at T2 for INVITE; timer B at 64*T1 = 32
    assert sent == pytest.approx([0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
    assert tx.events() == [TransactionTimeout(tx.key), TransactionTerminated(tx.key)]
    assert tx.terminated and tx.next_timer() is None


def test_client_on_reliable_transport_never_retransmits_and_times_out_at_64_t1() -> None:
    tx = InviteClientTransaction(make_invite(), reliable=True, now=10.0)
    tx.messages_to_send()
    assert tx.next_timer() == pytest.approx(10.0 + 64 * T1)
    assert run_until(tx, 100.0) == []
    assert TransactionTimeout(tx.key) in tx.events()


def test_provisional_response_stops_timers_a_and_b() -> None:
    invite = make_invite()
    tx = InviteClientTransaction(invite, reliable=False, now=0.0)
    tx.messages_to_send()
    tx.handle_timer(0.5)
    tx.messages_to_send()
    ringing = invite.make_response(180, to_tag="b1")
    tx.receive_response(ringing, 0.8)
    assert tx.state is InviteState.PROCEEDING
    assert tx.events() == [ResponseReceived(tx.key, ringing)]
    assert tx.next_timer() is None
    assert run_until(tx, 1000.0) == []
    assert not tx.terminated


def test_non_2xx_final_is_acknowledged_by_the_transaction() -> None:
    invite = make_invite()
    tx = InviteClientTransaction(invite, reliable=False, now=0.0)
    tx.messages_to_send()
    busy = invite.make_response(486, to_tag="b1")
    tx.receive_response(busy, 1.0)
    assert tx.state is InviteState.COMPLETED
    assert tx.events() == [ResponseReceived(tx.key, busy)]
    [ack_bytes] = tx.messages_to_send()
    ack = parse_message(ack_bytes)
    assert isinstance(ack, SipRequest)
    assert ack.method == "ACK" and ack.uri == invite.uri
    assert ack.headers.get_all("Via") == [invite.headers.get("Via")]
    assert ack.top_via.branch == "z9hG4bKinv1"
    assert ack.to_address.tag == "b1"
    assert ack.from_address.tag == "a1"
    assert str(ack.cseq) == "1 ACK"
    assert ack.call_id == invite.call_id
    assert ack.headers.get_all("Route") == ["<sip:proxy.example.org;lr>"]
    assert ack.body == b"" and "Content-Type" not in ack.headers
    # a retransmitted 486 is acknowledged again and not passed up
    tx.receive_response(busy, 2.0)
    assert tx.messages_to_send() == [ack_bytes]
    assert tx.events() == []
    assert tx.next_timer() == pytest.approx(1.0 + TIMER_D)
    tx.handle_timer(1.0 + TIMER_D)
    assert tx.events() == [TransactionTerminated(tx.key)]


def test_timer_d_is_zero_on_reliable_transport() -> None:
    invite = make_invite()
    tx = InviteClientTransaction(invite, reliable=True, now=0.0)
    tx.messages_to_send()
    tx.receive_response(invite.make_response(603, to_tag="b1"), 1.0)
    assert len(tx.messages_to_send()) == 1  # the ACK
    assert tx.terminated
    assert [type(e) for e in tx.events()] == [ResponseReceived, TransactionTerminated]


def test_2xx_moves_to_accepted_and_retransmissions_reach_the_tu_until_timer_m() -> None:
    invite = make_invite()
    tx = InviteClientTransaction(invite, reliable=False, now=0.0)
    tx.messages_to_send()
    ok = invite.make_response(200, to_tag="b1")
    tx.receive_response(ok, 1.0)
    assert tx.state is InviteState.ACCEPTED
    assert tx.messages_to_send() == []  # the ACK of a 2xx is the dialog's
    tx.receive_response(ok, 1.5)  # retransmission: the TU acknowledges it again
    forked = invite.make_response(200, to_tag="b2")
    tx.receive_response(forked, 1.6)
    tx.receive_response(invite.make_response(486, to_tag="b3"), 1.7)  # ignored
    assert tx.events() == [
        ResponseReceived(tx.key, ok),
        ResponseReceived(tx.key, ok),
        ResponseReceived(tx.key, forked),
    ]
    assert tx.next_timer() == pytest.approx(1.0 + 64 * T1)
    assert run_until(tx, 100.0) == []
    assert tx.events() == [TransactionTerminated(tx.key)]


def test_client_transport_error_terminates() -> None:
    tx = InviteClientTransaction(make_invite(), reliable=True, now=0.0)
    tx.handle_transport_error(0.1)
    assert tx.events() == [TransportFailed(tx.key), TransactionTerminated(tx.key)]


def test_client_rejects_other_methods_and_old_branches() -> None:
    message = SipRequest(
        "MESSAGE",
        "sip:bob@example.org",
        [
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bKm"),
            ("From", "<sip:a@h>;tag=1"),
            ("To", "<sip:b@h>"),
            ("Call-ID", "c"),
            ("CSeq", "1 MESSAGE"),
        ],
    )
    with pytest.raises(SipTransactionError):
        InviteClientTransaction(message, reliable=True, now=0.0)
    with pytest.raises(SipTransactionError):
        InviteServerTransaction(message, reliable=True, now=0.0)
    with pytest.raises(SipTransactionError):
        InviteClientTransaction(make_invite(branch="oldbranch"), reliable=True, now=0.0)


def test_client_matches_its_responses_only() -> None:
    invite = make_invite()
    tx = InviteClientTransaction(invite, reliable=True, now=0.0)
    assert tx.matches(invite.make_response(180))
    assert not tx.matches(make_invite(branch="z9hG4bKother").make_response(180))


# -- ACK and CANCEL builders ---------------------------------------------------------------


def test_build_cancel_follows_section_9_1() -> None:
    invite = make_invite()
    invite.headers.add("Via", "SIP/2.0/UDP proxy.example.org;branch=z9hG4bKp")
    cancel = build_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.headers.get_all("Via") == [invite.headers.get_all("Via")[0]]
    assert str(cancel.cseq) == "1 CANCEL"
    for name in ("From", "To", "Call-ID"):
        assert cancel.headers.get(name) == invite.headers.get(name)
    assert cancel.headers.get_all("Route") == ["<sip:proxy.example.org;lr>"]
    assert cancel.body == b""
    parse_message(cancel.to_bytes())  # well formed


def test_builders_refuse_what_the_rfc_forbids() -> None:
    invite = make_invite()
    with pytest.raises(SipTransactionError):
        build_ack(invite, invite.make_response(200, to_tag="b"))
    ack = build_ack(invite, invite.make_response(404, to_tag="b"))
    with pytest.raises(SipTransactionError):
        build_ack(ack, invite.make_response(404, to_tag="b"))
    with pytest.raises(SipTransactionError):
        build_cancel(ack)


def test_cancel_in_calling_waits_for_a_provisional_response() -> None:
    invite = make_invite()
    tx = InviteClientTransaction(invite, reliable=False, now=0.0)
    assert tx.request_cancel(0.1) is None
    assert tx.take_cancel() is None
    tx.receive_response(invite.make_response(100), 0.2)
    cancel = tx.take_cancel()
    assert cancel is not None and cancel.method == "CANCEL"
    assert tx.take_cancel() is None
    tx.receive_response(invite.make_response(180, to_tag="b"), 0.3)
    assert tx.take_cancel() is None  # only one CANCEL
    assert tx.request_cancel(0.4) is None


def test_cancel_in_proceeding_is_immediate_and_times_out_without_final() -> None:
    invite = make_invite()
    tx = InviteClientTransaction(invite, reliable=True, now=0.0)
    tx.receive_response(invite.make_response(180, to_tag="b"), 1.0)
    cancel = tx.request_cancel(2.0)
    assert cancel is not None and cancel.top_via.branch == "z9hG4bKinv1"
    assert tx.next_timer() == pytest.approx(2.0 + 64 * T1)
    tx.events()
    tx.handle_timer(2.0 + 64 * T1)
    assert tx.events() == [TransactionTimeout(tx.key), TransactionTerminated(tx.key)]


def test_cancel_after_final_response_does_nothing() -> None:
    invite = make_invite()
    tx = InviteClientTransaction(invite, reliable=True, now=0.0)
    tx.receive_response(invite.make_response(200, to_tag="b"), 1.0)
    assert tx.request_cancel(2.0) is None


# -- server transaction ------------------------------------------------------------------


def test_server_sends_100_and_answers_retransmissions_with_the_last_response() -> None:
    invite = make_invite()
    tx = InviteServerTransaction(invite, reliable=False, now=0.0)
    [trying] = tx.messages_to_send()
    assert trying.startswith(b"SIP/2.0 100 Trying\r\n")
    assert tx.receive_request(invite, 0.1) is False
    assert tx.messages_to_send() == [trying]
    ringing = invite.make_response(180, to_tag="b1")
    tx.send_response(ringing, 0.2)
    assert tx.messages_to_send() == [ringing.to_bytes()]
    tx.receive_request(invite, 0.3)
    assert tx.messages_to_send() == [ringing.to_bytes()]
    assert tx.state is InviteState.PROCEEDING and tx.to_tag == "b1"


def test_server_can_skip_the_100() -> None:
    tx = InviteServerTransaction(make_invite(), reliable=True, now=0.0, send_trying=False)
    assert tx.messages_to_send() == []


def test_timer_g_retransmits_non_2xx_up_to_t2_until_the_ack() -> None:
    invite = make_invite()
    tx = InviteServerTransaction(invite, reliable=False, now=0.0, send_trying=False)
    busy = invite.make_response(486, to_tag="b1")
    tx.send_response(busy, 0.0)
    assert tx.state is InviteState.COMPLETED
    assert tx.messages_to_send() == [busy.to_bytes()]
    sent = run_until(tx, 20.0)
    assert sent == pytest.approx([0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5])
    tx.receive_request(invite, 20.1)  # retransmitted INVITE gets the 486 again
    assert tx.messages_to_send() == [busy.to_bytes()]
    ack = build_ack(invite, busy)
    assert tx.receive_request(ack, 21.0) is False
    assert tx.state is InviteState.CONFIRMED
    assert tx.next_timer() == pytest.approx(21.0 + T4)
    assert tx.receive_request(ack, 22.0) is False  # absorbed
    assert tx.messages_to_send() == []
    run_until(tx, 21.0 + T4)
    assert tx.events() == [TransactionTerminated(tx.key)]


def test_timer_h_reports_a_missing_ack() -> None:
    invite = make_invite()
    tx = InviteServerTransaction(invite, reliable=False, now=0.0, send_trying=False)
    tx.send_response(invite.make_response(480, to_tag="b"), 1.0)
    tx.messages_to_send()
    sent = run_until(tx, 100.0)
    assert sent[-1] < 1.0 + 64 * T1
    assert tx.events() == [TransactionTimeout(tx.key), TransactionTerminated(tx.key)]


def test_reliable_server_does_not_retransmit_and_timer_i_is_zero() -> None:
    invite = make_invite()
    tx = InviteServerTransaction(invite, reliable=True, now=0.0, send_trying=False)
    busy = invite.make_response(486, to_tag="b")
    tx.send_response(busy, 0.0)
    tx.messages_to_send()
    assert tx.next_timer() == pytest.approx(64 * T1)  # timer H only
    tx.receive_request(build_ack(invite, busy), 1.0)
    assert tx.terminated
    assert tx.events() == [TransactionTerminated(tx.key)]


def test_2xx_is_retransmitted_until_its_ack_arrives() -> None:
    invite = make_invite()
    tx = InviteServerTransaction(invite, reliable=False, now=0.0, send_trying=False)
    ok = invite.make_response(200, to_tag="b1")
    tx.send_response(ok, 0.0)
    assert tx.state is InviteState.ACCEPTED
    assert tx.messages_to_send() == [ok.to_bytes()]
    assert run_until(tx, 8.0) == pytest.approx([0.5, 1.5, 3.5, 7.5])
    tx.receive_request(invite, 8.1)  # a retransmitted INVITE is absorbed in Accepted
    assert tx.messages_to_send() == []
    ack_2xx = SipRequest("ACK", "sip:bob@192.0.2.2", invite.headers.copy())
    ack_2xx.headers.set("CSeq", "1 ACK")
    assert tx.receive_request(ack_2xx, 9.0) is True
    assert tx.acknowledged
    assert run_until(tx, 64 * T1 - 0.1) == []
    tx.handle_timer(64 * T1)
    assert tx.events() == [TransactionTerminated(tx.key)]  # no AckTimeout


def test_2xx_without_ack_ends_with_ack_timeout() -> None:
    invite = make_invite()
    tx = InviteServerTransaction(invite, reliable=True, now=0.0, send_trying=False)
    ok = invite.make_response(200, to_tag="b1")
    tx.send_response(ok, 0.0)
    tx.messages_to_send()
    sent = run_until(tx, 100.0)
    # section 13.3.1.4 retransmits the 2xx on any transport (a later hop may be UDP)
    assert sent == pytest.approx([0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    assert tx.events() == [AckTimeout(tx.key, ok), TransactionTerminated(tx.key)]


def test_only_one_final_response_is_sent() -> None:
    invite = make_invite()
    tx = InviteServerTransaction(invite, reliable=True, now=0.0, send_trying=False)
    tx.send_response(invite.make_response(486, to_tag="b"), 0.0)
    tx.messages_to_send()
    tx.send_response(invite.make_response(200, to_tag="b"), 0.1)
    assert tx.messages_to_send() == []
    assert tx.cancel(0.2) is False


def test_server_cancel_answers_487_with_the_provisional_tag() -> None:
    invite = make_invite()
    tx = InviteServerTransaction(invite, reliable=True, now=0.0, send_trying=False)
    tx.send_response(invite.make_response(180, to_tag="ring"), 0.1)
    tx.messages_to_send()
    assert tx.cancel(0.2) is True
    [out] = tx.messages_to_send()
    response = parse_message(out)
    assert isinstance(response, SipResponse)
    assert response.status == 487 and response.to_address.tag == "ring"
    assert tx.state is InviteState.COMPLETED


def test_timers_are_configurable() -> None:
    timers = TimerConfig(t1=0.1, t2=0.3, t4=1.0)
    tx = InviteClientTransaction(make_invite(), reliable=False, now=0.0, timers=timers)
    tx.messages_to_send()
    assert run_until(tx, 100.0) == pytest.approx([0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    assert TransactionTimeout(tx.key) in tx.events()


# -- the layer: two user agents over a fake network ----------------------------------------


class Wire:
    """Two layers joined by a lossless (or lossy on demand) datagram network."""

    def __init__(self) -> None:
        self.alice = TransactionLayer()
        self.bob = TransactionLayer(serve_invites=True)
        self.drop_to_bob = False
        self.log: list[tuple[str, bytes]] = []

    def pump(self, now: float) -> None:
        moved = True
        while moved:
            moved = False
            for out in self.alice.messages_to_send():
                moved = True
                self.log.append(("a->b", out.data))
                if not self.drop_to_bob:
                    self.bob.receive_data(out.data, remote=ALICE, reliable=False, now=now)
            for out in self.bob.messages_to_send():
                moved = True
                self.log.append(("b->a", out.data))
                self.alice.receive_data(out.data, remote=BOB, reliable=False, now=now)

    def sent(self, direction: str) -> list[bytes]:
        return [data for d, data in self.log if d == direction]


def start_lines(datas: list[bytes]) -> list[str]:
    return [data.split(b"\r\n", 1)[0].decode() for data in datas]


def test_layer_runs_an_invite_that_is_cancelled_while_ringing() -> None:
    wire = Wire()
    invite = make_invite()
    key = wire.alice.send_request(invite, remote=BOB, reliable=False, now=0.0)
    assert key == TransactionKey("z9hG4bKinv1", "INVITE")
    wire.pump(0.0)
    [received] = wire.bob.events()
    assert isinstance(received, RequestReceived) and received.key is not None
    server_key = received.key
    wire.bob.send_response(server_key, invite.make_response(180, to_tag="b1"), 0.1)
    wire.pump(0.1)
    assert [e.response.status for e in wire.alice.events()] == [100, 180]  # type: ignore[attr-defined]
    cancel_key = wire.alice.cancel(key, 1.0)
    assert cancel_key == TransactionKey("z9hG4bKinv1", "CANCEL")
    wire.pump(1.0)
    bob_events = wire.bob.events()
    assert len(bob_events) == 1 and isinstance(bob_events[0], InviteCancelled)
    assert bob_events[0].key == server_key
    statuses = [
        (e.key.method, e.response.status)
        for e in wire.alice.events()
        if isinstance(e, ResponseReceived)
    ]
    assert sorted(statuses) == [("CANCEL", 200), ("INVITE", 487)]
    assert start_lines(wire.sent("a->b")) == [
        "INVITE sip:bob@192.0.2.2 SIP/2.0",
        "CANCEL sip:bob@192.0.2.2 SIP/2.0",
        "ACK sip:bob@192.0.2.2 SIP/2.0",
    ]
    # the 487's ACK confirmed the server transaction; the 200 to CANCEL has the same tag
    tx = wire.bob.transaction(server_key)
    assert isinstance(tx, InviteServerTransaction) and tx.state is InviteState.CONFIRMED
    responses = [parse_message(d) for d in wire.sent("b->a")]
    assert {r.to_address.tag for r in responses if r.status > 100} == {"b1"}  # type: ignore[union-attr]


def test_layer_sends_a_pending_cancel_once_a_provisional_arrives() -> None:
    wire = Wire()
    invite = make_invite()
    wire.bob = TransactionLayer()  # an agent without sessions: INVITE is not answered
    key = wire.alice.send_request(invite, remote=BOB, reliable=False, now=0.0)
    wire.pump(0.0)
    assert wire.alice.cancel(key, 0.1) == TransactionKey("z9hG4bKinv1", "CANCEL")
    wire.pump(0.1)
    assert start_lines(wire.sent("a->b")) == ["INVITE sip:bob@192.0.2.2 SIP/2.0"]
    wire.alice.receive(invite.make_response(180, to_tag="b1"), remote=BOB, reliable=False, now=0.2)
    [out] = wire.alice.messages_to_send()
    assert out.data.startswith(b"CANCEL ") and out.remote == BOB
    assert isinstance(
        wire.alice.transaction(TransactionKey("z9hG4bKinv1", "CANCEL")), ClientTransaction
    )


def test_layer_answers_481_to_a_cancel_without_invite_and_200_after_a_final() -> None:
    layer = TransactionLayer(serve_invites=True)
    invite = make_invite()
    layer.receive(build_cancel(invite), remote=ALICE, reliable=True, now=0.0)
    [out] = layer.messages_to_send()
    assert out.data.startswith(b"SIP/2.0 481 ")
    assert [type(e) for e in layer.events()] == [TransactionTerminated]  # the CANCEL's
    layer.receive(make_invite(branch="z9hG4bKinv2"), remote=ALICE, reliable=True, now=1.0)
    [event] = layer.events()
    assert isinstance(event, RequestReceived) and event.key is not None
    layer.send_response(event.key, event.request.make_response(200, to_tag="b"), 1.1)
    layer.messages_to_send()
    layer.receive(build_cancel(event.request), remote=ALICE, reliable=True, now=1.2)
    [out] = layer.messages_to_send()
    assert out.data.startswith(b"SIP/2.0 200 OK")  # the CANCEL's 200, the INVITE stays
    assert [type(e) for e in layer.events()] == [TransactionTerminated]  # the CANCEL's


def test_layer_routes_the_ack_of_a_2xx_to_stop_retransmissions() -> None:
    wire = Wire()
    invite = make_invite()
    wire.alice.send_request(invite, remote=BOB, reliable=False, now=0.0)
    wire.pump(0.0)
    [received] = wire.bob.events()
    assert isinstance(received, RequestReceived) and received.key is not None
    ok = invite.make_response(200, to_tag="b1", headers=[("Contact", "<sip:bob@192.0.2.2>")])
    wire.bob.send_response(received.key, ok, 0.1)
    wire.pump(0.1)
    [_, ok_event] = wire.alice.events()
    assert isinstance(ok_event, ResponseReceived) and ok_event.response.status == 200
    # the 2xx is retransmitted while no ACK comes
    wire.bob.handle_timer(0.6)
    assert len(wire.bob.messages_to_send()) == 1
    # the ACK of a 2xx has its own branch; the layer matches it by dialog
    ack = SipRequest(
        "ACK",
        "sip:bob@192.0.2.2",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack1"),
            ("From", "<sip:alice@example.com>;tag=a1"),
            ("To", "<sip:bob@example.org>;tag=b1"),
            ("Call-ID", "call-inv@192.0.2.1"),
            ("CSeq", "1 ACK"),
        ],
    )
    wire.alice.send_stateless(ack, BOB)
    wire.pump(0.7)
    [ack_event] = wire.bob.events()
    assert isinstance(ack_event, RequestReceived) and ack_event.key is None
    assert ack_event.request.method == "ACK" and ack_event.remote == ALICE
    assert wire.bob.next_timer() == pytest.approx(0.1 + 64 * T1)  # only timer L left
    wire.bob.handle_timer(0.1 + 64 * T1)
    assert wire.bob.messages_to_send() == []
    assert [type(e) for e in wire.bob.events()] == [TransactionTerminated]
    assert len(wire.bob) == 0 and wire.bob._acks == {}


def test_layer_reports_ack_timeout_and_timer_b() -> None:
    wire = Wire()
    invite = make_invite()
    wire.drop_to_bob = True
    key = wire.alice.send_request(invite, remote=BOB, reliable=False, now=0.0)
    wire.pump(0.0)
    t = 0.0
    while (deadline := wire.alice.next_timer()) is not None:
        t = deadline
        wire.alice.handle_timer(t)
        wire.pump(t)
    assert t == pytest.approx(64 * T1)
    assert len(wire.sent("a->b")) == 7  # the INVITE and 6 retransmissions
    assert wire.alice.events() == [TransactionTimeout(key), TransactionTerminated(key)]

    bob = TransactionLayer(serve_invites=True)
    bob.receive(invite, remote=ALICE, reliable=True, now=0.0)
    [event] = bob.events()
    assert event.key is not None  # type: ignore[attr-defined]
    ok = invite.make_response(200, to_tag="b1")
    bob.send_response(event.key, ok, 0.0)  # type: ignore[attr-defined]
    bob.handle_timer(64 * T1)
    assert AckTimeout(event.key, ok) in bob.events()  # type: ignore[attr-defined]


def test_layer_absorbs_retransmitted_invites_and_unmatched_responses_go_up() -> None:
    layer = TransactionLayer(serve_invites=True)
    invite = make_invite()
    layer.receive(invite, remote=ALICE, reliable=False, now=0.0)
    layer.receive(invite, remote=ALICE, reliable=False, now=0.5)
    assert len(layer.events()) == 1
    assert start_lines([o.data for o in layer.messages_to_send()]) == [
        "SIP/2.0 100 Trying",
        "SIP/2.0 100 Trying",
    ]
    stray = make_invite(branch="z9hG4bKstray").make_response(200, to_tag="x")
    layer.receive(stray, remote=BOB, reliable=False, now=1.0)
    assert layer.events() == [UnmatchedResponse(stray, BOB)]


def test_layer_cancel_of_unknown_or_answered_invite_returns_none() -> None:
    layer = TransactionLayer()
    assert layer.cancel(TransactionKey("z9hG4bKnone", "INVITE"), 0.0) is None
    invite = make_invite()
    key = layer.send_request(invite, remote=BOB, reliable=True, now=0.0)
    layer.receive(invite.make_response(200, to_tag="b"), remote=BOB, reliable=True, now=0.1)
    assert layer.cancel(key, 0.2) is None


# -- property: a layer serving INVITEs survives any sequence of damaged messages ----------


def _seed_messages() -> list[bytes]:
    invite = make_invite()
    ok = invite.make_response(200, to_tag="b1", headers=[("Contact", "<sip:bob@h>")])
    ack = SipRequest("ACK", invite.uri, invite.headers.copy())
    ack.headers.set("CSeq", "1 ACK")
    ack.headers.set("To", "<sip:bob@example.org>;tag=b1")
    ack.headers.set("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack")
    return [
        invite.to_bytes(),
        build_cancel(invite).to_bytes(),
        ack.to_bytes(),
        build_ack(invite, invite.make_response(486, to_tag="b1")).to_bytes(),
        ok.to_bytes(),
        invite.make_response(180, to_tag="b1").to_bytes(),
    ]


SEEDS = _seed_messages()


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        if not data:
            break
        pos = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if draw(st.booleans()):
            data[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        else:
            del data[pos : pos + draw(st.integers(min_value=1, max_value=6))]
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(damaged(), st.booleans(), st.sampled_from(["answer", "none"])), max_size=8)
)
def test_layer_survives_damaged_invite_traffic(steps: list[tuple[bytes, bool, str]]) -> None:
    layer = TransactionLayer(serve_invites=True)
    client = TransactionLayer()
    client.send_request(make_invite(), remote=BOB, reliable=False, now=0.0)
    now = 0.0
    for data, reliable, action in steps:
        now += 0.3
        layer.receive_data(data, remote=ALICE, reliable=reliable, now=now)
        if data.startswith(b"SIP/2.0 "):  # the client side only meets responses
            client.receive_data(data, remote=BOB, reliable=False, now=now)
        for event in layer.events():
            if isinstance(event, RequestReceived) and event.key is not None and action == "answer":
                layer.send_response(event.key, event.request.make_response(200, to_tag="t"), now)
        layer.handle_timer(now)
        client.handle_timer(now)
        layer.messages_to_send()
        client.messages_to_send()
    end = 1000.0
    layer.handle_timer(end)
    client.handle_timer(end)
    layer.events()
    client.events()
    assert layer._acks == {}
    # a ringing INVITE waits for its final response until the user gives up (CANCEL)
    mine = TransactionKey("z9hG4bKinv1", "INVITE")
    if len(client):
        tx = client.transaction(mine)
        assert isinstance(tx, InviteClientTransaction) and tx.state is InviteState.PROCEEDING
        client.cancel(mine, end)
        client.handle_timer(end + 64 * T1)
    assert len(client) == 0
    # only INVITEs the TU never answered remain: they wait for it, as section 17.2.1 says
    for key in list(layer._servers):
        tx = layer.transaction(key)
        assert isinstance(tx, InviteServerTransaction) and tx.state is InviteState.PROCEEDING
