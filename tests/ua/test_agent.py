"""Two in-process agents on loopback exchanging protected MESSAGEs in direct mode."""

from __future__ import annotations

BOB = "sip:bob@example.test"
ALICE = "sip:alice@example.test"


def test_signed_and_encrypted_message_is_received_with_a_verified_report(agents, pki, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob", crls=[pki.ca.last_crl])
            alice = await net.add("alice", crls=[pki.ca.last_crl])
            net.link(alice, bob)
            alice.decide_trust(BOB, pki.bob.certificate, "trust")
            result = await alice.send_text(BOB, "Watson, come here")
            assert result.delivered and result.status == 200
            assert result.signed and result.encrypted
            received = await bob.recorder.wait("message")
            assert received.sender == ALICE
            assert received.text == "Watson, come here"
            report = received.report
            assert report["confidentiality"] == "encrypted"
            assert report["authenticity"] == "verified"
            assert report["sender_match"] is True
            assert report["layers"] == ["authEnveloped-data", "signed-data"]
            assert report["replay"] == "fresh"
            assert report["cpim_covered"] == ["From", "To", "DateTime"]
            assert report["green"] is True
            stored = bob.store.message(result.message_id)
            assert stored is not None and stored.direction == "in"
            assert alice.store.message(result.message_id).delivery in ("delivered", "displayed")

    run(body())


def test_signed_only_message_teaches_the_certificate_and_the_answer_is_encrypted(agents, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice")
            net.link(alice, bob)
            net.link(bob, alice)
            first = await alice.send_text(BOB, "hello")
            assert first.delivered and first.signed and not first.encrypted
            learned = await bob.recorder.wait("certificate")
            assert learned.peer == ALICE and learned.changed is False
            assert bob.peer_certificate(ALICE) == alice.identity.certificate
            answer = await bob.send_text(ALICE, "hello back")
            assert answer.delivered and answer.encrypted
            got = await alice.recorder.wait("message")
            assert got.report["confidentiality"] == "encrypted"
            # bob encrypted to alice: she knows he holds her certificate from now on
            assert alice.store.peer_has_certificate(BOB)

    run(body())


def test_a_failing_subscriber_does_not_stop_the_agent(agents, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")

            def broken(event):
                raise RuntimeError("a face with a bug")

            bob.subscribe(broken)
            alice = await net.add("alice")
            net.link(alice, bob)
            result = await alice.send_text(BOB, "still delivered")
            assert result.delivered
            assert (await bob.recorder.wait("message")).text == "still delivered"

    run(body())
