"""Pager mode through a real registrar and proxy: Kamailio on loopback.

Two agents register (their Contact is their TCP listener, so the proxy can always reach
them with a large request), exchange signed and encrypted MESSAGEs, small ones over UDP
and large ones over TCP on the leg from the sender to the proxy, see 404 for an AoR that
is not registered, and answer the digest challenges of a registrar that asks (401 on
REGISTER, 407 on MESSAGE).
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from messenger.pki.authority import create_authority
from messenger.pki.identity import create_identity
from messenger.ua.agent import AccountConfig, Listen, UserAgent


@pytest.fixture(scope="module")
def pki():
    now = datetime.now(UTC)
    ca = create_authority("Kamailio Test CA", now=now)
    return ca, {
        user: create_identity(f"sip:{user}@example.test", authority=ca, now=now)
        for user in ("alice", "bob", "carol")
    }


def run(coro, timeout: float = 90.0):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def start_agent(k, pki, user: str, *, password: str | None = None, root: Path):
    ca, identities = pki
    proxy = f"sip:127.0.0.1:{k.udp_port}"
    agent = UserAgent(
        AccountConfig(
            aor=k.aor(user),
            identity=identities[user],
            profile=root / user,
            listens=[Listen("udp", "127.0.0.1", 0), Listen("tcp", "127.0.0.1", 0)],
            registrar=f"sip:{k.domain}",
            proxy=proxy,
            password=password,
            trust_anchors=[ca.certificate],
            crls=[ca.last_crl],
            register_expires=120,
        )
    )
    events: list = []
    agent.subscribe(events.append)
    agent.events = events  # type: ignore[attr-defined]
    await agent.start()
    return agent


async def wait_for(events: list, kind: str, predicate=lambda e: True, timeout: float = 10):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for event in events:
            if event.kind == kind and predicate(event):
                return event
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"no {kind} event; got {[e.to_json() for e in events if e.kind != 'sip']}"
            )
        await asyncio.sleep(0.02)


def _messages_out(agent) -> list:
    return [
        e
        for e in agent.events
        if e.kind == "sip" and e.direction == "out" and e.summary.startswith("MESSAGE")
    ]


def test_register_and_exchange_protected_messages_over_udp_and_tcp(kamailio, pki):
    async def body():
        root = Path(tempfile.mkdtemp(prefix="kamailio-pager-"))
        alice = await start_agent(kamailio, pki, "alice", root=root)
        bob = await start_agent(kamailio, pki, "bob", root=root)
        try:
            for agent in (alice, bob):
                registered = await wait_for(agent.events, "registered")
                assert registered.expires > 0
            bindings = await asyncio.to_thread(kamailio.bindings, "bob")
            assert any("transport=tcp" in b for b in bindings)

            # first contact: signed with the certificate (too large for UDP: TCP)
            first = await alice.send_text(bob.aor, "hello through the proxy")
            assert first.delivered, first.explanation
            got = await wait_for(bob.events, "message")
            assert got.report["authenticity"] == "verified"
            assert got.report["sender_match"] is True
            # bob learned alice's certificate: his answer is signed and encrypted
            answer = await bob.send_text(alice.aor, "hello back, encrypted")
            assert answer.delivered and answer.encrypted
            got = await wait_for(alice.events, "message")
            assert got.report["confidentiality"] == "encrypted"
            assert got.report["authenticity"] == "verified"

            # alice now knows bob has her certificate: the compact forms (no certificate,
            # key identifiers) let a small signed MESSAGE, and a small encrypted one, fit UDP
            for sign, encrypt in ((True, False), (False, True)):
                alice.events.clear()
                small = await alice.send_text(bob.aor, "small", sign=sign, encrypt=encrypt)
                assert small.delivered and (small.signed, small.encrypted) == (sign, encrypt)
                assert [(e.transport, len(e.raw) <= 1300) for e in _messages_out(alice)] == [
                    ("udp", True)
                ]
                got = await wait_for(
                    bob.events, "message", lambda e, m=small.message_id: e.message_id == m
                )
                assert got.text == "small"
                assert got.report["confidentiality"] == ("encrypted" if encrypt else "plaintext")
                assert got.report["authenticity"] == ("verified" if sign else "unsigned")
            # signed AND encrypted, even this short, is over 1300 bytes (about 1470 with
            # P-256): it goes over TCP
            alice.events.clear()
            both = await alice.send_text(bob.aor, "small")
            assert both.delivered and both.signed and both.encrypted
            sent = _messages_out(alice)
            assert sent[0].transport == "tcp" and len(sent[0].raw) > 1300
            # and a large signed-and-encrypted one goes over TCP
            alice.events.clear()
            large = await alice.send_text(bob.aor, "large and secret " * 200)
            assert large.delivered and large.encrypted and large.signed
            sent = _messages_out(alice)
            assert sent[0].transport == "tcp" and len(sent[0].raw) > 1300
            got = await wait_for(bob.events, "message", lambda e: e.message_id == large.message_id)
            assert got.report["confidentiality"] == "encrypted"
            assert got.report["authenticity"] == "verified"
            assert got.text == "large and secret " * 200
            # the delivery notification came back through the proxy too
            await wait_for(
                alice.events,
                "delivery",
                lambda e: e.message_id == large.message_id and "notification" in e.reason,
            )

            # an AoR nobody registered
            missing = await alice.send_text("sip:nobody@example.test", "anyone?", encrypt=False)
            assert missing.status == 404 and not missing.delivered
            assert "not registered" in missing.explanation
        finally:
            await alice.stop()
            await bob.stop()
        # stopping un-registered both
        assert await asyncio.to_thread(kamailio.bindings, "alice") == []
        assert await asyncio.to_thread(kamailio.bindings, "bob") == []

    run(body())


def test_digest_challenges_are_answered(kamailio_auth, pki):
    k = kamailio_auth

    async def body():
        root = Path(tempfile.mkdtemp(prefix="kamailio-auth-"))
        alice = await start_agent(k, pki, "alice", password=k.users["alice"], root=root)
        bob = await start_agent(k, pki, "bob", password=k.users["bob"], root=root)
        try:
            await wait_for(alice.events, "registered")
            await wait_for(bob.events, "registered")
            challenged = [
                e.summary for e in alice.events if e.kind == "sip" and e.direction == "in"
            ]
            assert any(s.startswith("SIP/2.0 401") for s in challenged)
            result = await alice.send_text(bob.aor, "authenticated", encrypt=False)
            assert result.delivered, result.explanation
            assert any(
                e.kind == "sip" and e.direction == "in" and e.summary.startswith("SIP/2.0 407")
                for e in alice.events
            )
            got = await wait_for(bob.events, "message")
            assert got.text == "authenticated"
        finally:
            await alice.stop()
            await bob.stop()

    run(body())


def test_wrong_password_is_refused_in_words(kamailio_auth, pki):
    async def body():
        root = Path(tempfile.mkdtemp(prefix="kamailio-auth-bad-"))
        carol = await start_agent(kamailio_auth, pki, "carol", password="not-it", root=root)
        try:
            failed = await wait_for(carol.events, "registration-failed")
            assert failed.status in (401, 403)
            assert "password" in failed.reason or "refused" in failed.reason
        finally:
            await carol.stop()

    run(body())


def test_agent_command_registers_and_unregisters_on_sigterm(kamailio, pki, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys

    from messenger.pki.identity import save_identity

    _, identities = pki
    save_identity(identities["carol"], tmp_path / "carol", None)
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "messenger", "agent",
            "--aor", kamailio.aor("carol"),
            "--identity", str(tmp_path / "carol"),
            "--listen", "udp:127.0.0.1:0",
            "--registrar", f"sip:{kamailio.domain}",
            "--proxy", f"sip:127.0.0.1:{kamailio.udp_port}",
            "--profile", str(tmp_path / "profile"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        events = []
        while not any(e["event"] == "registered" for e in events):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            events.append(json.loads(line))
        assert kamailio.bindings("carol")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        rest = [json.loads(line) for line in proc.stdout.read().splitlines()]
        assert [e["event"] for e in rest][-2:] == ["unregistered", "stopped"]
        assert kamailio.bindings("carol") == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
