"""SIPp against a real `messenger agent` process, on loopback.

SIPp as client: a protected MESSAGE (signed by Alice, encrypted to the agent, CPIM
inside) reaches the agent and is verified; an unsupported body type gets 415 with
Accept; a body encrypted to another key gets 493 whose certs-only body is the agent's
certificate; a malformed request gets 400; a replayed or stale message gets 403.
SIPp as server: what `messenger send` puts on the wire is decrypted and verified by
OpenSSL's `cms`, an implementation independent of ours.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from agent_process import AgentProcess, Pki, run_send
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from peers import LOCALHOST, free_port

from messenger.im.cpim import CpimMessage, new_message_id
from messenger.smime.mime import MimeEntity
from messenger.smime.protect import protect, unprotect

ALICE = "sip:alice@example.test"  # SIPp speaks for her
BOB = "sip:bob@example.test"  # the agent
CAROL = "sip:carol@example.test"  # a stranger whose key the agent does not hold
DAVE = "sip:dave@example.test"  # SIPp as server answers for him

ACCEPTED = (
    "application/pkcs7-mime",
    "application/pkcs7-signature",
    "multipart/signed",
    "message/cpim",
    "text/plain",
    "message/imdn+xml",
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    p = Pki.create(tmp_path_factory.mktemp("pki"))
    for aor in (ALICE, BOB, CAROL, DAVE):
        p.identity(aor)
    return p


@pytest.fixture(scope="module")
def agent(pki, tmp_path_factory):
    port = free_port("both")
    a = AgentProcess(
        tmp_path_factory.mktemp("agent"),
        aor=BOB,
        identity=pki.folder_of(BOB),
        listens=[f"udp:{LOCALHOST}:{port}", f"tcp:{LOCALHOST}:{port}"],
        trust=[pki.ca_pem],
        crls=[pki.crl_pem],
    )
    a.start()
    yield a
    a.stop()


def _protected(
    pki: Pki,
    text: str,
    *,
    recipient: str | None = BOB,
    when: datetime | None = None,
    message_id: str | None = None,
) -> tuple[MimeEntity, str]:
    """A CPIM message from Alice to Bob, signed by Alice and encrypted to ``recipient``."""
    when = when or datetime.now(UTC)
    message_id = message_id or new_message_id()
    cpim = CpimMessage.build(
        ALICE, [BOB], text.encode(), "text/plain;charset=utf-8", when=when, message_id=message_id
    )
    recipients = [pki.identity(recipient).encryption_certificate] if recipient else []
    entity = protect(
        cpim.to_bytes(),
        content_type="message/cpim",
        signer=pki.identity(ALICE),
        recipients=recipients,
        signing_time=when,
    )
    return entity, message_id


def _sipp_send(sipp, agent, entity: MimeEntity, expect: int | str):
    s = sipp.message(
        agent.target("udp"),
        to_uri=BOB,
        from_uri=ALICE,
        body=entity.body,
        content_type=entity.header("Content-Type"),
        expect=expect,
        timeout=15,
    )
    return s.run()


# --------------------------------------------------------------------------- SIPp as client


def test_protected_message_reaches_the_agent_and_is_verified(pki, agent, sipp):
    entity, mid = _protected(pki, "Meet at the usual place, 6 pm.")
    res = _sipp_send(sipp, agent, entity, 200)
    assert res.ok and res.successful == 1, res.describe()
    event = agent.wait_event(lambda e: e.get("event") == "message" and e["message_id"] == mid)
    assert event["from"] == ALICE
    assert event["to"] == BOB
    assert event["text"] == "Meet at the usual place, 6 pm."
    assert event["content_type"].startswith("text/plain")
    report = event["report"]
    assert report["layers"] == ["authEnveloped-data", "signed-data"], report
    assert report["confidentiality"] == "encrypted", report
    assert report["authenticity"] == "verified", report
    assert report["sender_match"] is True, report
    assert report["signature_inside_encryption"] is True, report
    assert report["replay"] == "fresh", report
    assert report["signer"]["uris"] == [ALICE]


def test_unsupported_body_type_gets_415_with_accept(agent, sipp):
    entity = MimeEntity.build("application/vnd.example.sticker+json", b'{"sticker": 7}')
    res = _sipp_send(sipp, agent, entity, 415)
    assert res.ok, res.describe()
    accept = res.last_response(415).header("Accept")
    assert accept is not None, res.describe()
    listed = {t.strip().split(";")[0].lower() for t in accept.split(",")}
    assert set(ACCEPTED) <= listed, accept
    refused = agent.wait_event(lambda e: e.get("event") == "refused" and e["status"] == 415)
    assert "application/vnd.example.sticker+json" in refused["reason"]


def test_body_encrypted_to_another_key_gets_493_with_our_certificate(
    pki, agent, sipp, loopback_capture, tmp_path
):
    entity, _ = _protected(pki, "for Carol's eyes", recipient=CAROL)
    _, agent_port = agent.address("udp")
    cap = loopback_capture(agent_port)
    res = _sipp_send(sipp, agent, entity, 493)
    assert res.ok, res.describe()
    wire = cap.wait_for(lambda m: m.message.status == 493 and m.src[1] == agent_port)
    ctype = wire.message.header("Content-Type") or ""
    assert "application/pkcs7-mime" in ctype and "certs-only" in ctype, ctype
    der = wire.message.decoded_body()
    bob_der = pki.identity(BOB).certificate.public_bytes(Encoding.DER)

    # our reading: a certs-only layer carrying the agent's certificate
    opened = unprotect(MimeEntity.build(ctype, der), at=datetime.now(UTC))
    assert opened.report.layers == ("certs-only",)
    assert bob_der in opened.report.certificates

    # OpenSSL's reading of the same bytes
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to read the certs-only body independently"
    (tmp_path / "certs.p7c").write_bytes(der)
    proc = subprocess.run(
        [openssl, "pkcs7", "-inform", "DER", "-in", str(tmp_path / "certs.p7c"), "-print_certs"],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    certs = x509.load_pem_x509_certificates(proc.stdout)
    assert pki.identity(BOB).certificate in certs
    refused = agent.wait_event(lambda e: e.get("event") == "refused" and e["status"] == 493)
    assert refused["from"] == ALICE


def test_malformed_request_gets_400(agent, sipp):
    s = sipp(
        "malformed_uac.xml",
        target=agent.target("udp"),
        keys={"to_uri": BOB, "from_uri": ALICE},
        timeout=15,
    )
    res = s.run()
    assert res.ok, res.describe()
    assert res.last_response(400).header("Call-ID"), res.describe()


def test_message_with_malformed_signer_certificate_gets_400(pki, agent, sipp):
    """The signature holds (the key is Alice's), but the certificate carried with it has a
    name that cannot be read: a typed refusal (400), not an unanswered request."""
    alice = pki.identity(ALICE)
    der = bytearray(alice.certificate.public_bytes(Encoding.DER))
    at = der.find(b"alice") - 2  # the tag of the subject's CN string
    assert der[at] == 0x0C  # UTF8String
    der[at] = 0x63  # no ASN.1 string type has this tag
    forged = replace(alice, certificate=x509.load_der_x509_certificate(bytes(der)))
    when = datetime.now(UTC)
    cpim = CpimMessage.build(
        ALICE, [BOB], b"odd name", "text/plain", when=when, message_id=new_message_id()
    )
    entity = protect(cpim.to_bytes(), content_type="message/cpim", signer=forged, signing_time=when)
    res = _sipp_send(sipp, agent, entity, 400)
    assert res.ok, res.describe()
    refused = agent.wait_event(
        lambda e: e.get("event") == "refused" and e["status"] == 400 and e["from"] == ALICE
    )
    assert "certificate" in refused["reason"], refused
    assert agent.alive()


def test_replayed_message_is_refused(pki, agent, sipp):
    entity, mid = _protected(pki, "pay Mallory 100 euros")
    first = _sipp_send(sipp, agent, entity, 200)
    assert first.ok, first.describe()
    agent.wait_event(lambda e: e.get("event") == "message" and e["message_id"] == mid)
    again = _sipp_send(sipp, agent, entity, 403)  # the same bytes, a new SIP transaction
    assert again.ok, again.describe()
    refused = agent.wait_event(
        lambda e: e.get("event") == "refused" and e["status"] == 403 and mid in e["reason"]
    )
    assert "already received" in refused["reason"]
    assert refused["report"]["replay"] == "duplicate"
    assert len([e for e in agent.of("message") if e["message_id"] == mid]) == 1


def test_stale_message_is_refused(pki, agent, sipp):
    entity, mid = _protected(pki, "old news", when=datetime.now(UTC) - timedelta(hours=2))
    res = _sipp_send(sipp, agent, entity, 403)
    assert res.ok, res.describe()
    refused = agent.wait_event(
        lambda e: (
            e.get("event") == "refused"
            and e["status"] == 403
            and (e.get("report") or {}).get("replay") == "stale"
        )
    )
    assert "stale" in refused["reason"]
    assert not [e for e in agent.of("message") if e["message_id"] == mid]


# --------------------------------------------------------------------------- SIPp as server


def _openssl(*args: str | Path) -> subprocess.CompletedProcess:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to check the agent's body independently"
    return subprocess.run([openssl, *map(str, args)], capture_output=True, timeout=30)


def test_sent_message_is_decrypted_and_verified_by_openssl(pki, sipp, loopback_capture, tmp_path):
    uas = sipp("message_uas.xml", transport="tcp", count=1, timeout=30)
    cap = loopback_capture(uas.local_port)
    uas.start()
    text = "Signed by Alice, for Dave only: ünïcödé ✓"
    outcome = run_send(
        identity=pki.folder_of(ALICE),
        to=DAVE,
        text=text,
        target=f"{LOCALHOST}:{uas.local_port}",
        transport="tcp",
        encrypt_to=pki.cert_pem(DAVE),
        trust=[pki.ca_pem],
        profile=tmp_path / "alice-profile",
    )
    res = uas.wait()
    assert outcome.returncode == 0, outcome.describe() + "\n" + res.describe()
    assert outcome.answer is not None and outcome.answer["status"] == 200, outcome.describe()
    # SIPp answered 200; `messenger send` then exits and closes its TCP connection while
    # SIPp still holds the call (its 200 ms pause): SIPp counts that as FailedTcpClosed.
    assert [m.status for m in res.sent()] == [200], res.describe()
    failures = {k: v for k, v in res.stats.items() if k.startswith("Failed") and v != "0"}
    assert set(failures) <= {"FailedCall(C)", "FailedTcpClosed(C)"}, res.describe()

    wire = cap.wait_for(lambda m: m.message.method == "MESSAGE" and m.dst[1] == uas.local_port)
    assert wire.message.is_request
    ctype = wire.message.header("Content-Type") or ""
    assert "application/pkcs7-mime" in ctype and "authEnveloped-data" in ctype, ctype
    (tmp_path / "body.der").write_bytes(wire.message.decoded_body())

    # 1. OpenSSL decrypts with Dave's key
    dave = pki.folder_of(DAVE)
    proc = _openssl(
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        tmp_path / "body.der",
        "-recip",
        dave / "cert.pem",
        "-inkey",
        dave / "key.pem",
        "-out",
        tmp_path / "inner.mime",
    )
    assert proc.returncode == 0, proc.stderr.decode()
    inner = MimeEntity.parse((tmp_path / "inner.mime").read_bytes())
    assert inner.content_type.mime_type == "application/pkcs7-mime"
    assert inner.content_type.param("smime-type") == "signed-data"
    (tmp_path / "signed.der").write_bytes(inner.decoded_body())

    # 2. OpenSSL verifies Alice's signature against the CA
    proc = _openssl(
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        tmp_path / "signed.der",
        "-CAfile",
        pki.ca_pem,
        "-purpose",
        "any",
        "-out",
        tmp_path / "signed-content",
    )
    assert proc.returncode == 0, proc.stderr.decode()
    signed = MimeEntity.parse((tmp_path / "signed-content").read_bytes())
    assert signed.content_type.mime_type == "message/cpim"
    cpim = signed.body
    assert b"From: <sip:alice@example.test>" in cpim
    assert b"To: <sip:dave@example.test>" in cpim
    assert b"NS: imdn <urn:ietf:params:imdn>" in cpim
    assert text.encode() in cpim
    assert outcome.answer.get("message_id", "").encode() in cpim
