"""Session mode from the command line, through Kamailio's RFC 4976 MSRP relay (fixture
``kamailio_msrp``): ``messenger send --file`` invites a running ``messenger agent
--downloads`` (SIP straight to it), the sessions go through the relay named by
``--msrp-relay``, and a 50 MB signed-and-encrypted file arrives verified and whole. Each
run of ``messenger send`` is bounded by a 60 s timeout."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from pathlib import Path

import pytest
from agent_process import AgentProcess, Pki, agent_available, messenger_env, parse_send_output
from peers import LOCALHOST, free_port

MB = 1024 * 1024
ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"


@pytest.fixture(scope="module")
def cli_ready() -> None:
    reason = agent_available()
    if reason:
        pytest.fail(reason)


def _file(folder: Path, size: int) -> Path:
    path = folder / "holiday-video.bin"
    rng = random.Random(8591)
    with path.open("wb") as out:
        for _ in range(size // MB):
            out.write(rng.randbytes(MB))
        out.write(rng.randbytes(size % MB))
    return path


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


def _send(pki: Pki, source: Path, bob: AgentProcess, relay: str | None, tmp: Path, what=()) -> dict:
    """Run ``messenger send`` from Alice to Bob (``--file source`` unless ``what`` says
    what to send); its JSON answer."""
    argv = [sys.executable, "-m", "messenger", "send", "--identity", str(pki.folder_of(ALICE))]
    argv += ["--to", BOB, *(what or ["--file", str(source)]), "--target", bob.target("tcp")]
    argv += ["--transport", "tcp", "--listen", f"tcp:{LOCALHOST}:0"]
    argv += ["--encrypt-to", str(pki.cert_pem(BOB)), "--trust", str(pki.ca_pem)]
    argv += ["--profile", str(tmp / "alice-profile")]
    if relay:
        argv += ["--msrp-relay", relay]
    proc = subprocess.run(
        argv,
        capture_output=True,
        env=messenger_env(),
        cwd=tmp,
        timeout=60,  # the bound of the whole transfer
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout.decode("utf-8", "replace")
    answer = parse_send_output(out)
    assert proc.returncode == 0 and answer is not None, (
        f"exit {proc.returncode}\nstdout: {out[-2000:]}\n"
        f"stderr: {proc.stderr.decode('utf-8', 'replace')[-3000:]}\n{bob.describe()}"
    )
    return answer


def _agent(pki: Pki, tmp: Path, relay: str | None) -> AgentProcess:
    extra = ["--downloads", str(tmp / "downloads")]
    if relay:
        extra += ["--msrp-relay", relay]
    return AgentProcess(
        tmp / "bob",
        aor=BOB,
        identity=pki.folder_of(BOB),
        listens=[f"tcp:{LOCALHOST}:{free_port('tcp')}"],
        trust=[pki.ca_pem],
        crls=[pki.crl_pem],
        extra_args=extra,
        name="bob",
    )


def _check_received(bob: AgentProcess, source: Path, tmp: Path) -> None:
    message = bob.wait_event(
        lambda e: e.get("event") == "message" and e.get("filename"), timeout=30
    )
    assert message["transport"] == "msrp" and message["from"] == ALICE
    assert message["filename"] == source.name
    assert message["report"]["authenticity"] == "verified", message["report"]
    assert message["report"]["confidentiality"].startswith("encrypted")
    received = Path(message["path"])
    assert received.parent == tmp / "downloads"
    assert received.stat().st_size == source.stat().st_size
    assert _sha(received) == _sha(source)
    steps = [e for e in bob.of("progress") if e["direction"] == "in"]
    assert len(steps) > 10 and steps[-1]["state"] == "complete"
    assert steps[-1]["done"] == steps[-1]["total"]
    assert [e["done"] for e in steps] == sorted(e["done"] for e in steps)


def test_50mb_file_from_send_to_agent_through_the_relay(
    cli_ready, kamailio_msrp, tmp_path: Path
) -> None:
    pki = Pki.create(tmp_path / "pki")
    pki.identity(ALICE)
    pki.identity(BOB)
    relay = f"msrp://{LOCALHOST}:{kamailio_msrp.msrp_port};tcp"
    source = _file(tmp_path, 50 * MB)
    with _agent(pki, tmp_path, None) as bob:
        answer = _send(pki, source, bob, relay, tmp_path)
        assert answer["delivered"] and answer["encrypted"] and answer["signed"], answer
        assert answer["file"] == str(source)
        _check_received(bob, source, tmp_path)
        bob.wait_event(lambda e: e.get("event") == "notice" and "ended" in e.get("text", ""))
    log = kamailio_msrp.log(limit=1 << 30)
    assert "MSRP AUTH" in log and "MSRP SEND" in log and "MSRP REPORT" in log
    assert "forwarding frame failed" not in log


def test_file_to_an_agent_behind_the_relay(cli_ready, kamailio_msrp, tmp_path: Path) -> None:
    pki = Pki.create(tmp_path / "pki")
    pki.identity(ALICE)
    pki.identity(BOB)
    relay = f"msrp://{LOCALHOST}:{kamailio_msrp.msrp_port};tcp"
    source = _file(tmp_path, 3 * MB + 17)
    with _agent(pki, tmp_path, relay) as bob:
        answer = _send(pki, source, bob, None, tmp_path)
        assert answer["delivered"] and answer["encrypted"], answer
        _check_received(bob, source, tmp_path)
    assert "MSRP AUTH" in kamailio_msrp.log(limit=1 << 30)


def test_text_over_a_session_from_the_command_line(cli_ready, tmp_path: Path) -> None:
    pki = Pki.create(tmp_path / "pki")
    pki.identity(ALICE)
    pki.identity(BOB)
    with _agent(pki, tmp_path, None) as bob:
        what = ["--text", "over MSRP, on request", "--session"]
        answer = _send(pki, Path(), bob, None, tmp_path, what)
        assert answer["delivered"] and answer["encrypted"] and answer["signed"], answer
        message = bob.wait_event(lambda e: e.get("event") == "message", timeout=30)
        assert message["transport"] == "msrp" and message["text"] == "over MSRP, on request"
        assert message["report"]["authenticity"] == "verified"


def test_session_through_the_registrar_proxy_and_the_relay(kamailio_msrp, tmp_path: Path) -> None:
    """Both agents register; the INVITE goes through the proxy (which records the route),
    the MSRP session through the relay, and the BYE back along the recorded route."""
    import asyncio
    from datetime import UTC, datetime

    from messenger.pki.authority import create_authority
    from messenger.pki.identity import create_identity
    from messenger.ua.agent import AccountConfig, Listen, UserAgent

    k = kamailio_msrp
    now = datetime.now(UTC)
    ca = create_authority("Session Proxy Test CA", now=now)
    relay = f"msrp://{LOCALHOST}:{k.msrp_port};tcp"

    def account(user: str, **extra) -> AccountConfig:
        return AccountConfig(
            aor=k.aor(user),
            identity=create_identity(k.aor(user), authority=ca, now=now),
            profile=tmp_path / user,
            listens=[Listen("udp", LOCALHOST, 0), Listen("tcp", LOCALHOST, 0)],
            registrar=f"sip:{k.domain}",
            proxy=f"sip:{LOCALHOST}:{k.udp_port}",
            trust_anchors=[ca.certificate],
            crls=[ca.last_crl],
            register_expires=120,
            **extra,
        )

    async def scenario():
        # user names of their own: registrations outlive a test in the module's Kamailio
        dave = UserAgent(account("dave", msrp_relay=relay))
        erin = UserAgent(account("erin", downloads=tmp_path / "downloads"))
        got: asyncio.Queue = asyncio.Queue()
        erin.subscribe(lambda e: got.put_nowait(e) if e.kind == "message" else None)
        ended: asyncio.Queue = asyncio.Queue()
        erin.subscribe(lambda e: ended.put_nowait(e) if "ended" in getattr(e, "text", "") else 0)
        await dave.start()
        await erin.start()
        try:
            dave.set_peer_certificate(erin.aor, erin.identity.certificate)
            source = _file(tmp_path, 2 * MB)
            result = await dave.send_file(erin.aor, source)
            received = await asyncio.wait_for(got.get(), 30)
            session = dave.sessions.session_with(erin.aor)
            assert session is not None and session.dialog is not None
            route_set = list(session.dialog.route_set)
            await dave.sessions.end_session(session)
            await asyncio.wait_for(ended.get(), 10)
            return source, result, received, route_set
        finally:
            await dave.stop()
            await erin.stop()

    source, result, received, route_set = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert result.delivered and result.encrypted and result.signed, result
    assert received.transport == "msrp" and received.report["authenticity"] == "verified"
    assert _sha(Path(received.path)) == _sha(source)
    assert route_set and f":{k.udp_port}" in route_set[0]  # the proxy recorded the route
    log = k.log(limit=1 << 30)
    assert "RELAY INVITE" in log and "IN-DIALOG BYE" in log and "MSRP AUTH" in log
