"""The compact form of protect() (for a peer that already holds our certificate): what it
leaves out, that we and OpenSSL still read it, and that a small pager-mode message fits."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from messenger.pki.authority import create_authority
from messenger.pki.identity import Identity, create_identity
from messenger.pki.trust import TrustStore
from messenger.pki.verdict import Authenticity
from messenger.smime import cms
from messenger.smime.mime import MimeEntity, split_entity
from messenger.smime.protect import protect, unprotect
from messenger.smime.report import Confidentiality

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"
CPIM = "message/cpim"
#: A pager-mode CPIM message with IMDN headers and five bytes of text (about 260 bytes).
SMALL_CPIM = (
    b"From: <sip:alice@example.test>\r\nTo: <sip:bob@example.test>\r\n"
    b"DateTime: 2026-11-27T03:30:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\n"
    b"imdn.Message-ID: 34jk324j\r\nimdn.Disposition-Notification: positive-delivery\r\n\r\n"
    b"Content-Type: text/plain;charset=utf-8\r\nContent-Length: 5\r\n\r\nsmall"
)
_SMIME_CAPABILITIES = "smime_capabilities"


@pytest.fixture(scope="module")
def ca():
    return create_authority("Test CA", now=NOW - timedelta(days=1))


@pytest.fixture(scope="module", params=["p256", "ed25519", "rsa2048"])
def pair(request, ca) -> tuple[Identity, Identity]:
    kt = request.param
    alice = create_identity(ALICE, key_type=kt, authority=ca, now=NOW - timedelta(days=1))
    bob = create_identity(BOB, key_type=kt, authority=ca, now=NOW - timedelta(days=1))
    return alice, bob


@pytest.fixture
def trust(ca):
    store = TrustStore()
    store.add_anchor(ca.certificate)
    store.add_crl(ca.crl(now=NOW - timedelta(hours=1)))
    return store


def _protect(alice: Identity, bob: Identity | None, **kw: Any) -> MimeEntity:
    return protect(
        SMALL_CPIM,
        content_type=CPIM,
        signer=alice,
        recipients=[bob.encryption_certificate] if bob is not None else [],
        signing_time=NOW,
        **kw,
    )


def _signed_data(der: bytes) -> Any:
    ci = asn1_cms.ContentInfo.load(der)
    assert ci["content_type"].native == "signed_data"
    return ci["content"]


def _inner_signed(entity: MimeEntity, bob: Identity) -> tuple[bytes, bytes]:
    """(the signed entity's head, its DER) from inside the envelope."""
    result = cms.decrypt(entity.body, bob.decryption_keys())
    headers, body = split_entity(result.head + bytes(result.content))
    head = MimeEntity(headers, b"").head_bytes()
    return head, bytes(body)


def test_compact_is_the_default_without_certificates(pair):
    alice, _ = pair
    sd = _signed_data(_protect(alice, None, include_certificates=False).body)
    si = sd["signer_infos"][0]
    assert sd["version"].native == "v3"
    assert si["version"].native == "v3"
    assert si["sid"].name == "subject_key_identifier"
    ski = alice.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert si["sid"].native == ski.value.digest
    names = [a["type"].native for a in si["signed_attrs"]]
    assert _SMIME_CAPABILITIES not in names
    assert {"content_type", "signing_time", "message_digest", "signing_certificate_v2"} <= set(
        names
    )
    ess = next(a for a in si["signed_attrs"] if a["type"].native == "signing_certificate_v2")
    cert_id = ess["values"][0]["certs"][0]
    assert cert_id["issuer_serial"].native is None
    assert (
        cert_id["cert_hash"].native
        == hashlib.sha256(alice.certificate.public_bytes(Encoding.DER)).digest()
    )


def test_first_contact_keeps_the_full_form(pair):
    alice, _ = pair
    sd = _signed_data(_protect(alice, None).body)
    si = sd["signer_infos"][0]
    assert si["sid"].name == "issuer_and_serial_number"
    assert _SMIME_CAPABILITIES in [a["type"].native for a in si["signed_attrs"]]
    assert len(sd["certificates"]) >= 1


def test_compact_can_be_asked_for_or_refused_explicitly(pair):
    alice, _ = pair
    full = _signed_data(_protect(alice, None, include_certificates=False, compact=False).body)
    assert full["signer_infos"][0]["sid"].name == "issuer_and_serial_number"
    both = _signed_data(_protect(alice, None, include_certificates=True, compact=True).body)
    assert both["signer_infos"][0]["sid"].name == "subject_key_identifier"
    assert len(both["certificates"]) >= 1


def test_compact_envelope_names_the_recipient_by_key_identifier(pair):
    alice, bob = pair
    entity = _protect(alice, bob, include_certificates=False)
    ci = asn1_cms.ContentInfo.load(entity.body)
    ri = ci["content"]["recipient_infos"][0]
    ski = bob.encryption_certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value.digest
    if ri.name == "kari":
        rek = ri.chosen["recipient_encrypted_keys"][0]
        assert rek["rid"].name == "r_key_id"
        assert rek["rid"].chosen["subject_key_identifier"].native == ski
        originator = ri.chosen["originator"].chosen
        if originator["algorithm"]["algorithm"].native == "ec":
            assert originator["algorithm"]["parameters"].native is None
    else:
        assert ri.name == "ktri"
        assert ri.chosen["version"].native == "v2"
        assert ri.chosen["rid"].name == "subject_key_identifier"
        assert ri.chosen["rid"].native == ski
    head, _ = _inner_signed(entity, bob)
    assert head == b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n"


def test_compact_forms_are_read_back_green(pair, trust):
    alice, bob = pair
    for recipient in (None, bob):
        for multipart_signed in (False, True):
            entity = _protect(
                alice, recipient, include_certificates=False, multipart_signed=multipart_signed
            )
            got = unprotect(
                MimeEntity.parse(entity.to_bytes()),
                identity=bob,
                trust=trust,
                sender=ALICE,
                at=NOW,
                extra_certificates=[alice.certificate],
            )
            assert got.report.authenticity is Authenticity.VERIFIED, got.report.reason
            assert got.content == SMALL_CPIM
            if recipient is not None:
                assert got.report.confidentiality is Confidentiality.ENCRYPTED


def test_compact_signature_needs_the_certificate_it_names(pair, trust):
    alice, _ = pair
    other = create_identity(ALICE, now=NOW - timedelta(days=1))
    entity = _protect(alice, None, include_certificates=False)
    got = unprotect(
        entity, trust=trust, sender=ALICE, at=NOW, extra_certificates=[other.certificate]
    )
    assert got.report.authenticity is Authenticity.BAD_SIGNATURE
    assert "certificate not found" in got.report.reason


def test_compact_signature_rejects_a_substituted_certificate(ca, trust):
    """Another certificate for the same key (same key identifier) is refused by the
    signingCertificateV2 hash, which the compact form keeps."""
    alice = create_identity(ALICE, authority=ca, now=NOW - timedelta(days=1))
    twin = ca.issue(ALICE, alice.signing_key.public_key(), days=30, now=NOW - timedelta(days=1))
    assert twin != alice.certificate
    entity = _protect(alice, None, include_certificates=False)
    got = unprotect(entity, trust=trust, sender=ALICE, at=NOW, extra_certificates=[twin])
    assert got.report.authenticity is Authenticity.BAD_SIGNATURE
    assert "signing certificate attribute" in got.report.reason


def test_compact_signature_finds_the_named_certificate_among_same_key_ones(ca, trust):
    """A renewal that kept the key gives two certificates with one key identifier: the
    one the signingCertificateV2 hash names is used, whatever the order."""
    alice = create_identity(ALICE, authority=ca, now=NOW - timedelta(days=1))
    twin = ca.issue(ALICE, alice.signing_key.public_key(), days=30, now=NOW - timedelta(days=2))
    entity = _protect(alice, None, include_certificates=False)
    for known in ([twin, alice.certificate], [alice.certificate, twin]):
        got = unprotect(entity, trust=trust, sender=ALICE, at=NOW, extra_certificates=known)
        assert got.report.authenticity is Authenticity.VERIFIED, got.report.reason
        assert got.report.signer is not None
        der = alice.certificate.public_bytes(Encoding.DER)
        assert got.report.signer.sha256 == hashlib.sha256(der).hexdigest()


def _no_ski_certificate() -> tuple[Any, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "No SKI")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(ALICE)]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def test_certificate_without_key_identifier_falls_back_to_issuer_and_serial():
    key, cert = _no_ski_certificate()
    der = cms.sign(
        SMALL_CPIM,
        key=key,
        certificate=cert,
        include_certificates=False,
        signing_time=NOW,
        compact=True,
    )
    sd = _signed_data(der)
    assert sd["signer_infos"][0]["sid"].name == "issuer_and_serial_number"
    assert sd["version"].native == "v1"
    assert cms.verify_signed(der, extra_certificates=[cert]).signers[0].valid
    env = cms.encrypt(SMALL_CPIM, [cert], compact=True)
    ri = asn1_cms.ContentInfo.load(env)["content"]["recipient_infos"][0].chosen
    assert ri["recipient_encrypted_keys"][0]["rid"].name == "issuer_and_serial_number"
    assert cms.decrypt(env, [(key, cert)]).content == SMALL_CPIM


def test_rsa_key_identifier_envelope_is_version_2(ca):
    bob = create_identity(BOB, key_type="rsa2048", authority=ca, now=NOW - timedelta(days=1))
    env = cms.encrypt(SMALL_CPIM, [bob.certificate], cipher="aes128-cbc", compact=True)
    content = asn1_cms.ContentInfo.load(env)["content"]
    assert content["version"].native == "v2"  # RFC 5652 6.1: a v2 KeyTransRecipientInfo
    assert cms.decrypt(env, bob.decryption_keys()).content == SMALL_CPIM
    full = cms.encrypt(SMALL_CPIM, [bob.certificate], cipher="aes128-cbc")
    assert asn1_cms.ContentInfo.load(full)["content"]["version"].native == "v0"


def test_small_pager_message_is_much_smaller_compact(ca):
    """The sizes the pager mode depends on, for P-256 identities issued by a CA."""
    alice = create_identity(ALICE, authority=ca, now=NOW - timedelta(days=1))
    bob = create_identity(BOB, authority=ca, now=NOW - timedelta(days=1))
    full = len(_protect(alice, bob, include_certificates=False, compact=False).body)
    compact = len(_protect(alice, bob, include_certificates=False).body)
    signed_full = len(_protect(alice, None, include_certificates=False, compact=False).body)
    signed = len(_protect(alice, None, include_certificates=False).body)
    # Issuer name and serial twice, the ESS issuerSerial, SMIMECapabilities, the inner
    # MIME headers and the curve parameters of the ephemeral key are gone.
    assert full - compact >= 250, (full, compact)
    assert signed_full - signed >= 130, (signed_full, signed)
    assert compact <= 1000, compact
    assert signed <= 670, signed


# --------------------------------------------------------------------------- OpenSSL


def _as_identity(ident: Any, pki: Any) -> Identity:
    return Identity(ident.key, ident.cert, (pki.ca.cert,))


@pytest.mark.interop
@pytest.mark.parametrize("who", ["ec", "rsa"])
def test_openssl_verifies_compact_signature(openssl, pki, signing_time, who):
    ident = getattr(pki, who)
    der = cms.sign(
        SMALL_CPIM,
        key=ident.key,
        certificate=ident.cert,
        include_certificates=False,
        signing_time=signing_time,
        compact=True,
    )
    assert _signed_data(der)["signer_infos"][0]["sid"].name == "subject_key_identifier"
    rc, out, err = openssl.cms_verify(pki.ca_path, der, signer=ident)
    assert rc == 0, err + openssl.dump(openssl.write(der, ".der"))
    assert out == SMALL_CPIM


@pytest.mark.interop
def test_openssl_refuses_compact_signature_from_another_key(openssl, pki, signing_time):
    der = cms.sign(
        SMALL_CPIM,
        key=pki.ec.key,
        certificate=pki.ec.cert,
        include_certificates=False,
        signing_time=signing_time,
        compact=True,
    )
    rc, _, _ = openssl.cms_verify(pki.ca_path, der, signer=pki.ec2)
    assert rc != 0


@pytest.mark.interop
@pytest.mark.parametrize(
    ("who", "cipher"),
    [("ec", "aes128-gcm"), ("rsa", "aes128-gcm"), ("ec", "aes128-cbc"), ("rsa", "aes256-cbc")],
)
def test_openssl_decrypts_compact_envelope(openssl, pki, who, cipher):
    ident = getattr(pki, who)
    der = cms.encrypt(SMALL_CPIM, [ident.cert, pki.ec2.cert], cipher=cipher, compact=True)
    for recipient in (ident, pki.ec2):
        rc, out, err = openssl.cms_decrypt(recipient, der)
        assert rc == 0, err + openssl.dump(openssl.write(der, ".der"))
        assert out == SMALL_CPIM


@pytest.mark.interop
@pytest.mark.parametrize(("sender", "receiver"), [("ec", "ec2"), ("rsa", "ec"), ("ec", "rsa")])
def test_openssl_opens_compact_signed_and_encrypted_message(
    openssl, pki, signing_time, sender, receiver
):
    """The whole pager-mode body: OpenSSL decrypts it, then verifies the signed entity
    inside against the sender's certificate it is given."""
    alice, bob = getattr(pki, sender), getattr(pki, receiver)
    entity = protect(
        SMALL_CPIM,
        content_type=CPIM,
        signer=_as_identity(alice, pki),
        recipients=[bob.cert],
        include_certificates=False,
        signing_time=signing_time,
    )
    rc, inner, err = openssl.cms_decrypt(bob, entity.body)
    assert rc == 0, err
    headers, der = split_entity(inner)
    assert headers == (("Content-Type", "application/pkcs7-mime; smime-type=signed-data"),)
    rc, out, err = openssl.cms_verify(pki.ca_path, bytes(der), signer=alice)
    assert rc == 0, err
    assert out == b"Content-Type: message/cpim\r\n\r\n" + SMALL_CPIM


@pytest.mark.interop
def test_we_read_openssl_key_identifier_signature_without_certificates(openssl, pki, tmp_path):
    """OpenSSL's own compact form (-keyid -nocerts) reads as ours does."""
    out = openssl.path(".der")
    openssl.run(
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-keyid",
        "-nocerts",
        "-md",
        "sha256",
        "-in",
        openssl.write(SMALL_CPIM, ".txt"),
        "-signer",
        pki.ec.cert_path,
        "-inkey",
        pki.ec.key_path,
        "-outform",
        "DER",
        "-out",
        out,
    )
    der = out.read_bytes()
    result = cms.verify_signed(der, extra_certificates=[pki.ec2.cert, pki.ec.cert])
    assert result.signers[0].valid and result.signers[0].certificate == pki.ec.cert
    assert result.content == SMALL_CPIM
