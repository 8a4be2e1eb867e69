"""Dialogs (RFC 3261 section 12): creation on both sides, route sets, in-dialog requests."""

from __future__ import annotations

import random

import pytest

from messenger.sip.address import Address
from messenger.sip.dialog import (
    Dialog,
    DialogId,
    DialogState,
    DialogTable,
    SipDialogError,
    build_invite,
    dialog_id_of_request,
    dialog_id_of_response,
)
from messenger.sip.headers import Via
from messenger.sip.message import SipRequest, SipResponse, parse_message

ALICE_VIA = Via("UDP", "192.0.2.1", 5060)
BOB_VIA = Via("TCP", "192.0.2.2", 5070)
RR = ["<sip:p2.example.org;lr>", "<sip:p1.example.com;lr>"]  # as the 2xx carries them


def alice_invite(rng: random.Random | None = None) -> SipRequest:
    return build_invite(
        from_uri="sip:alice@example.com",
        to_uri="sip:bob@example.org",
        contact="sip:alice@192.0.2.1:5060",
        via=ALICE_VIA,
        body=b"v=0\r\n",
        route=["<sip:p1.example.com;lr>"],
        rng=rng or random.Random(7),
    )


def at_bob(invite: SipRequest) -> SipRequest:
    """The INVITE as it reaches Bob through p1 then p2 (both record-route)."""
    received = parse_message(invite.to_bytes())
    assert isinstance(received, SipRequest)
    received.headers.remove("Route")
    received.headers.prepend("Record-Route", "<sip:p1.example.com;lr>")
    received.headers.prepend("Record-Route", "<sip:p2.example.org;lr>")
    received.uri = "sip:bob@192.0.2.2:5070;transport=tcp"
    return received


def bob_ok(invite_at_bob: SipRequest, status: int = 200) -> SipResponse:
    headers = [("Record-Route", rr) for rr in invite_at_bob.headers.get_all("Record-Route")]
    headers.append(("Contact", "<sip:bob@192.0.2.2:5070;transport=tcp>"))
    return invite_at_bob.make_response(status, to_tag="bobtag", headers=headers)


def test_build_invite_preloads_the_proxy_route_and_fresh_ids() -> None:
    invite = alice_invite()
    again = alice_invite()
    assert invite.to_bytes() == again.to_bytes()  # rng drives every random part
    assert invite.method == "INVITE" and invite.uri == "sip:bob@example.org"
    assert invite.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert invite.from_address.tag and invite.to_address.tag is None
    assert invite.top_via.branch.startswith("z9hG4bK")  # type: ignore[union-attr]
    assert invite.top_via.rport_requested
    assert invite.call_id.endswith("@192.0.2.1")
    assert str(invite.cseq) == "1 INVITE"
    assert invite.headers.get("Content-Type") == "application/sdp"
    assert invite.contacts[0].uri == "sip:alice@192.0.2.1:5060"
    assert parse_message(invite.to_bytes()).to_bytes() == invite.to_bytes()
    assert alice_invite(random.Random(8)).call_id != invite.call_id


def test_uac_dialog_from_2xx_reverses_the_record_route() -> None:
    invite = alice_invite()
    ok = parse_message(bob_ok(at_bob(invite)).to_bytes())
    assert isinstance(ok, SipResponse)
    dialog = Dialog.from_uac(invite, ok)
    assert dialog.state is DialogState.CONFIRMED and dialog.is_uac
    assert dialog.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.org;lr>"]
    assert dialog.remote_target == "sip:bob@192.0.2.2:5070;transport=tcp"
    assert dialog.local_seq == 1 and dialog.remote_seq is None
    assert dialog.id == DialogId(invite.call_id, invite.from_address.tag, "bobtag")  # type: ignore[arg-type]
    assert dialog.local_uri == Address("sip:alice@example.com")
    assert dialog.remote_uri == Address("sip:bob@example.org")
    assert dialog.next_hop == "sip:p1.example.com;lr"
    assert dialog.matches_response(ok)
    assert not dialog.secure


def test_uas_dialog_keeps_the_record_route_order() -> None:
    invite = at_bob(alice_invite())
    ok = bob_ok(invite)
    dialog = Dialog.from_uas(invite, ok)
    assert dialog.state is DialogState.CONFIRMED and not dialog.is_uac
    assert dialog.route_set == RR
    assert dialog.remote_target == "sip:alice@192.0.2.1:5060"
    assert dialog.remote_seq == 1 and dialog.local_seq is None
    assert dialog.local_tag == "bobtag"
    assert dialog.remote_tag == invite.from_address.tag
    assert dialog.next_hop == "sip:p2.example.org;lr"
    assert dialog.local_contact == "<sip:bob@192.0.2.2:5070;transport=tcp>"


def test_bye_from_either_side_follows_the_route_set_and_is_matched() -> None:
    invite = alice_invite()
    invite_at_bob = at_bob(invite)
    ok = bob_ok(invite_at_bob)
    alice = Dialog.from_uac(invite, ok)
    bob = Dialog.from_uas(invite_at_bob, ok)
    bye = alice.create_request("BYE", via=ALICE_VIA, rng=random.Random(1))
    assert bye.uri == "sip:bob@192.0.2.2:5070;transport=tcp"  # loose routing
    assert bye.headers.get_all("Route") == alice.route_set
    assert str(bye.cseq) == "2 BYE" and alice.local_seq == 2
    assert bye.from_address.tag == invite.from_address.tag
    assert bye.to_address.tag == "bobtag"
    assert bye.top_via.branch != invite.top_via.branch
    assert "Contact" not in bye.headers
    parsed = parse_message(bye.to_bytes())
    assert isinstance(parsed, SipRequest)
    table = DialogTable()
    table.add(bob)
    assert table.find_for_request(parsed) is bob
    bob.receive_request(parsed)
    assert bob.remote_seq == 2 and bob.state is DialogState.TERMINATED
    assert [d.id for d in table.discard_terminated()] == [bob.id] and len(table) == 0
    # Bob's own request: tags swap, the route set is used in Record-Route order
    bob2 = Dialog.from_uas(invite_at_bob, ok)
    bye_from_bob = bob2.create_request("BYE", via=BOB_VIA, rng=random.Random(3))
    assert bye_from_bob.uri == "sip:alice@192.0.2.1:5060"
    assert bye_from_bob.headers.get_all("Route") == RR
    assert bye_from_bob.from_address.tag == "bobtag"
    assert bye_from_bob.to_address.tag == invite.from_address.tag
    assert bye_from_bob.cseq.seq == random.Random(3).randrange(1, 2**16)
    alice.receive_request(bye_from_bob)
    assert alice.terminated


def test_strict_router_first_in_the_route_set() -> None:
    dialog = Dialog(
        call_id="c1",
        local_tag="l",
        remote_tag="r",
        local_uri=Address("sip:alice@example.com"),
        remote_uri=Address("sip:bob@example.org"),
        remote_target="sip:bob@192.0.2.2",
        route_set=["<sip:strict.example.org;maddr=192.0.2.9;transport=udp>", "<sip:p2;lr>"],
        local_seq=5,
        state=DialogState.CONFIRMED,
    )
    bye = dialog.create_request("BYE", via=ALICE_VIA)
    assert bye.uri == "sip:strict.example.org;transport=udp"
    assert bye.headers.get_all("Route") == ["<sip:p2;lr>", "<sip:bob@192.0.2.2>"]
    assert dialog.next_hop == "sip:strict.example.org;maddr=192.0.2.9;transport=udp"


def test_without_route_set_requests_go_to_the_remote_target() -> None:
    invite = alice_invite()
    invite.headers.remove("Route")
    ok = invite.make_response(200, to_tag="b", headers=[("Contact", "<sip:bob@192.0.2.2>")])
    dialog = Dialog.from_uac(invite, ok)
    assert dialog.route_set == [] and dialog.next_hop == "sip:bob@192.0.2.2"
    bye = dialog.create_request("BYE", via=ALICE_VIA)
    assert bye.uri == "sip:bob@192.0.2.2" and "Route" not in bye.headers


def test_ack_of_2xx_reuses_the_invite_cseq_and_credentials() -> None:
    invite = alice_invite()
    invite.headers.add("Proxy-Authorization", 'Digest username="alice", realm="x"')
    ok = bob_ok(at_bob(invite))
    dialog = Dialog.from_uac(invite, ok)
    ack = dialog.create_ack(invite, via=ALICE_VIA, body=b"v=0\r\n", content_type="application/sdp")
    assert ack.method == "ACK" and str(ack.cseq) == "1 ACK"
    assert dialog.local_seq == 1  # an ACK takes no new CSeq
    assert ack.headers.get("Proxy-Authorization") == 'Digest username="alice", realm="x"'
    assert ack.headers.get_all("Route") == dialog.route_set
    assert ack.uri == dialog.remote_target
    assert ack.top_via.branch != invite.top_via.branch
    assert ack.body == b"v=0\r\n" and ack.content_type == "application/sdp"
    with pytest.raises(SipDialogError):
        dialog.create_ack(ack, via=ALICE_VIA)


def test_early_dialog_is_confirmed_by_the_2xx_and_its_route_set_recomputed() -> None:
    invite = alice_invite()
    ringing = invite.make_response(
        180,
        to_tag="b",
        headers=[("Record-Route", "<sip:old.example;lr>"), ("Contact", "<sip:early@h>")],
    )
    dialog = Dialog.from_uac(invite, ringing)
    assert dialog.state is DialogState.EARLY
    assert dialog.remote_target == "sip:early@h"
    ok = invite.make_response(
        200,
        to_tag="b",
        headers=[
            ("Record-Route", "<sip:b.example;lr>"),
            ("Record-Route", "<sip:a.example;lr>"),
            ("Contact", "<sip:bob@192.0.2.2>"),
        ],
    )
    dialog.receive_response(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.route_set == ["<sip:a.example;lr>", "<sip:b.example;lr>"]
    assert dialog.remote_target == "sip:bob@192.0.2.2"


def test_early_dialog_ends_on_a_failure_and_a_1xx_without_contact_is_fine() -> None:
    invite = alice_invite()
    dialog = Dialog.from_uac(invite, invite.make_response(183, to_tag="b"))
    assert dialog.remote_target == invite.uri
    dialog.receive_response(invite.make_response(486, to_tag="b"))
    assert dialog.terminated
    with pytest.raises(SipDialogError):
        dialog.create_request("INFO", via=ALICE_VIA)


def test_responses_that_end_a_dialog() -> None:
    invite = alice_invite()
    ok = bob_ok(at_bob(invite))
    for status, method in ((481, "INFO"), (408, "INFO"), (200, "BYE"), (401, "BYE")):
        dialog = Dialog.from_uac(invite, ok)
        request = dialog.create_request(method, via=ALICE_VIA)
        dialog.receive_response(request.make_response(status))
        assert dialog.terminated, (status, method)
    dialog = Dialog.from_uac(invite, ok)
    info = dialog.create_request("INFO", via=ALICE_VIA)
    dialog.receive_response(info.make_response(404))
    assert not dialog.terminated


def test_reinvite_refreshes_the_remote_target_both_ways() -> None:
    invite = alice_invite()
    invite_at_bob = at_bob(invite)
    ok = bob_ok(invite_at_bob)
    alice = Dialog.from_uac(invite, ok)
    bob = Dialog.from_uas(invite_at_bob, ok)
    alice.local_contact = "<sip:alice@198.51.100.1:5060>"
    reinvite = alice.create_request("INVITE", via=ALICE_VIA, body=b"v=0\r\n", content_type="a/b")
    assert reinvite.headers.get("Contact") == "<sip:alice@198.51.100.1:5060>"
    assert reinvite.content_type == "a/b"
    bob.receive_request(reinvite)
    assert bob.remote_target == "sip:alice@198.51.100.1:5060"
    answer = reinvite.make_response(200, headers=[("Contact", "<sip:bob@203.0.113.5>")])
    alice.receive_response(answer)
    assert alice.remote_target == "sip:bob@203.0.113.5"


def test_in_dialog_request_checks() -> None:
    invite_at_bob = at_bob(alice_invite())
    bob = Dialog.from_uas(invite_at_bob, bob_ok(invite_at_bob))
    alice = Dialog.from_uac(alice_invite(), bob_ok(invite_at_bob))
    info = alice.create_request("INFO", via=ALICE_VIA)  # CSeq 2
    bob.receive_request(info)
    stale = info.make_response(200)  # reuse headers of a request with a lower CSeq
    old = SipRequest("INFO", info.uri, stale.headers.copy())
    old.headers.set("CSeq", "1 INFO")
    with pytest.raises(SipDialogError) as excinfo:
        bob.receive_request(old)
    assert excinfo.value.status == 500
    cancel_like = SipRequest("ACK", info.uri, info.headers.copy())
    cancel_like.headers.set("CSeq", "1 ACK")
    bob.receive_request(cancel_like)  # ACK carries the INVITE's CSeq: not checked
    stranger = SipRequest("BYE", info.uri, info.headers.copy())
    stranger.headers.set("To", "<sip:bob@example.org>;tag=other")
    stranger.headers.set("CSeq", "9 BYE")
    with pytest.raises(SipDialogError) as excinfo:
        bob.receive_request(stranger)
    assert excinfo.value.status == 481
    assert bob.state is DialogState.CONFIRMED


def test_creation_refuses_unusable_messages() -> None:
    invite = alice_invite()
    with pytest.raises(SipDialogError):
        Dialog.from_uac(invite, invite.make_response(100))
    with pytest.raises(SipDialogError):
        Dialog.from_uac(invite, invite.make_response(486, to_tag="b"))
    no_tag = invite.make_response(200, to_tag="b")
    no_tag.headers.set("To", "<sip:bob@example.org>")
    with pytest.raises(SipDialogError):
        Dialog.from_uac(invite, no_tag)
    with pytest.raises(SipDialogError):
        Dialog.from_uac(invite, invite.make_response(200, to_tag="b"))  # no Contact
    without_contact = at_bob(invite)
    without_contact.headers.remove("Contact")
    with pytest.raises(SipDialogError) as excinfo:
        Dialog.from_uas(without_contact, without_contact.make_response(200, to_tag="b"))
    assert excinfo.value.status == 400
    bad_rr = bob_ok(at_bob(invite))
    bad_rr.headers.add("Record-Route", "<not a uri>")
    with pytest.raises(SipDialogError):
        Dialog.from_uac(invite, bad_rr)


def test_dialog_ids_of_messages_and_the_table() -> None:
    invite = alice_invite()
    assert dialog_id_of_request(invite) is None  # no To tag: not in a dialog
    ok = bob_ok(at_bob(invite))
    assert dialog_id_of_response(ok) == DialogId(
        invite.call_id,
        invite.from_address.tag,  # type: ignore[arg-type]
        "bobtag",
    )
    table = DialogTable()
    dialog = Dialog.from_uac(invite, ok)
    table.add(dialog)
    assert table.find_for_response(ok) is dialog
    assert table.get(dialog.id) is dialog and list(table) == [dialog]
    broken = SipRequest("BYE", "sip:x@h", [("To", "<sip:x@h>;tag=1")])
    assert table.find_for_request(broken) is None
    table.remove(dialog)
    assert len(table) == 0


def test_sips_request_uri_marks_the_dialog_secure() -> None:
    invite = alice_invite()
    invite.uri = "sips:bob@example.org"
    ok = invite.make_response(200, to_tag="b", headers=[("Contact", "<sips:bob@192.0.2.2>")])
    assert Dialog.from_uac(invite, ok).secure
    assert not Dialog.from_uas(invite, ok, secure=False).secure


# -- a whole session setup through the transaction layers ---------------------------------


def test_session_setup_and_teardown_through_two_layers() -> None:
    from messenger.sip.events import RequestReceived, ResponseReceived
    from messenger.sip.sdp import SessionDescription, make_answer, make_offer, negotiate
    from messenger.sip.transaction import TransactionLayer

    rng = random.Random(11)
    alice_layer, bob_layer = TransactionLayer(), TransactionLayer(serve_invites=True)
    a_addr, b_addr = ("192.0.2.1", 5060), ("192.0.2.2", 5070)

    def pump(now: float) -> None:
        moving = True
        while moving:
            moving = False
            for out in alice_layer.messages_to_send():
                moving = True
                bob_layer.receive_data(out.data, remote=a_addr, reliable=True, now=now)
            for out in bob_layer.messages_to_send():
                moving = True
                alice_layer.receive_data(out.data, remote=b_addr, reliable=True, now=now)

    offer = make_offer(path=["msrp://192.0.2.1:40000/a1;tcp"], rng=rng)
    invite = build_invite(
        from_uri="sip:alice@example.com",
        to_uri="sip:bob@example.org",
        contact="sip:alice@192.0.2.1:5060",
        via=ALICE_VIA,
        body=offer.to_bytes(),
        rng=rng,
    )
    invite_key = alice_layer.send_request(invite, remote=b_addr, reliable=True, now=0.0)
    pump(0.0)
    [incoming] = bob_layer.events()
    assert isinstance(incoming, RequestReceived) and incoming.key is not None
    answer, bob_session = make_answer(
        SessionDescription.parse(incoming.request.body), path=["msrp://192.0.2.2:40001/b1;tcp"]
    )
    ok = incoming.request.make_response(
        200,
        headers=[
            ("Contact", "<sip:bob@192.0.2.2:5070;transport=tcp>"),
            ("Content-Type", "application/sdp"),
        ],
        body=answer.to_bytes(),
        to_tag="bobtag",
    )
    bob_dialog = Dialog.from_uas(incoming.request, ok)
    bob_layer.send_response(incoming.key, ok, 0.1)
    pump(0.1)
    responses = [e.response for e in alice_layer.events() if isinstance(e, ResponseReceived)]
    final = responses[-1]
    assert [r.status for r in responses] == [100, 200]
    alice_dialog = Dialog.from_uac(invite, final)
    alice_session = negotiate(offer, SessionDescription.parse(final.body))
    assert alice_session.active is False and bob_session.active is True
    ack = alice_dialog.create_ack(invite, via=ALICE_VIA, rng=rng)
    alice_layer.send_stateless(ack, b_addr)
    pump(0.2)
    [ack_event] = bob_layer.events()
    assert isinstance(ack_event, RequestReceived) and ack_event.request.method == "ACK"
    bob_dialog.receive_request(ack_event.request)
    bob_tx = bob_layer.transaction(incoming.key)
    assert bob_tx is not None and bob_tx.acknowledged  # type: ignore[union-attr]
    bye = alice_dialog.create_request("BYE", via=ALICE_VIA, rng=rng)
    bye_key = alice_layer.send_request(bye, remote=b_addr, reliable=True, now=1.0)
    pump(1.0)
    [bye_event] = [e for e in bob_layer.events() if isinstance(e, RequestReceived)]
    assert bob_dialog.matches_request(bye_event.request)
    bob_dialog.receive_request(bye_event.request)
    assert bob_dialog.terminated
    assert bye_event.key is not None
    bob_layer.send_response(bye_event.key, bye_event.request.make_response(200), 1.1)
    pump(1.1)
    [bye_ok] = [e for e in alice_layer.events() if isinstance(e, ResponseReceived)]
    assert bye_ok.key == bye_key
    alice_dialog.receive_response(bye_ok.response)
    assert alice_dialog.terminated
    assert invite_key.method == "INVITE"
