"""protect() and unprotect(): the safe door, one test per confidentiality state and per
authenticity state the S/MIME core itself decides, the RFC 8591 vectors end to end."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.pki.authority import create_authority
from messenger.pki.identity import create_identity
from messenger.pki.trust import TrustStore
from messenger.pki.verdict import Authenticity
from messenger.smime.errors import SmimeError
from messenger.smime.mime import MimeEntity, split_multipart
from messenger.smime.policy import Policy
from messenger.smime.protect import certs_only_entity, protect, unprotect
from messenger.smime.report import Confidentiality

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "rfc8591"
ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"


@pytest.fixture(scope="module")
def ca():
    return create_authority("Test CA", now=NOW - timedelta(days=1))


@pytest.fixture(scope="module")
def alice(ca):
    return create_identity(ALICE, authority=ca, now=NOW - timedelta(days=1))


@pytest.fixture(scope="module")
def bob(ca):
    return create_identity(BOB, authority=ca, now=NOW - timedelta(days=1))


@pytest.fixture
def trust(ca):
    store = TrustStore()
    store.add_anchor(ca.certificate)
    store.add_crl(ca.crl(now=NOW - timedelta(hours=1)))
    return store


def _open(entity, bob, trust, sender=ALICE, **kw):
    return unprotect(
        MimeEntity.parse(entity.to_bytes()), identity=bob, trust=trust, sender=sender, at=NOW, **kw
    )


def test_sign_then_encrypt_is_verified_and_encrypted(alice, bob, trust):
    entity = protect(
        b"hello Bob", signer=alice, recipients=[bob.encryption_certificate], signing_time=NOW
    )
    assert entity.content_type.mime_type == "application/pkcs7-mime"
    assert entity.content_type.param("smime-type") == "authEnveloped-data"
    result = _open(entity, bob, trust)
    report = result.report
    assert result.content == b"hello Bob"
    assert report.confidentiality is Confidentiality.ENCRYPTED
    assert report.authenticity is Authenticity.VERIFIED
    assert report.layers == ("authEnveloped-data", "signed-data")
    assert report.signature_inside_encryption is True
    assert report.sender_match is True
    assert report.is_green
    names = {a.name for a in report.algorithms}
    assert {"aes128-GCM", "ecdsa-with-SHA256", "sha256"} <= names
    assert report.signer is not None and ALICE in report.signer.uris
    assert report.signing_time == NOW


def test_signed_only_is_plaintext_and_verified(alice, bob, trust):
    entity = protect(b"hi", signer=alice, signing_time=NOW)
    assert entity.content_type.param("smime-type") == "signed-data"
    report = _open(entity, bob, trust).report
    assert report.confidentiality is Confidentiality.PLAINTEXT
    assert report.authenticity is Authenticity.VERIFIED
    assert report.layers == ("signed-data",)


def test_multipart_signed_verifies_detached(alice, bob, trust):
    entity = protect(b"line one\nline two", signer=alice, multipart_signed=True, signing_time=NOW)
    assert entity.content_type.mime_type == "multipart/signed"
    assert entity.content_type.param("micalg") == "sha-256"
    assert entity.content_type.param("protocol") == "application/pkcs7-signature"
    result = _open(entity, bob, trust)
    assert result.report.layers == ("multipart/signed",)
    assert result.report.authenticity is Authenticity.VERIFIED
    assert result.content == b"line one\r\nline two"


def test_altered_multipart_first_part_is_bad_signature(alice, bob, trust):
    entity = protect(b"pay 10 EUR", signer=alice, multipart_signed=True, signing_time=NOW)
    forged = MimeEntity(entity.headers, entity.body.replace(b"pay 10", b"pay 99"))
    result = _open(forged, bob, trust)
    assert result.report.authenticity is Authenticity.BAD_SIGNATURE
    assert not result.report.is_green


def test_encrypted_only_is_unsigned_never_green(alice, bob, trust):
    entity = protect(b"who am I", recipients=[bob.encryption_certificate], signing_time=NOW)
    report = _open(entity, bob, trust).report
    assert report.confidentiality is Confidentiality.ENCRYPTED
    assert report.authenticity is Authenticity.UNSIGNED
    assert not report.is_green


def test_plain_text_is_plaintext_unsigned(bob, trust):
    report = _open(MimeEntity.build("text/plain", b"hi"), bob, trust).report
    assert report.confidentiality is Confidentiality.PLAINTEXT
    assert report.authenticity is Authenticity.UNSIGNED
    assert report.layers == ()


def test_legacy_cbc_is_encrypted_legacy(alice, bob, trust):
    entity = protect(
        b"old style",
        signer=alice,
        recipients=[bob.encryption_certificate],
        cipher="aes128-cbc",
        signing_time=NOW,
    )
    assert entity.content_type.param("smime-type") == "enveloped-data"
    report = _open(entity, bob, trust).report
    assert report.confidentiality is Confidentiality.ENCRYPTED_LEGACY
    assert report.layers[0] == "enveloped-data"


def test_encrypted_to_someone_else_is_undecipherable(alice, bob, ca, trust):
    carol = create_identity("sip:carol@example.test", authority=ca, now=NOW)
    entity = protect(
        b"for carol", signer=alice, recipients=[carol.encryption_certificate], signing_time=NOW
    )
    result = _open(entity, bob, trust)
    assert result.content is None
    assert result.report.confidentiality is Confidentiality.UNDECIPHERABLE
    assert result.report.recipients  # says who it was for


def test_flipped_ciphertext_bit_is_tampered_and_nothing_shown(alice, bob, trust):
    entity = protect(
        b"secret", signer=alice, recipients=[bob.encryption_certificate], signing_time=NOW
    )
    body = bytearray(entity.body)
    body[-20] ^= 0x01  # inside the MAC or the ciphertext, both are checked
    result = _open(MimeEntity(entity.headers, bytes(body)), bob, trust)
    assert result.content is None
    assert result.report.confidentiality is Confidentiality.TAMPERED


def test_sha1_signature_is_weak_algorithm(alice, bob, trust):
    entity = protect(b"old", signer=alice, signing_time=NOW, policy=Policy(digest="sha1"))
    report = _open(entity, bob, trust).report
    assert report.authenticity is Authenticity.WEAK_ALGORITHM
    assert not report.signature_valid


def test_sender_mismatch_is_red(alice, bob, trust):
    entity = protect(b"I am bob, really", signer=alice, signing_time=NOW)
    report = _open(entity, bob, trust, sender=BOB).report
    assert report.authenticity is Authenticity.SENDER_MISMATCH
    assert report.sender_match is False
    assert not report.is_green


def test_signature_without_certificate_needs_known_certificate(alice, bob, trust):
    entity = protect(b"short", signer=alice, include_certificates=False, signing_time=NOW)
    assert _open(entity, bob, trust).report.authenticity is Authenticity.BAD_SIGNATURE
    known = _open(entity, bob, trust, extra_certificates=[alice.certificate]).report
    assert known.authenticity is Authenticity.VERIFIED


def test_encrypt_then_sign_order_is_accepted(alice, bob, trust):
    inner = protect(b"outer signature", recipients=[bob.encryption_certificate], signing_time=NOW)
    outer = protect(
        inner.body,
        content_type="application/pkcs7-mime; smime-type=authEnveloped-data",
        signer=alice,
        signing_time=NOW,
    )
    result = _open(outer, bob, trust)
    assert result.report.layers == ("signed-data", "authEnveloped-data")
    assert result.report.signature_inside_encryption is False
    assert result.content == b"outer signature"


def test_protected_part_inside_multipart_mixed_keeps_siblings_outside(alice, bob, trust):
    signed = protect(b"protected words", signer=alice, signing_time=NOW)
    from messenger.smime.mime import build_multipart

    mixed = build_multipart(
        "mixed", [b"Content-Type: text/plain\r\n\r\nunprotected words", signed.to_bytes()]
    )
    result = _open(mixed, bob, trust)
    assert result.content == b"protected words"
    assert [p.body for p in result.outside] == [b"unprotected words"]
    assert split_multipart(mixed)


def test_base64_transfer_encoding_is_accepted(alice, bob, trust):
    import base64

    entity = protect(b"b64", signer=alice, signing_time=NOW)
    encoded = MimeEntity(
        (("Content-Type", entity.header("Content-Type")), ("Content-Transfer-Encoding", "base64")),
        base64.encodebytes(entity.body),
    )
    assert _open(encoded, bob, trust).report.authenticity is Authenticity.VERIFIED


def test_certs_only_carries_the_certificate(bob, trust):
    entity = certs_only_entity([bob.certificate])
    assert entity.content_type.param("smime-type") == "certs-only"
    result = _open(entity, bob, trust)
    assert result.report.layers == ("certs-only",)
    assert [x509.load_der_x509_certificate(d) for d in result.report.certificates] == [
        bob.certificate
    ]


def test_report_json_has_the_documented_keys(alice, bob, trust):
    entity = protect(
        b"json", signer=alice, recipients=[bob.encryption_certificate], signing_time=NOW
    )
    doc = _open(entity, bob, trust).report.to_json()
    for key in (
        "confidentiality",
        "authenticity",
        "layers",
        "algorithms",
        "signer",
        "sender_match",
        "signing_time",
        "content_type",
    ):
        assert key in doc
    assert {"uris", "sha256"} <= set(doc["signer"])
    assert replace(_open(entity, bob, trust).report).to_json() == doc


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/vectors not found beside the checkout")
@pytest.mark.parametrize("name", ["fig1-signed-with-cert.der", "fig2-signed-no-cert.der"])
def test_rfc8591_signed_vectors_verify_pinned_in_2018(name):
    alice_cert = x509.load_der_x509_certificate((SHARED / "alice-cert.der").read_bytes())
    store = TrustStore()
    at = datetime(2018, 6, 1, tzinfo=UTC)
    store.pin("sip:alice@example.com", alice_cert, now=at)
    entity = MimeEntity.build(
        "application/pkcs7-mime; smime-type=signed-data", (SHARED / name).read_bytes()
    )
    result = unprotect(
        entity, trust=store, sender="sip:alice@example.com", at=at, extra_certificates=[alice_cert]
    )
    assert result.content == b"Watson, come here - I want to see you.\r\n"
    assert result.report.authenticity is Authenticity.VERIFIED_PINNED
    assert result.report.signer is not None
    assert result.report.signer.uris == ("sip:alice@example.com",)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/vectors not found beside the checkout")
def test_rfc8591_figure3_is_undecipherable(bob):
    entity = MimeEntity.build(
        "application/pkcs7-mime; smime-type=auth-enveloped-data",
        (SHARED / "fig3-authenveloped.der").read_bytes(),
    )
    report = unprotect(entity, identity=bob, at=NOW).report
    assert report.confidentiality is Confidentiality.UNDECIPHERABLE
    assert report.layers == ("authEnveloped-data",)
    assert any("Alice" in r for r in report.recipients)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_unprotect_of_arbitrary_pkcs7_bytes_raises_only_smime_errors(data):
    entity = MimeEntity.build("application/pkcs7-mime", data)
    try:
        unprotect(entity, at=NOW)
    except SmimeError:
        pass
