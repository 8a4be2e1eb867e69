"""Outgoing messages a previous run left pending go out again when the agent starts.

The agent is restarted in process on the same profile: the first run is cut off while its
MESSAGE is on the wire (or after the peer stored it, before the answer was recorded), the
second run sends the message again by itself, once, with its original message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from messenger.ua.agent import Listen, UserAgent

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"


async def _restart(net, old: UserAgent, contacts: dict[str, str]) -> UserAgent:
    """Stop ``old`` and start a new agent on its profile (fresh listeners)."""
    await old.stop()
    config = dataclasses.replace(
        old.config,
        listens=[Listen("udp", "127.0.0.1", 0), Listen("tcp", "127.0.0.1", 0)],
        contacts=dict(contacts),
    )
    agent = UserAgent(config)
    recorder = type(old.recorder)()  # type: ignore[attr-defined]
    agent.subscribe(recorder)
    agent.recorder = recorder  # type: ignore[attr-defined]
    net.started.append(agent)
    await agent.start()
    return agent


class _Silent(asyncio.DatagramProtocol):
    """A UDP peer that takes MESSAGEs and never answers."""

    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        self.got.put_nowait(data)


@contextlib.asynccontextmanager
async def _silent_peer():
    """A `_Silent` peer on loopback: yields its "host:port" and the queue of what it got."""
    loop = asyncio.get_running_loop()
    transport, silent = await loop.create_datagram_endpoint(_Silent, local_addr=("127.0.0.1", 0))
    try:
        host, port = transport.get_extra_info("sockname")[:2]
        yield f"{host}:{port}", silent.got
    finally:
        transport.close()


def _contact(agent: UserAgent) -> str:
    host, port = agent.addresses["udp"]
    return f"{host}:{port}"


def _leave_pending(alice: UserAgent, message_id: str, content: bytes, at) -> None:
    """A message from Alice to Bob stored pending, as a run that ended unanswered left it."""
    alice.store.add_outgoing(
        peer=BOB,
        local=ALICE,
        message_id=message_id,
        content_type="text/plain;charset=utf-8",
        content=content,
        at=at,
    )


def test_a_message_cut_off_on_the_wire_is_sent_at_the_next_start(agents, run):
    async def body():
        async with _silent_peer() as (silent_address, silent_got), agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice", listens=("udp",))
            alice.config.contacts[BOB] = silent_address
            # unsigned: small enough for the silent peer's UDP
            sending = asyncio.ensure_future(
                alice.send_text(BOB, "written before a crash", sign=False)
            )
            await asyncio.wait_for(silent_got.get(), 10)  # on the wire, no answer
            sending.cancel()  # the process ends here
            (pending,) = alice.store.pending_outgoing()

            alice = await _restart(net, alice, {BOB: _contact(bob)})
            got = await bob.recorder.wait("message")
            assert got.text == "written before a crash"
            assert got.message_id == pending.message_id
            delivery = await alice.recorder.wait("delivery")
            assert (delivery.message_id, delivery.state) == (pending.message_id, "delivered")
            response = await alice.recorder.wait("response")
            assert (response.message_id, response.status) == (pending.message_id, 200)
            assert alice.store.pending_outgoing() == []
            assert alice.store.message(pending.message_id).delivery == "delivered"

            # nothing is left pending, so the next start sends nothing again
            alice = await _restart(net, alice, {BOB: _contact(bob)})
            assert await alice.resend_pending() == []
            assert len(bob.recorder.of("message")) == 1
            assert bob.store.count(ALICE) == 1

    run(body())


def test_a_message_the_peer_already_stored_is_not_shown_twice(agents, run):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice", listens=("udp",))
            net.link(alice, bob)
            first = await alice.send_text(BOB, "answer lost")
            assert first.delivered
            # the 200 arrived but the process ended before recording it
            alice.store.set_delivery(first.message_id, "pending", at=alice.now())

            alice = await _restart(net, alice, {BOB: _contact(bob)})
            delivery = await alice.recorder.wait("delivery")
            assert (delivery.message_id, delivery.state) == (first.message_id, "delivered")
            assert "already had this message" in delivery.reason
            refused = await bob.recorder.wait("refused")
            assert refused.status == 403 and first.message_id in refused.reason
            assert len(bob.recorder.of("message")) == 1
            assert bob.store.count(ALICE) == 1
            assert alice.store.message(first.message_id).delivery == "delivered"
            assert alice.store.pending_outgoing() == []

    run(body())


def test_pending_messages_go_out_once_even_when_asked_twice(agents, run, pki):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice", listens=("udp",), resend_pending=False)
            net.link(alice, bob)
            for n in range(3):
                _leave_pending(alice, f"left-behind-{n}", f"pending {n}".encode(), pki.now)
            first, second = await asyncio.gather(alice.resend_pending(), alice.resend_pending())
            sent = [r.message_id for r in first + second]
            assert sorted(sent) == ["left-behind-0", "left-behind-1", "left-behind-2"]
            assert all(r.delivered for r in first + second)
            # one peer's messages keep the order they were written in
            assert [m.text for m in bob.store.messages(ALICE)] == [
                "pending 0",
                "pending 1",
                "pending 2",
            ]
            assert len(bob.recorder.of("message")) == 3

    run(body())


def test_an_agent_told_not_to_leaves_pending_messages_alone(agents, run, pki):
    async def body():
        async with agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice", listens=("udp",), resend_pending=False)
            _leave_pending(alice, "stays-pending", b"later", pki.now)
            quiet = await _restart(net, alice, {BOB: _contact(bob)})
            # a send of its own goes out and is answered while the old one stays pending
            assert (await quiet.send_text(BOB, "now")).delivered
            assert [m.message_id for m in quiet.store.pending_outgoing()] == ["stays-pending"]
            assert [m.text for m in bob.store.messages(ALICE)] == ["now"]

    run(body())


def test_a_resend_cut_short_leaves_the_message_to_the_next_one(agents, run, pki):
    async def body():
        async with _silent_peer() as (silent_address, silent_got), agents() as net:
            bob = await net.add("bob")
            alice = await net.add("alice", resend_pending=False, sign=False)
            alice.config.contacts[BOB] = silent_address
            for name in ("cut-short", "not-reached"):  # the second waits for the first
                _leave_pending(alice, name, b"try again", pki.now)
            resending = asyncio.ensure_future(alice.resend_pending())
            await asyncio.wait_for(silent_got.get(), 10)
            resending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resending
            alice.config.contacts[BOB] = _contact(bob)
            results = await alice.resend_pending()
            assert [r.message_id for r in results] == ["cut-short", "not-reached"]
            assert all(r.delivered for r in results)
            assert [m.message_id for m in bob.store.messages(ALICE)] == [
                "cut-short",
                "not-reached",
            ]

    run(body())
