"""Delivery notifications that cannot go out are not built again and again."""

from __future__ import annotations

import pytest

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"


def test_a_notification_too_large_for_the_only_route_is_not_rebuilt(agents, run, pki):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice", listens=("udp",))
            net.link(alice, bob)
            # bob reaches alice over UDP alone: a signed and encrypted notification is
            # larger than UDP allows
            host, port = alice.addresses["udp"]
            bob.config.contacts[ALICE] = f"udp:{host}:{port}"
            alice.set_peer_certificate(BOB, pki.bob.encryption_certificate)

            def notifications():
                return [
                    e
                    for e in bob.recorder.of("response")
                    if "delivery notification" in e.explanation
                ]

            first = await alice.send_text(BOB, "first")
            assert first.delivered and first.encrypted
            await bob.recorder.wait("response", lambda e: "delivery notification" in e.explanation)
            (note,) = notifications()
            assert note.status == 0
            assert "1300 bytes" in note.explanation and "for 30 s" in note.explanation

            second = await alice.send_text(BOB, "second")
            assert second.delivered
            await bob.recorder.wait("message", lambda e: e.text == "second")
            # nothing is built (nor refused) for the second: no other notification outcome
            with pytest.raises(TimeoutError):
                await bob.recorder.wait(
                    "response",
                    lambda e: "delivery notification" in e.explanation and e is not note,
                    timeout=1.5,
                )
            assert len(notifications()) == 1

    run(body())
