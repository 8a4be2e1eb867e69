"""Session mode end to end between two in-process agents on loopback: INVITE/200/ACK with
SDP, MSRP over TCP and TLS, protected files and large messages, BYE, CANCEL, 488, and a
peer's MSRP 415."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from msrp_harness import MB, agent_pair, random_file

from messenger.ua.sessions import SessionSetupError


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _notices(agent, words: str) -> list:
    return [e for e in agent.recorder.of("notice") if words in e.text]


def test_invite_200_ack_then_bye_ends_both_sides(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            session = await alice.start_session(bob.aor)
            assert session.state == "established" and session.open
            assert session.dialog is not None and session.dialog.state.value == "confirmed"
            await bob.recorder.wait("notice", lambda e: "is open" in e.text)
            theirs = bob.sessions.sessions()
            assert len(theirs) == 1 and theirs[0].state == "established"
            assert theirs[0].call_id == session.call_id
            assert theirs[0].negotiated is not None and not theirs[0].negotiated.tls
            # a second request for a session with the same peer reuses the open one
            assert await alice.start_session(bob.aor) is session
            await alice.sessions.end_session(session)
            assert session.state == "ended"
            await bob.recorder.wait("notice", lambda e: "ended" in e.text and "ended it" in e.text)
            assert bob.sessions.sessions() == []

    run(body())


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_signed_and_encrypted_file_arrives_verified(tls, run, agents, tmp_path, tls_server) -> None:
    async def body() -> None:
        async with agents() as net:
            extra = {}
            if tls:
                # only the offerer listens (TLS server); the answerer connects as a client
                cert, key = tls_server
                extra = {"tls_certificate": cert, "tls_key": key}
            alice, bob = await agent_pair(net, tmp_path, alice_kw=extra)
            if tls:
                alice.sessions.msrp_tls = True
            source = random_file(tmp_path, "report.pdf", 3 * MB + 123)
            result = await alice.send_file(bob.aor, source)
            assert result.delivered and result.status == 200, result
            assert result.encrypted and result.signed
            received = await bob.recorder.wait("message", lambda e: e.filename is not None)
            assert received.transport == "msrp" and received.sender == alice.aor
            assert received.filename == "report.pdf"
            assert received.report["authenticity"] == "verified"
            assert received.report["confidentiality"].startswith("encrypted")
            assert _sha(Path(received.path)) == _sha(source)
            assert Path(received.path).parent == tmp_path / "bob-downloads"
            steps = [e for e in bob.recorder.of("progress") if e.direction == "in"]
            assert steps[-1].state == "complete" and len(steps) >= 3
            sent = [e for e in alice.recorder.of("progress") if e.direction == "out"]
            assert sent[-1].state == "complete"
            session = alice.sessions.session_with(bob.aor)
            assert session is not None and session.negotiated is not None
            assert session.negotiated.tls is tls
            stored = alice.store.message(result.message_id)
            assert stored is not None and stored.delivery == "delivered"

    run(body())


def test_large_message_goes_over_a_session(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            text = "a long letter. " * 6000  # 90 kB: more than a MESSAGE may carry
            result = await alice.send_text(bob.aor, text)
            assert result.delivered and result.encrypted and result.signed, result
            received = await bob.recorder.wait("message")
            assert received.transport == "msrp" and received.content == text.encode()
            assert received.report["authenticity"] == "verified"
            assert alice.store.message(result.message_id).delivery == "delivered"

    run(body())


def test_udp_only_peer_gets_oversized_message_over_a_session(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path, listens=("udp",))  # only UDP reaches bob
            text = "x" * 2000  # protected, far above 1300 bytes
            result = await alice.send_text(bob.aor, text)
            assert result.delivered, result
            received = await bob.recorder.wait("message")
            assert received.transport == "msrp" and received.content == text.encode()
            invites = [e for e in alice.recorder.of("sip") if e.summary.startswith("INVITE")]
            assert invites and all(e.transport == "udp" for e in invites)

    run(body())


def test_text_over_an_explicit_session(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            result = await alice.send_text(bob.aor, "short, but in a session", session=True)
            assert result.delivered, result
            received = await bob.recorder.wait("message")
            assert received.transport == "msrp"
            assert received.content == b"short, but in a session"

    run(body())


def test_cancel_of_an_invite_nobody_answers(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            bob.sessions.auto_answer = False
            with pytest.raises(SessionSetupError) as caught:
                await alice.sessions.start_session(bob.aor, ring_limit=0.5)
            assert "did not answer within 0.5 s" in str(caught.value)
            assert caught.value.status == 487
            await bob.recorder.wait("notice", lambda e: "cancelled" in e.text)
            assert bob.sessions.sessions() == []
            assert alice.sessions.sessions() == []
            alice.sessions.ring_limit = 0.5
            result = await alice.send_file(bob.aor, random_file(tmp_path, "f.bin", 10))
            # nobody answers at bob: the file is not delivered, and the result says why
            assert not result.delivered and "did not answer" in result.explanation
            assert alice.store.message(result.message_id).delivery == "failed"

    run(body())


def test_ringing_limit_at_the_callee_answers_480(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            bob.sessions.auto_answer = False
            bob.sessions.ring_limit = 0.3
            with pytest.raises(SessionSetupError) as caught:
                await alice.sessions.start_session(bob.aor, ring_limit=10)
            assert caught.value.status == 480
            assert "not available" in str(caught.value)

    run(body())


def test_accepting_a_ringing_session(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            bob.sessions.auto_answer = False
            opening = asyncio.ensure_future(alice.start_session(bob.aor))
            await bob.recorder.wait("notice", lambda e: "invites you" in e.text)
            ringing = bob.sessions.sessions()
            assert [s.state for s in ringing] == ["ringing"]
            assert bob.sessions.accept(ringing[0].call_id)
            session = await opening
            assert session.open

    run(body())


class _RefusingPeer(asyncio.DatagramProtocol):
    """A SIP peer on UDP that refuses every INVITE with 488 and a Warning."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.acked = asyncio.Event()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        from messenger.sip.message import parse_message

        request = parse_message(data)
        if request.method == "ACK":
            self.acked.set()
            return
        warning = ("Warning", '399 peer "only TCP/TLS/MSRP with a=setup:passive is taken"')
        response = request.make_response(488, "Not Acceptable Here", [warning], to_tag="x1")
        assert self.transport is not None
        self.transport.sendto(response.to_bytes(), addr)


def test_488_from_the_peer_is_explained(run, agents, tmp_path) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(
            _RefusingPeer, local_addr=("127.0.0.1", 0)
        )
        try:
            async with agents() as net:
                alice = await net.add("alice", listens=("udp",))
                port = transport.get_extra_info("sockname")[1]
                alice.config.contacts["sip:bob@example.test"] = f"udp:127.0.0.1:{port}"
                with pytest.raises(SessionSetupError) as caught:
                    await alice.start_session("sip:bob@example.test")
                assert caught.value.status == 488
                assert "refused the session" in str(caught.value)
                assert "only TCP/TLS/MSRP" in str(caught.value)
                await asyncio.wait_for(peer.acked.wait(), 5)  # the 488 was acknowledged
        finally:
            transport.close()

    run(body())


async def _exchange(address, data: bytes, final: int = 200) -> list[bytes]:
    """Send one datagram; collect what comes back until a final response."""
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, reply: bytes, addr) -> None:
            got.put_nowait(reply)

    transport, _ = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
    out = []
    try:
        transport.sendto(data, address)
        while True:
            reply = await asyncio.wait_for(got.get(), 5)
            out.append(reply)
            status = int(reply.split(b" ", 2)[1])
            if status >= final:
                return out
    finally:
        transport.close()


def _raw_invite(sdp: bytes, content_type: str = "application/sdp") -> bytes:
    head = (
        f"INVITE sip:bob@example.test SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-raw{len(sdp)}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:carol@example.test>;tag=c1\r\n"
        "To: <sip:bob@example.test>\r\n"
        f"Call-ID: raw-{len(sdp)}@test\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:carol@127.0.0.1:5999>\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n"
    )
    return head.encode() + sdp


def test_an_offer_without_msrp_gets_488_with_a_reason(run, agents, tmp_path) -> None:
    audio = (
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0\r\n"
    )

    async def body() -> None:
        async with agents() as net:
            bob = await net.add("bob", listens=("udp",))
            replies = await _exchange(bob.addresses["udp"], _raw_invite(audio))
            final = replies[-1].decode()
            assert final.startswith("SIP/2.0 488 ")
            assert "Warning: 399" in final and "no MSRP message stream" in final
            await bob.recorder.wait("notice", lambda e: "was refused (488)" in e.text)
            replies = await _exchange(
                bob.addresses["udp"],
                _raw_invite(b"hello", "text/plain")
                .replace(b"branch=z9hG4bK-raw5", b"branch=z9hG4bK-other")
                .replace(b"Call-ID: raw-5", b"Call-ID: other-5"),
            )
            assert replies[-1].startswith(b"SIP/2.0 415 ")
            assert b"Accept: application/sdp" in replies[-1]

    run(body())


def test_peer_answering_msrp_415_cannot_take_smime(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            bob.sessions.accept_types = ("text/plain",)  # a peer without S/MIME over MSRP
            result = await alice.send_file(bob.aor, random_file(tmp_path, "secret.txt", 2000))
            assert not result.delivered and result.status == 415
            assert "does not accept S/MIME" in result.explanation
            learned = await alice.recorder.wait("capability")
            assert learned.capability == "smime" and learned.value is False
            assert alice.store.message(result.message_id).delivery == "failed"
            assert [e for e in bob.recorder.of("message")] == []

    run(body())


def test_cancel_transfer_aborts_it(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            source = random_file(tmp_path, "big.bin", 24 * MB)
            sending = asyncio.ensure_future(alice.send_file(bob.aor, source))
            first = await alice.recorder.wait(
                "progress", lambda e: e.direction == "out" and e.done > 0, timeout=30
            )
            assert alice.cancel_transfer(first.transfer_id)
            result = await sending
            assert not result.delivered and "cancelled" in result.explanation
            assert not alice.cancel_transfer("no-such-transfer")
            await bob.recorder.wait(
                "progress", lambda e: e.direction == "in" and e.state == "aborted", timeout=30
            )
            assert bob.recorder.of("message") == []
            assert list((tmp_path / "bob-downloads").glob("*")) == []

    run(body())


def test_bye_from_the_callee_ends_the_callers_session(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            session = await alice.start_session(bob.aor)
            await bob.recorder.wait("notice", lambda e: "is open" in e.text)
            theirs = bob.sessions.sessions()[0]
            await bob.sessions.end_session(theirs, "the user closed the chat")
            await alice.recorder.wait("notice", lambda e: "ended it" in e.text)
            assert session.state == "ended" and not session.open
            assert alice.sessions.sessions() == []

    run(body())


def test_a_broken_msrp_connection_is_replaced_by_a_new_session(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            first = await alice.start_session(bob.aor)
            await bob.recorder.wait("notice", lambda e: "is open" in e.text)
            theirs = bob.sessions.sessions()[0]
            assert theirs.chat is not None
            await theirs.chat.close()  # the MSRP connection drops, the dialog stays
            await alice.recorder.wait("notice", lambda e: "MSRP session" in e.text)
            assert not first.open
            result = await alice.send_text(bob.aor, "after the drop", session=True)
            assert result.delivered, result
            assert first.state == "ended" and "MSRP connection ended" in first.reason
            received = await bob.recorder.wait("message")
            assert received.content == b"after the drop"
            assert [s.call_id != first.call_id for s in alice.sessions.sessions()] == [True]

    run(body())


def test_in_dialog_requests_that_match_nothing(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            bob = await net.add("bob", listens=("udp",))
            bye = (
                _raw_invite(b"")
                .replace(b"INVITE sip:", b"BYE sip:")
                .replace(b"CSeq: 1 INVITE", b"CSeq: 2 BYE")
                .replace(b"To: <sip:bob@example.test>", b"To: <sip:bob@example.test>;tag=zz")
            )
            replies = await _exchange(bob.addresses["udp"], bye)
            assert replies[-1].startswith(b"SIP/2.0 481 ")
            reinvite = _raw_invite(b"v=0\r\n").replace(
                b"To: <sip:bob@example.test>", b"To: <sip:bob@example.test>;tag=zz"
            )
            replies = await _exchange(bob.addresses["udp"], reinvite)
            assert replies[-1].startswith(b"SIP/2.0 488 ")
            assert b"changing a session is not supported" in replies[-1]

    run(body())


def test_relay_uri_is_checked_with_words() -> None:
    from messenger.ua.profile import parse_msrp_relay

    assert parse_msrp_relay("msrp://127.0.0.1:2855;tcp").port == 2855
    with pytest.raises(ValueError, match=r"not an MSRP URI.*msrp://HOST:PORT;tcp"):
        parse_msrp_relay("sip:relay.example.test")


def test_stopping_while_an_invite_rings_cancels_it(run, agents, tmp_path) -> None:
    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            bob.sessions.auto_answer = False
            calling = asyncio.ensure_future(alice.start_session(bob.aor))
            await bob.recorder.wait("notice", lambda e: "invites you" in e.text)
            await alice.stop()
            await bob.recorder.wait("notice", lambda e: "cancelled" in e.text)
            assert bob.sessions.sessions() == []
            with pytest.raises((SessionSetupError, asyncio.CancelledError)):
                await calling

    run(body())


def test_mutated_offers_get_an_answer_never_a_crash(run, agents, tmp_path) -> None:
    """Offers cut short or with bytes flipped: each INVITE gets 180 (a usable offer, left
    ringing) or a refusal that says why (488 with a Warning, 415, 400), never a 500."""
    import random

    from messenger.sip.sdp import make_offer

    valid = make_offer(path=["msrp://127.0.0.1:40000/abcdefgh;tcp"]).to_bytes()
    rng = random.Random(8591)
    bodies = [valid[:cut] for cut in range(1, len(valid), 7)]
    for _ in range(120):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        bodies.append(bytes(body))

    async def body() -> None:
        async with agents() as net:
            bob = await net.add("bob", listens=("udp",))
            bob.sessions.auto_answer = False
            for n, sdp in enumerate(bodies):
                invite = _raw_invite(sdp).replace(b"-raw", f"-m{n}-".encode())
                invite = invite.replace(b"Call-ID: raw-", f"Call-ID: m{n}-".encode())
                await bob.receive_bytes(invite, transport="udp", remote=("127.0.0.1", 9))

            def answered() -> dict[str, int]:
                out: dict[str, int] = {}
                for e in bob.recorder.of("sip"):
                    if e.direction == "out" and e.summary.startswith("SIP/2.0 "):
                        status = int(e.summary.split()[1])
                        call = e.raw.split(b"Call-ID: ", 1)[1].split(b"@", 1)[0].decode()
                        if status >= 180:
                            out[call] = status
                return out

            deadline = asyncio.get_running_loop().time() + 20
            while len(answered()) < len(bodies):  # refusals of unusable SDP are async
                assert asyncio.get_running_loop().time() < deadline, answered()
                await asyncio.sleep(0.01)
            statuses = set(answered().values())
            assert statuses <= {180, 400, 415, 488}, statuses
            assert 488 in statuses and 180 in statuses
            assert not [e for e in bob.recorder.of("notice") if "answered 500" in e.text]

    run(body())


def test_sip_over_tls_brings_msrp_over_tls(run, agents, tmp_path, tls_server) -> None:
    async def body() -> None:
        async with agents() as net:
            cert, key = tls_server
            alice, bob = await agent_pair(
                net, tmp_path, listens=("tls",), tls_certificate=cert, tls_key=key
            )
            result = await alice.send_text(bob.aor, "secure all the way", session=True)
            assert result.delivered, result
            received = await bob.recorder.wait("message")
            assert received.transport == "msrp" and received.content == b"secure all the way"
            session = alice.sessions.session_with(bob.aor)
            assert session is not None and session.negotiated is not None
            assert session.negotiated.tls and session.dialog is not None
            assert session.dialog.remote_target.startswith("sips:")
            await alice.sessions.end_session(session)
            await bob.recorder.wait("notice", lambda e: "ended it" in e.text)

    run(body())


def test_concurrent_sends_over_one_session_keep_their_own_protection(run, agents, tmp_path) -> None:
    """A plain message and a signed-and-encrypted file sent at the same moment over the
    same session: each arrives protected as it was asked, not as the other."""

    async def body() -> None:
        async with agents() as net:
            alice, bob = await agent_pair(net, tmp_path)
            await alice.start_session(bob.aor)
            source = random_file(tmp_path, "secret.bin", 2 * MB)
            text = "x" * (2 * MB)
            plain, protected = await asyncio.gather(
                alice.send_text(bob.aor, text, sign=False, encrypt=False, session=True),
                alice.send_file(bob.aor, source, sign=True, encrypt=True),
            )
            assert plain.delivered and not plain.signed and not plain.encrypted, plain
            assert protected.delivered and protected.signed and protected.encrypted, protected
            message = await bob.recorder.wait("message", lambda e: e.filename is None)
            file = await bob.recorder.wait("message", lambda e: e.filename is not None)
            assert message.report["confidentiality"] == "plaintext"
            assert message.report["authenticity"] == "unsigned"
            assert file.report["confidentiality"].startswith("encrypted")
            assert file.report["authenticity"] == "verified"
            assert _sha(Path(file.path)) == _sha(source)

    run(body())
