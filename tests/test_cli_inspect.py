"""`messenger inspect FILE`: a SIP request or response decoded into its layers and report."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.cli import main
from messenger.im.cpim import CpimMessage
from messenger.im.imdn import build_imdn
from messenger.pki.authority import create_authority
from messenger.pki.identity import create_identity, save_identity
from messenger.sip.errors import SipParseError
from messenger.sip.message import SipRequest, SipResponse
from messenger.smime.mime import MimeEntity
from messenger.smime.protect import certs_only_entity, protect
from messenger.ua.inspect import inspect_sip

REPO = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC).replace(microsecond=0)
ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"
VECTORS = REPO.parent / "shared" / "vectors" / "rfc8591"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca = create_authority("Inspect Test CA", now=NOW - timedelta(days=1))
    alice = create_identity(ALICE, authority=ca, now=NOW - timedelta(days=1))
    bob = create_identity(BOB, authority=ca, now=NOW - timedelta(days=1))
    save_identity(alice, folder / "alice", None)
    save_identity(bob, folder / "bob", None)
    (folder / "ca.pem").write_bytes(ca.certificate.public_bytes(Encoding.PEM))
    (folder / "crl.pem").write_bytes(
        ca.crl(now=NOW - timedelta(hours=1)).public_bytes(Encoding.PEM)
    )
    return {"folder": folder, "ca": ca, "alice": alice, "bob": bob}


def _request(body_entity, *, sender: str = ALICE) -> bytes:
    headers = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-inspect1;rport"),
        ("Max-Forwards", "70"),
        ("From", f"<{sender}>;tag=a1"),
        ("To", f"<{BOB}>"),
        ("Call-ID", "inspect-1@127.0.0.1"),
        ("CSeq", "1 MESSAGE"),
    ]
    headers += [(n, v) for n, v in body_entity.headers]
    return SipRequest("MESSAGE", BOB, headers, body_entity.body).to_bytes()


def _cpim(body: bytes, content_type: str = "text/plain;charset=utf-8") -> bytes:
    return CpimMessage.build(
        ALICE, [BOB], body, content_type, when=NOW, message_id="Msg-inspect-0001"
    ).to_bytes()


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["inspect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_signed_and_encrypted_message_decoded_with_the_recipients_key(pki, tmp_path, capsys):
    entity = protect(
        _cpim("Grüße, Bob".encode()),
        content_type="message/cpim",
        signer=pki["alice"],
        recipients=[pki["bob"].encryption_certificate],
        signing_time=NOW,
    )
    wire = tmp_path / "message.sip"
    wire.write_bytes(_request(entity))
    code, out, err = _run(
        capsys,
        str(wire),
        "--identity",
        str(pki["folder"] / "bob"),
        "--trust",
        str(pki["folder"] / "ca.pem"),
        "--crl",
        str(pki["folder"] / "crl.pem"),
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["sip"]["kind"] == "request"
    assert doc["sip"]["method"] == "MESSAGE"
    assert doc["sip"]["call_id"] == "inspect-1@127.0.0.1"
    assert doc["body"]["size"] == len(entity.body)
    assert doc["structure"]["cms"]["type"] == "authenticated_enveloped_data"
    report = doc["report"]
    assert report["layers"] == ["authEnveloped-data", "signed-data"]
    assert report["confidentiality"] == "encrypted"
    assert report["authenticity"] == "verified"
    assert report["sender"] == ALICE
    assert report["sender_match"] is True
    assert report["signature_inside_encryption"] is True
    assert doc["cpim"]["message_id"] == "Msg-inspect-0001"
    assert doc["cpim"]["from"] == ALICE
    assert doc["cpim"]["to"] == [BOB]
    assert doc["content"]["text"] == "Grüße, Bob"
    assert doc["problems"] == []
    assert doc["certificates"][0]["uris"] == [ALICE]


def test_without_the_key_the_layers_and_recipients_still_show(pki, tmp_path, capsys):
    entity = protect(
        _cpim(b"secret"),
        content_type="message/cpim",
        signer=pki["alice"],
        recipients=[pki["bob"].encryption_certificate],
        signing_time=NOW,
    )
    wire = tmp_path / "message.sip"
    wire.write_bytes(_request(entity))
    code, out, err = _run(capsys, str(wire))
    assert code == 0, err
    assert "authEnveloped-data" in out
    assert "confidentiality: undecipherable" in out
    assert "encrypted to:" in out
    assert "secret" not in out
    assert "Content:" not in out


def test_standard_input_and_text_rendering(pki):
    entity = protect(
        _cpim(b"hello over stdin"),
        content_type="message/cpim",
        signer=pki["alice"],
        signing_time=NOW,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "messenger", "inspect", "-", "--trust", "/dev/null"],
        input=_request(entity),
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    # /dev/null holds no certificate: a usage error that says so
    assert proc.returncode == 2
    assert b"/dev/null holds no readable certificate" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "messenger", "inspect", "-"],
        input=_request(entity),
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.startswith("SIP request: MESSAGE sip:bob@example.test SIP/2.0")
    assert "layers: signed-data" in out
    assert "imdn.Message-ID: Msg-inspect-0001" in out
    assert "  hello over stdin" in out
    assert "sender_match: True" in out


def test_493_response_with_certs_only_body_names_the_certificate(pki, tmp_path, capsys):
    body = certs_only_entity([pki["bob"].certificate])
    headers = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-inspect2;received=127.0.0.1"),
        ("From", f"<{ALICE}>;tag=a1"),
        ("To", f"<{BOB}>;tag=b2"),
        ("Call-ID", "inspect-2@127.0.0.1"),
        ("CSeq", "1 MESSAGE"),
        *body.headers,
    ]
    wire = tmp_path / "493.sip"
    wire.write_bytes(SipResponse(493, "Undecipherable", headers, body.body).to_bytes())
    code, out, err = _run(capsys, str(wire), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["sip"]["kind"] == "response"
    assert doc["sip"]["status"] == 493
    assert doc["report"]["layers"] == ["certs-only"]
    assert len(doc["certificates"]) == 1
    assert doc["certificates"][0]["uris"] == [BOB]
    der = pki["bob"].certificate.public_bytes(Encoding.DER)
    fingerprint = doc["certificates"][0]["sha256"].replace(":", "").lower()
    assert fingerprint == hashlib.sha256(der).hexdigest()
    assert doc["content"] is None


def test_imdn_inside_cpim_is_decoded(pki, tmp_path, capsys):
    note = build_imdn(
        message_id="Orig-0001",
        datetime=NOW,
        kind="delivery",
        status="delivered",
        recipient_uri=BOB,
    )
    entity = protect(
        _cpim(note, "message/imdn+xml"),
        content_type="message/cpim",
        signer=pki["bob"],
        signing_time=NOW,
    )
    wire = tmp_path / "imdn.sip"
    wire.write_bytes(_request(entity, sender=BOB))
    code, out, err = _run(capsys, str(wire), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["imdn"]["message_id"] == "Orig-0001"
    assert doc["imdn"]["kind"] == "delivery"
    assert doc["imdn"]["status"] == "delivered"


def test_rfc8591_figure_1_with_its_certificate_time(capsys):
    code, out, err = _run(
        capsys,
        str(VECTORS / "fig1-message.sip"),
        "--at",
        "2018-06-01T00:00:00Z",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["sip"]["uri"] == "sip:bob@example.org"
    assert doc["report"]["layers"] == ["signed-data"]
    assert doc["report"]["sender_match"] is True
    assert doc["content"]["text"] == "Watson, come here - I want to see you.\r\n"
    assert doc["certificates"][0]["uris"] == ["sip:alice@example.com"]


def test_plain_text_message(tmp_path, capsys):
    raw = (
        b"MESSAGE sip:bob@example.test SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-x\r\n"
        b"f: <sip:alice@example.test>;tag=1\r\n"
        b"t: <sip:bob@example.test>\r\n"
        b"i: plain@127.0.0.1\r\n"
        b"CSeq: 7 MESSAGE\r\n"
        b"c: text/plain\r\n"
        b"l: 5\r\n\r\nhello"
    )
    wire = tmp_path / "plain.sip"
    wire.write_bytes(raw)
    code, out, err = _run(capsys, str(wire))
    assert code == 0, err
    assert "confidentiality: plaintext" in out
    assert "authenticity: unsigned" in out
    assert "Content: 5 bytes of text/plain" in out
    assert "  hello" in out


def test_not_a_sip_message_is_a_usage_error(tmp_path, capsys):
    wire = tmp_path / "junk.sip"
    wire.write_bytes(b"MESSAGE sip:bob@example.test SIP/2.0\r\nContent-Length: 99\r\n\r\nshort")
    code, out, err = _run(capsys, str(wire))
    assert code == 2
    assert out == ""
    assert "is not a SIP message we can read" in err
    assert "Content-Length" in err or "missing" in err


def test_missing_file_is_a_usage_error(tmp_path, capsys):
    code, _, err = _run(capsys, str(tmp_path / "nothing.sip"))
    assert code == 2
    assert "cannot read" in err


def test_corrupt_protected_body_is_reported_not_raised(pki, tmp_path, capsys):
    garbage = _request(
        MimeEntity.build(
            "application/pkcs7-mime; smime-type=signed-data",
            b"\x30\x82\x01\x00not really DER",
            [("Content-Transfer-Encoding", "binary")],
        )
    )
    wire = tmp_path / "corrupt.sip"
    wire.write_bytes(garbage)
    code, out, err = _run(capsys, str(wire), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["problems"], doc
    assert doc["report"] is None
    assert err.startswith("messenger: ")


# -- property tests: whatever arrives, inspect reports it or names the SIP problem ------------

_SEEDS: list[bytes] = []


def _seed_messages() -> list[bytes]:
    """A protected MESSAGE, a 493 with certs-only and a plain MESSAGE, built once."""
    if not _SEEDS:
        ca = create_authority("Fuzz CA", now=NOW - timedelta(days=1))
        alice = create_identity(ALICE, authority=ca, now=NOW - timedelta(days=1))
        bob = create_identity(BOB, authority=ca, now=NOW - timedelta(days=1))
        protected = protect(
            _cpim(b"fuzz"),
            content_type="message/cpim",
            signer=alice,
            recipients=[bob.encryption_certificate],
            signing_time=NOW,
        )
        signed = protect(
            _cpim(b"fuzz"), content_type="message/cpim", signer=alice, signing_time=NOW
        )
        _SEEDS.extend(
            [_request(protected), _request(signed), _request(certs_only_entity([bob.certificate]))]
        )
    return _SEEDS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_messages_are_reported_never_crash(data):
    seed = data.draw(st.sampled_from(_seed_messages()))
    head, _, body = seed.partition(b"\r\n\r\n")
    mutated = bytearray(body)
    for _ in range(data.draw(st.integers(1, 8))):
        if not mutated:
            break
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    new_body = bytes(mutated[:cut]) if data.draw(st.booleans()) else bytes(mutated)
    head = head.replace(
        f"Content-Length: {len(body)}".encode(), f"Content-Length: {len(new_body)}".encode()
    )
    ctype = data.draw(
        st.sampled_from(
            [
                None,
                b"application/pkcs7-mime; smime-type=enveloped-data",
                b"multipart/signed; protocol=application/pkcs7-signature; boundary=x",
                b"message/cpim",
                b"application/pkcs7-mime; smime-type=certs-only",
                b'text/plain; charset="',
            ]
        )
    )
    if ctype is not None:
        lines = [
            ln if not ln.lower().startswith(b"content-type:") else b"Content-Type: " + ctype
            for ln in head.split(b"\r\n")
        ]
        head = b"\r\n".join(lines)
    try:
        doc = inspect_sip(head + b"\r\n\r\n" + new_body, at=NOW)
    except SipParseError:
        return
    json.dumps(doc)  # always serializable
    assert doc["sip"]["method"] == "MESSAGE"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_a_sip_parse_error_or_a_report(raw):
    try:
        doc = inspect_sip(raw, at=NOW)
    except SipParseError:
        return
    json.dumps(doc)
