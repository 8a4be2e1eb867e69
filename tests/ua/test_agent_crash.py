"""A real `messenger agent` (and `messenger send`) killed with SIGKILL at random moments.

Incoming: a client sends protected MESSAGEs over UDP to the agent as fast as it answers;
the agent is killed at a random moment; every message that was answered 200 must be in
the store when it is opened afterwards (three rounds on the same profile, so the store
also has to come back from each kill).

Outgoing: `messenger send` to a peer that never answers is killed at a random moment;
whenever its MESSAGE reached the wire, the message must be in the sender's store
(pending or later): it is stored before it is sent.

The random moments come from a seeded generator; the seed is in the failure message.
"""

from __future__ import annotations

import random
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

_INTEROP = Path(__file__).resolve().parents[1] / "interop"
if str(_INTEROP) not in sys.path:
    sys.path.insert(0, str(_INTEROP))

from agent_process import REPO, AgentProcess, Pki, messenger_env, send_argv  # noqa: E402
from peers import LOCALHOST, SipMessage, free_port  # noqa: E402

from messenger.im.cpim import CpimMessage, new_message_id, parse_cpim  # noqa: E402
from messenger.smime.protect import protect  # noqa: E402
from messenger.ua.store import MessageStore  # noqa: E402

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"
SEED = int.from_bytes(secrets.token_bytes(4), "big")
ROUNDS = 3
IN_FLIGHT = 8  # requests the client keeps outstanding


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    p = Pki.create(tmp_path_factory.mktemp("pki"))
    p.identity(ALICE)
    p.identity(BOB)
    return p


def _bodies(pki: Pki, count: int) -> list[tuple[str, bytes, str]]:
    """``count`` (message id, DER body, Content-Type): CPIM, signed by Alice, for Bob."""
    alice, bob_cert = pki.identity(ALICE), pki.identity(BOB).encryption_certificate
    out = []
    for _ in range(count):
        mid, now = new_message_id(), datetime.now(UTC)
        cpim = CpimMessage.build(
            ALICE,
            [BOB],
            f"crash test {mid}".encode(),
            "text/plain",
            when=now,
            message_id=mid,
            disposition=(),  # no IMDN: nobody listens for one here
        )
        entity = protect(
            cpim.to_bytes(),
            content_type="message/cpim",
            signer=alice,
            recipients=[bob_cert],
            signing_time=now,
        )
        out.append((mid, entity.body, entity.header("Content-Type") or ""))
    return out


def _message(port: int, lport: int, call_id: str, body: bytes, ctype: str) -> bytes:
    head = (
        f"MESSAGE {BOB} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {LOCALHOST}:{lport};rport;branch=z9hG4bK-{secrets.token_hex(8)}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <{ALICE}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <{BOB}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 MESSAGE\r\n"
        f"Content-Type: {ctype}\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _flood_until_killed(
    agent: AgentProcess, bodies: list[tuple[str, bytes, str]], rng: random.Random
) -> tuple[set[str], int]:
    """Send ``bodies`` to the agent, kill it at a random moment after the first 200; the
    message ids answered 200 and how many requests were sent."""
    host, port = agent.address("udp")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCALHOST, 0))
    lport = sock.getsockname()[1]
    by_call: dict[str, str] = {}
    acked: set[str] = set()
    outstanding: set[str] = set()
    sent = 0
    kill_at: float | None = None
    deadline = time.monotonic() + 30.0
    try:
        while time.monotonic() < deadline:
            while len(outstanding) < IN_FLIGHT and sent < len(bodies):
                mid, body, ctype = bodies[sent]
                call_id = f"crash-{secrets.token_hex(6)}@{LOCALHOST}"
                by_call[call_id] = mid
                sock.sendto(_message(port, lport, call_id, body, ctype), (host, port))
                outstanding.add(call_id)
                sent += 1
            if kill_at is not None and time.monotonic() >= kill_at:
                break
            ready, _, _ = select.select([sock], [], [], 0.05)
            if ready:
                _read_responses(sock, by_call, acked, outstanding)
                if acked and kill_at is None:
                    kill_at = time.monotonic() + rng.uniform(0.05, 1.2)
            if sent >= len(bodies) and not outstanding:
                break
        agent.kill()
        # responses the agent sent before it died may still wait in our socket
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            ready, _, _ = select.select([sock], [], [], 0.05)
            if ready:
                _read_responses(sock, by_call, acked, outstanding)
    finally:
        sock.close()
    return acked, sent


def _read_responses(
    sock: socket.socket, by_call: dict[str, str], acked: set[str], outstanding: set[str]
) -> None:
    while True:
        try:
            data = sock.recv(65535, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionRefusedError:
            continue  # the agent is gone: ICMP port unreachable
        msg = SipMessage.parse(data)
        if msg.is_request or msg.status is None or msg.status < 200:
            continue
        call_id = msg.header("Call-ID") or ""
        outstanding.discard(call_id)
        if msg.status == 200 and call_id in by_call:
            acked.add(by_call[call_id])


def test_every_message_answered_200_survives_sigkill(pki, tmp_path):
    rng = random.Random(SEED)
    profile = tmp_path / "bob-profile"
    bodies = _bodies(pki, 160 * ROUNDS)
    all_acked: set[str] = set()
    for n in range(ROUNDS):
        agent = AgentProcess(
            tmp_path / f"round-{n}",
            aor=BOB,
            identity=pki.folder_of(BOB),
            listens=[f"udp:{LOCALHOST}:{free_port('udp')}"],
            trust=[pki.ca_pem],
            crls=[pki.crl_pem],
            profile=profile,
        )
        agent.start()
        try:
            acked, sent = _flood_until_killed(agent, bodies[n * 160 : (n + 1) * 160], rng)
        finally:
            agent.kill()
        assert agent.returncode == -signal.SIGKILL, agent.describe()
        assert acked, (
            f"round {n}: none of {sent} MESSAGEs answered 200 before the kill (seed {SEED})\n"
            f"{agent.describe()}"
        )
        all_acked |= acked
        store = MessageStore.open(profile)
        try:
            assert store.check_integrity() == [], f"seed {SEED}"
            lost = sorted(mid for mid in all_acked if not store.has_message_id(ALICE, mid))
            assert not lost, (
                f"round {n} (seed {SEED}): {len(lost)} of {len(all_acked)} messages answered "
                f"200 are not in the store after SIGKILL: {lost[:5]}"
            )
            for mid in sorted(acked)[:5]:
                stored = store.message(mid)
                assert stored is not None and stored.direction == "in"
                assert stored.text == f"crash test {mid}"
                assert stored.report and stored.report.get("authenticity") == "verified"
        finally:
            store.close()


def _silent_peer() -> socket.socket:
    """A UDP socket that receives MESSAGEs and never answers them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCALHOST, 0))
    return sock


def _wait_datagram(sock: socket.socket, proc: subprocess.Popen, until: float) -> bytes | None:
    while time.monotonic() < until and proc.poll() is None:
        ready, _, _ = select.select([sock], [], [], 0.02)
        if ready:
            return sock.recv(65535)
    return None


def _start_send(pki: Pki, profile: Path, peer: socket.socket, text: str) -> subprocess.Popen:
    """`messenger send` of an unsigned ``text`` from Alice to Bob at ``peer`` over UDP."""
    argv = send_argv(
        identity=pki.folder_of(ALICE),
        to=BOB,
        text=text,
        target=f"{LOCALHOST}:{peer.getsockname()[1]}",
        transport="udp",
        no_sign=True,
        profile=profile,
    )
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=messenger_env(),
        cwd=REPO,
        start_new_session=True,
    )


def test_outgoing_message_is_stored_before_it_is_sent(pki, tmp_path):
    """Killed at a random moment (or just as its MESSAGE arrives): whenever the MESSAGE
    reached the wire, the sender's store holds it, pending or later."""
    rng = random.Random(SEED ^ 0x5A5A)
    profile = tmp_path / "alice-profile"
    on_wire = 0
    for n in range(4):
        peer = _silent_peer()
        text = f"outgoing {n} {secrets.token_hex(4)}"
        proc = _start_send(pki, profile, peer, text)
        try:
            # round 0: killed the moment its MESSAGE arrives; others: at a random moment
            # (often before anything is sent, sometimes while waiting for an answer)
            wait = 30.0 if n == 0 else rng.uniform(0.2, 2.5)
            datagram = _wait_datagram(peer, proc, time.monotonic() + wait)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            if datagram is None:  # sent just before the kill, still queued here?
                try:
                    datagram = peer.recv(65535, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    datagram = None
        finally:
            peer.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if n == 0:
            assert datagram is not None, f"`messenger send` sent nothing within 30 s:\n{stderr}"
        if datagram is None:
            continue
        on_wire += 1
        request = SipMessage.parse(datagram)
        assert request.method == "MESSAGE", request.start_line
        store = MessageStore.open(profile)
        try:
            outgoing = [m for m in store.messages(BOB, limit=1000) if m.direction == "out"]
            mine = [m for m in outgoing if m.text == text]
            assert mine, (
                f"run {n} (seed {SEED}): the MESSAGE was on the wire but is not in the "
                f"sender's store; stored: {[m.text for m in outgoing]}\n{stderr}"
            )
            assert mine[0].delivery in ("pending", "sent"), mine[0]
            if (request.header("Content-Type") or "").startswith("message/cpim"):
                cpim = parse_cpim(request.exact_body)
                assert mine[0].message_id == cpim.message_id
        finally:
            store.close()
    assert on_wire >= 1


def test_pending_outgoing_message_is_sent_when_the_agent_starts(pki, tmp_path):
    """`messenger send` killed while its MESSAGE waits for an answer; `messenger agent`
    started later on the same profile sends it by itself, once, with the same message id,
    and the receiver shows it once."""
    profile = tmp_path / "alice-profile"
    text = f"left pending {secrets.token_hex(4)}"
    peer = _silent_peer()
    try:
        proc = _start_send(pki, profile, peer, text)
        try:
            datagram = _wait_datagram(peer, proc, time.monotonic() + 30.0)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        peer.close()
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    assert datagram is not None, f"`messenger send` sent nothing within 30 s:\n{stderr}"
    message_id = parse_cpim(SipMessage.parse(datagram).exact_body).message_id
    assert message_id

    port = free_port("both")
    bob = AgentProcess(
        tmp_path / "bob",
        aor=BOB,
        identity=pki.folder_of(BOB),
        listens=[f"udp:{LOCALHOST}:{port}", f"tcp:{LOCALHOST}:{port}"],
        trust=[pki.ca_pem],
        crls=[pki.crl_pem],
        name="bob",
    )

    def alice() -> AgentProcess:
        return AgentProcess(
            tmp_path / "alice",
            aor=ALICE,
            identity=pki.folder_of(ALICE),
            profile=profile,
            trust=[pki.ca_pem],
            crls=[pki.crl_pem],
            contacts={BOB: bob.target()},
            name="alice",
        )

    with bob:
        with alice() as first:
            response = first.wait_event(
                lambda e: e.get("event") == "response" and e.get("message_id") == message_id,
                timeout=30,
            )
            assert response["status"] == 200, response
            got = bob.wait_event(
                lambda e: e.get("event") == "message" and e.get("message_id") == message_id
            )
            assert got["text"] == text
        with alice() as second:  # nothing is pending any more: nothing goes out again
            second.wait_event(lambda e: e.get("event") == "started", timeout=30)
        shown = [e for e in bob.of("message") if e.get("message_id") == message_id]
        assert len(shown) == 1, shown
    store = MessageStore.open(profile)
    try:
        assert store.message(message_id).delivery == "delivered"
        assert store.pending_outgoing() == []
    finally:
        store.close()
