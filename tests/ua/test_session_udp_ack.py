"""Session set-up over UDP when the ACK is lost: the callee's 2xx is retransmitted (timer G)
and the caller answers each retransmission with the same ACK again (RFC 3261 13.2.2.4,
13.3.1.4), so the session opens instead of ending at timer H."""

from __future__ import annotations

from messenger.sip.message import SipRequest, parse_message


def test_a_lost_ack_over_udp_is_sent_again_on_the_retransmitted_2xx(run, agents, tmp_path):
    async def body() -> None:
        async with agents() as net:
            kw = {"crls": [net.pki.ca.last_crl]}
            alice = await net.add("alice", listens=("udp",), **kw)
            bob = await net.add("bob", listens=("udp",), downloads=tmp_path / "dl", **kw)
            net.link(alice, bob, "udp")
            net.link(bob, alice, "udp")
            alice.set_peer_certificate(bob.aor, net.pki.bob.certificate)
            bob.set_peer_certificate(alice.aor, net.pki.alice.certificate)

            acks: list[bytes] = []
            bobs_2xx: list[bytes] = []
            send_ack = alice.transport.send_stateless

            def lose_first_ack(message, peer) -> None:
                if isinstance(message, SipRequest) and message.method == "ACK":
                    acks.append(message.to_bytes())
                    if len(acks) == 1:
                        return  # the network ate it
                send_ack(message, peer)

            alice.transport.send_stateless = lose_first_ack  # type: ignore[method-assign]

            real_write = bob.transport._write

            def count_2xx(data: bytes, peer: object) -> bool:
                if data.startswith(b"SIP/2.0 200") and b"INVITE\r\n" in data.split(b"\r\n\r\n")[0]:
                    bobs_2xx.append(data)
                return real_write(data, peer)

            bob.transport._write = count_2xx  # type: ignore[method-assign]

            session = await alice.start_session(bob.aor)
            assert session.state == "established"
            # bob's side opens only when an ACK arrives: the second one
            await bob.recorder.wait("notice", lambda e: "is open" in e.text)
            assert len(acks) >= 2, "the caller never sent the ACK again"
            assert len(set(acks)) == 1, "the re-sent ACK must be the same request"
            assert len(bobs_2xx) >= 2, "the callee never retransmitted its 2xx"
            first, again = (parse_message(x) for x in bobs_2xx[:2])
            assert first.call_id == again.call_id and first.status == again.status == 200

            # and the session works: a signed and encrypted message crosses it
            result = await alice.send_text(bob.aor, "after a lost ACK", session=True)
            assert result.delivered, result
            received = await bob.recorder.wait("message")
            assert received.transport == "msrp" and received.content == b"after a lost ACK"
            assert received.report["confidentiality"] == "encrypted"
            assert received.report["authenticity"] == "verified"

    run(body())
