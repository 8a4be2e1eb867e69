"""The trust store: one test per authenticity state `evaluate` can return, the precedence
between them, SIP URI matching of the sender, revocation, persistence and decisions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from messenger.pki.authority import Authority, create_authority
from messenger.pki.errors import TrustStoreError
from messenger.pki.identity import Identity, create_identity
from messenger.pki.trust import Decision, TrustStore, format_fingerprint
from messenger.pki.verdict import (
    Authenticity,
    Outcome,
    Revocation,
    TrustVerdict,
    certificate_sha256,
)

BOB = "sip:bob@example.test"


def check(verdict: TrustVerdict, name: str) -> tuple[Outcome, str]:
    found = [c for c in verdict.checks if c.name == name]
    assert len(found) == 1, verdict.checks
    return found[0].outcome, found[0].reason


def assert_checklist_complete(verdict: TrustVerdict) -> None:
    names = [c.name for c in verdict.checks]
    assert names == [
        "algorithm",
        "key-usage",
        "sender",
        "validity",
        "chain",
        "pin",
        "revocation",
    ]
    assert verdict.authenticity not in (Authenticity.BAD_SIGNATURE, Authenticity.UNSIGNED)
    assert verdict.reason.endswith(".") and "\n" not in verdict.reason


# -- one test per state ------------------------------------------------------------------------


def test_verified_chain_to_anchor_with_current_crl(
    store: TrustStore, ca: Authority, bob: Identity, now: datetime
) -> None:
    store.add_crl(ca.crl(now=now))
    verdict = store.evaluate(bob.certificate, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.VERIFIED
    assert verdict.authenticity.is_green
    assert verdict.sender_match is True
    assert verdict.revocation is Revocation.GOOD
    assert verdict.reason == (
        "Signed by sip:bob@example.test, certificate issued by Demo CA, "
        "not revoked (CRL of 2026-11-26)."
    )
    assert [s.sha256 for s in verdict.chain] == [bob.sha256, certificate_sha256(ca.certificate)]
    assert all(c.outcome is Outcome.PASS for c in verdict.checks if c.name != "pin")
    assert check(verdict, "pin")[0] is Outcome.UNKNOWN
    assert_checklist_complete(verdict)


def test_verified_pinned_self_signed(store: TrustStore, now: datetime) -> None:
    alice = create_identity("sip:alice@example.test", now=now)
    store.pin("sip:alice@example.test", alice.certificate, now=now - timedelta(days=3))
    verdict = store.evaluate(alice.certificate, sender="sip:alice@example.test", at=now)
    assert verdict.authenticity is Authenticity.VERIFIED_PINNED
    assert verdict.revocation is Revocation.NOT_CHECKED
    assert "pinned on 2026-11-23" in verdict.reason
    assert check(verdict, "pin")[0] is Outcome.PASS
    assert [s.sha256 for s in verdict.chain] == [alice.sha256]
    assert_checklist_complete(verdict)


def test_unverified_new_self_signed_offers_fingerprint_comparison(
    store: TrustStore, now: datetime
) -> None:
    alice = create_identity("sip:alice@example.test", now=now)
    verdict = store.evaluate(alice.certificate, sender="sip:alice@example.test", at=now)
    assert verdict.authenticity is Authenticity.UNVERIFIED_NEW
    assert verdict.sender_match is True
    assert "self-signed" in verdict.reason and "fingerprint" in verdict.reason
    assert check(verdict, "chain")[0] is Outcome.UNKNOWN
    assert format_fingerprint(alice.sha256) in check(verdict, "pin")[1]
    assert_checklist_complete(verdict)


def test_unverified_new_unknown_issuer(store: TrustStore, now: datetime) -> None:
    stranger_ca = create_authority("Stranger CA", now=now)
    carol = create_identity("sip:carol@example.test", authority=stranger_ca, now=now)
    verdict = store.evaluate(carol.certificate, sender="sip:carol@example.test", at=now)
    assert verdict.authenticity is Authenticity.UNVERIFIED_NEW
    assert "Stranger CA" in verdict.reason
    assert "Stranger CA" in check(verdict, "chain")[1]


def test_key_changed_even_when_the_new_certificate_chains_to_an_anchor(
    store: TrustStore, ca: Authority, bob: Identity, now: datetime
) -> None:
    store.add_crl(ca.crl(now=now))
    old = create_identity(BOB, now=now)
    store.pin(BOB, old.certificate, now=now - timedelta(days=10))
    verdict = store.evaluate(bob.certificate, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.KEY_CHANGED
    assert "the certificate differs from the one you pinned on 2026-11-16" in verdict.reason
    outcome, words = check(verdict, "pin")
    assert outcome is Outcome.FAIL and format_fingerprint(old.sha256) in words
    assert check(verdict, "chain")[0] is Outcome.PASS
    assert_checklist_complete(verdict)


def test_sender_mismatch(store: TrustStore, ca: Authority, bob: Identity, now: datetime) -> None:
    store.add_crl(ca.crl(now=now))
    verdict = store.evaluate(bob.certificate, sender="sip:alice@example.test", at=now)
    assert verdict.authenticity is Authenticity.SENDER_MISMATCH
    assert verdict.sender_match is False
    assert verdict.reason == (
        "Signed by sip:bob@example.test, not by the sender sip:alice@example.test."
    )
    assert check(verdict, "sender")[0] is Outcome.FAIL
    assert_checklist_complete(verdict)


def test_expired(store: TrustStore, ca: Authority, bob: Identity, now: datetime) -> None:
    later = now + timedelta(days=400)
    store.add_crl(ca.crl(now=later))
    verdict = store.evaluate(bob.certificate, sender=BOB, at=later)
    assert verdict.authenticity is Authenticity.EXPIRED
    assert "expired on 2027-11-26" in verdict.reason
    assert check(verdict, "validity")[0] is Outcome.FAIL
    assert_checklist_complete(verdict)


def test_signing_time_outside_validity_counts_even_if_valid_now(
    store: TrustStore, bob: Identity, now: datetime
) -> None:
    early = store.evaluate(
        bob.certificate, sender=BOB, at=now, signing_time=now - timedelta(days=2)
    )
    assert early.authenticity is Authenticity.NOT_YET_VALID
    assert "signed on 2026-11-24, before the certificate became valid" in early.reason
    late = store.evaluate(
        bob.certificate,
        sender=BOB,
        at=now + timedelta(days=400),
        signing_time=now + timedelta(days=300),
    )
    assert late.authenticity is Authenticity.EXPIRED
    assert "the certificate expired on 2027-11-26" in late.reason


def test_signing_time_after_the_verification_moment_is_noted_not_used(
    store: TrustStore, bob: Identity, now: datetime
) -> None:
    """The RFC 8591 figures claim a 2019 signing time for a certificate that ended in 2018."""
    future = store.evaluate(
        bob.certificate,
        sender=BOB,
        at=now + timedelta(hours=1),
        signing_time=now + timedelta(days=400),
    )
    assert future.authenticity is not Authenticity.EXPIRED
    validity = check(future, "validity")
    assert validity[0] is Outcome.PASS
    assert "lies after the moment of verification and was not used" in validity[1]


def test_not_yet_valid(store: TrustStore, ca: Authority, bob: Identity, now: datetime) -> None:
    verdict = store.evaluate(bob.certificate, sender=BOB, at=now - timedelta(days=1))
    assert verdict.authenticity is Authenticity.NOT_YET_VALID
    assert "not valid before 2026-11-26" in verdict.reason
    assert_checklist_complete(verdict)


def test_revoked(store: TrustStore, ca: Authority, bob: Identity, now: datetime) -> None:
    ca.revoke(bob.certificate, now=now, reason=x509.ReasonFlags.key_compromise)
    assert ca.last_crl is not None
    store.add_crl(ca.last_crl)
    verdict = store.evaluate(bob.certificate, sender=BOB, at=now + timedelta(hours=1))
    assert verdict.authenticity is Authenticity.REVOKED
    assert verdict.revocation is Revocation.REVOKED
    assert verdict.reason == (
        "Signed by sip:bob@example.test, but Demo CA revoked the certificate on 2026-11-26 "
        "(keyCompromise)."
    )
    assert check(verdict, "revocation")[0] is Outcome.FAIL
    assert_checklist_complete(verdict)


def test_revocation_unknown_without_crl(store: TrustStore, bob: Identity, now: datetime) -> None:
    verdict = store.evaluate(bob.certificate, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.REVOCATION_UNKNOWN
    assert verdict.authenticity.is_green
    assert verdict.revocation is Revocation.UNKNOWN
    assert "no CRL from Demo CA" in verdict.reason
    assert check(verdict, "revocation")[0] is Outcome.UNKNOWN
    assert_checklist_complete(verdict)


def test_the_same_certificate_is_judged_afresh_after_every_change_to_the_store(
    store: TrustStore, ca: Authority, bob: Identity, now: datetime
) -> None:
    """What evaluate remembers per certificate never hides a CRL, a pin or a distrust
    added since, nor another sender or time."""
    first = store.evaluate(bob.certificate, sender=BOB, at=now)
    assert first.revocation is Revocation.UNKNOWN
    assert check(first, "pin")[0] is Outcome.UNKNOWN
    other = store.evaluate(bob.certificate, sender="sip:mallory@example.test", at=now)
    assert other.authenticity is Authenticity.SENDER_MISMATCH
    later = store.evaluate(bob.certificate, sender=BOB, at=now + timedelta(days=3650))
    assert later.authenticity is Authenticity.EXPIRED
    store.add_crl(ca.crl(now=now))
    assert store.evaluate(bob.certificate, sender=BOB, at=now).revocation is Revocation.GOOD
    store.pin(BOB, bob.certificate, now=now)
    pinned = store.evaluate(bob.certificate, sender=BOB, at=now)
    assert pinned.authenticity is Authenticity.VERIFIED_PINNED
    assert check(pinned, "pin")[0] is Outcome.PASS
    store.distrust(BOB, bob.certificate, now=now)
    distrusted = store.evaluate(bob.certificate, sender=BOB, at=now)
    assert distrusted.authenticity is Authenticity.UNVERIFIED_NEW
    assert check(distrusted, "pin")[0] is Outcome.FAIL
    assert_checklist_complete(distrusted)


def test_a_repeated_question_gets_the_same_verdict_until_a_per_message_result_changes(
    store: TrustStore, ca: Authority, bob: Identity, now: datetime
) -> None:
    """The verdict assembled from one message's results is reused for the next message
    with the same results; path validation, validity and revocation still decide anew:
    a revocation published in between, a CRL gone stale or a removed anchor show at once."""
    store.add_crl(ca.crl(now=now))
    first = store.evaluate(bob.certificate, sender=BOB, at=now)
    again = store.evaluate(bob.certificate, sender=BOB, at=now + timedelta(minutes=1))
    assert first.authenticity is again.authenticity is Authenticity.VERIFIED
    assert again == first
    ca.revoke(bob.certificate, now=now)
    store.add_crl(ca.crl(now=now + timedelta(minutes=2)))
    revoked = store.evaluate(bob.certificate, sender=BOB, at=now + timedelta(minutes=3))
    assert revoked.authenticity is Authenticity.REVOKED
    stale = store.evaluate(bob.certificate, sender=BOB, at=now + timedelta(days=400))
    assert stale.authenticity is not Authenticity.VERIFIED
    store.remove_anchor(ca.certificate)
    unanchored = store.evaluate(bob.certificate, sender=BOB, at=now + timedelta(minutes=4))
    assert unanchored.authenticity is Authenticity.UNVERIFIED_NEW
    assert check(unanchored, "chain")[0] is Outcome.UNKNOWN


def test_weak_algorithm_sha1_certificate_signature(
    store: TrustStore,
    ca: Authority,
    bob: Identity,
    now: datetime,
    resign_weak: Callable[..., x509.Certificate],
) -> None:
    sha1_cert = resign_weak(bob.certificate, ca.key, "sha1")
    assert sha1_cert.signature_hash_algorithm is not None
    assert sha1_cert.signature_hash_algorithm.name == "sha1"
    store.add_crl(ca.crl(now=now))
    verdict = store.evaluate(sha1_cert, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.WEAK_ALGORITHM
    assert "SHA-1" in verdict.reason
    assert check(verdict, "algorithm")[0] is Outcome.FAIL
    assert_checklist_complete(verdict)


def test_weak_algorithm_md5_and_short_rsa_key(
    store: TrustStore,
    ca: Authority,
    now: datetime,
    resign_weak: Callable[..., x509.Certificate],
) -> None:
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    cert = ca.issue(BOB, short.public_key(), now=now)
    verdict = store.evaluate(cert, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.WEAK_ALGORITHM
    assert "RSA key of 1024 bits" in verdict.reason
    rsa3072 = create_identity(BOB, key_type="rsa3072", authority=ca, now=now)
    stricter = store.evaluate(rsa3072.certificate, sender=BOB, at=now, min_rsa_bits=4096)
    assert stricter.authenticity is Authenticity.WEAK_ALGORITHM
    rsa_ca = create_authority("RSA CA", now=now, key_type="rsa2048")
    md5 = resign_weak(
        create_identity(BOB, authority=rsa_ca, now=now).certificate, rsa_ca.key, "md5"
    )
    assert store.evaluate(md5, sender=BOB, at=now).authenticity is Authenticity.WEAK_ALGORITHM


# -- precedence and finer rules ----------------------------------------------------------------


def test_precedence_weak_beats_mismatch_beats_expiry(
    store: TrustStore,
    ca: Authority,
    bob: Identity,
    now: datetime,
    resign_weak: Callable[..., x509.Certificate],
) -> None:
    later = now + timedelta(days=400)
    mismatch_and_expired = store.evaluate(bob.certificate, sender="sip:eve@example.test", at=later)
    assert mismatch_and_expired.authenticity is Authenticity.SENDER_MISMATCH
    assert check(mismatch_and_expired, "validity")[0] is Outcome.FAIL
    weak = resign_weak(bob.certificate, ca.key, "sha1")
    all_three = store.evaluate(weak, sender="sip:eve@example.test", at=later)
    assert all_three.authenticity is Authenticity.WEAK_ALGORITHM


def test_revoked_beats_pinned(
    store: TrustStore, ca: Authority, bob: Identity, now: datetime
) -> None:
    store.pin(BOB, bob.certificate, now=now)
    ca.revoke(bob.certificate, now=now)
    assert ca.last_crl is not None
    store.add_crl(ca.last_crl)
    verdict = store.evaluate(bob.certificate, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.REVOKED


def test_key_usage_violation_is_unverified_new(
    store: TrustStore, ca: Authority, now: datetime
) -> None:
    store.add_crl(ca.crl(now=now))
    key = ec.generate_private_key(ec.SECP256R1())
    agreement_only = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = ca.issue(BOB, key.public_key(), now=now, key_usage=agreement_only)
    verdict = store.evaluate(cert, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.UNVERIFIED_NEW
    outcome, words = check(verdict, "key-usage")
    assert outcome is Outcome.FAIL and "digitalSignature" in words
    assert "does not allow signing" in verdict.reason
    # the same certificate is fine for encryption
    assert store.evaluate(cert, sender=BOB, at=now, usage="encryption").authenticity is (
        Authenticity.VERIFIED
    )


def test_ed25519_certificate_cannot_be_used_for_encryption(
    store: TrustStore, ca: Authority, now: datetime
) -> None:
    eve = create_identity("sip:eve@example.test", key_type="ed25519", authority=ca, now=now)
    store.add_crl(ca.crl(now=now))
    assert store.evaluate(eve.certificate, sender="sip:eve@example.test", at=now).authenticity is (
        Authenticity.VERIFIED
    )
    verdict = store.evaluate(
        eve.certificate, sender="sip:eve@example.test", at=now, usage="encryption"
    )
    assert verdict.authenticity is Authenticity.UNVERIFIED_NEW
    assert check(verdict, "key-usage")[0] is Outcome.FAIL
    enc = store.evaluate(
        eve.encryption_certificate, sender="sip:eve@example.test", at=now, usage="encryption"
    )
    assert enc.authenticity is Authenticity.VERIFIED


def test_eku_without_email_protection_is_unverified_new(
    store: TrustStore, ca: Authority, now: datetime
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bob")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(BOB)]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
        .sign(ca.key, hashes.SHA256())
    )
    verdict = store.evaluate(cert, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.UNVERIFIED_NEW
    assert "emailProtection" in check(verdict, "key-usage")[1]


def test_certificate_without_eku_or_key_usage_chains(
    store: TrustStore, ca: Authority, now: datetime
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bob")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(BOB)]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
        .sign(ca.key, hashes.SHA256())
    )
    store.add_crl(ca.crl(now=now))
    assert store.evaluate(cert, sender=BOB, at=now).authenticity is Authenticity.VERIFIED


def test_distrusted_certificate_stays_unverified_new_even_if_it_chains(
    store: TrustStore, ca: Authority, bob: Identity, now: datetime
) -> None:
    store.add_crl(ca.crl(now=now))
    store.distrust(BOB, bob.certificate, now=now - timedelta(days=1))
    verdict = store.evaluate(bob.certificate, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.UNVERIFIED_NEW
    assert "marked as not trusted on 2026-11-25" in verdict.reason
    assert check(verdict, "pin")[0] is Outcome.FAIL
    # pinning it again lifts the distrust
    store.pin(BOB, bob.certificate, now=now)
    assert store.evaluate(bob.certificate, sender=BOB, at=now).authenticity is (
        Authenticity.VERIFIED_PINNED
    )
    # distrusting the pinned certificate removes the pin
    store.distrust(BOB, bob.certificate, now=now)
    assert store.pinned(BOB) is None


def test_self_signed_anchor_counts_as_chained(store: TrustStore, now: datetime) -> None:
    alice = create_identity("sip:alice@example.test", now=now)
    store.add_anchor(alice.certificate)
    verdict = store.evaluate(alice.certificate, sender="sip:alice@example.test", at=now)
    assert verdict.authenticity is Authenticity.VERIFIED
    assert check(verdict, "chain")[0] is Outcome.PASS
    assert check(verdict, "revocation")[0] is Outcome.PASS


def test_chain_through_intermediate_checks_every_crl(
    store: TrustStore, ca: Authority, now: datetime
) -> None:
    sub = create_authority("Demo Sub CA", now=now, parent=ca)
    dave = create_identity("sip:dave@example.test", authority=sub, now=now)
    unknown = store.evaluate(
        dave.certificate, sender="sip:dave@example.test", at=now, intermediates=[sub.certificate]
    )
    assert unknown.authenticity is Authenticity.REVOCATION_UNKNOWN
    assert "Demo Sub CA" in unknown.reason and "Demo CA" in unknown.reason
    assert [s.subject for s in unknown.chain] == [
        "CN=dave",
        "CN=Demo Sub CA",
        "CN=Demo CA",
    ]
    store.add_crl(sub.crl(now=now))
    store.add_crl(ca.crl(now=now))
    verified = store.evaluate(
        dave.certificate, sender="sip:dave@example.test", at=now, intermediates=[sub.certificate]
    )
    assert verified.authenticity is Authenticity.VERIFIED
    assert "issued by Demo Sub CA" in verified.reason
    ca.revoke(sub.certificate, now=now)
    assert ca.last_crl is not None
    store.add_crl(ca.last_crl)
    revoked = store.evaluate(
        dave.certificate, sender="sip:dave@example.test", at=now, intermediates=[sub.certificate]
    )
    assert revoked.authenticity is Authenticity.REVOKED
    assert "revoked the certificate of Demo Sub CA" in revoked.reason
    without_intermediate = store.evaluate(dave.certificate, sender="sip:dave@example.test", at=now)
    assert without_intermediate.authenticity is Authenticity.UNVERIFIED_NEW


def test_stale_or_forged_crl_means_revocation_unknown(
    store: TrustStore, ca: Authority, bob: Identity, now: datetime
) -> None:
    store.add_crl(ca.crl(now=now - timedelta(days=30), next_update=timedelta(days=7)))
    stale = store.evaluate(bob.certificate, sender=BOB, at=now)
    assert stale.authenticity is Authenticity.REVOCATION_UNKNOWN
    assert "out of date" in stale.reason
    # a CRL that names Demo CA but is signed by another key is ignored
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + timedelta(days=7))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    other = TrustStore()
    other.add_anchor(ca.certificate)
    other.add_crl(forged)
    verdict = other.evaluate(bob.certificate, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.REVOCATION_UNKNOWN
    assert "not signed by its key" in verdict.reason


def test_encryption_certificate_certified_by_pinned_ed25519_identity(
    store: TrustStore, now: datetime
) -> None:
    eve = create_identity("sip:eve@example.test", key_type="ed25519", now=now)
    store.pin("sip:eve@example.test", eve.certificate, now=now)
    verdict = store.evaluate(
        eve.encryption_certificate, sender="sip:eve@example.test", at=now, usage="encryption"
    )
    assert verdict.authenticity is Authenticity.VERIFIED_PINNED
    assert "certified by the certificate you pinned" in verdict.reason
    stranger = create_identity("sip:eve@example.test", key_type="ed25519", now=now)
    other = store.evaluate(
        stranger.encryption_certificate,
        sender="sip:eve@example.test",
        at=now,
        usage="encryption",
    )
    assert other.authenticity is Authenticity.KEY_CHANGED


def test_no_sender_leaves_the_sender_check_unknown(
    store: TrustStore, ca: Authority, bob: Identity, now: datetime
) -> None:
    store.add_crl(ca.crl(now=now))
    verdict = store.evaluate(bob.certificate, sender=None, at=now)
    assert verdict.sender_match is None
    assert check(verdict, "sender") == (Outcome.UNKNOWN, "no sender to compare")
    # pins of the certificate's own URI still count
    other = create_identity(BOB, now=now)
    store.pin(BOB, other.certificate, now=now)
    assert store.evaluate(bob.certificate, sender=None, at=now).authenticity is (
        Authenticity.KEY_CHANGED
    )


def test_no_anchors_at_all(bob: Identity, now: datetime) -> None:
    verdict = TrustStore().evaluate(bob.certificate, sender=BOB, at=now)
    assert verdict.authenticity is Authenticity.UNVERIFIED_NEW
    assert check(verdict, "chain") == (Outcome.UNKNOWN, "you have no trust anchors")


def test_naive_time_and_unknown_usage_are_refused(
    store: TrustStore, bob: Identity, now: datetime
) -> None:
    with pytest.raises(ValueError):
        store.evaluate(bob.certificate, sender=BOB, at=now.replace(tzinfo=None))
    with pytest.raises(ValueError):
        store.evaluate(bob.certificate, sender=BOB, at=now, usage="authentication")


# -- SIP URI matching (RFC 3261 section 19.1.4, via messenger.sip.uri) ----------------------------


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("sip:bob@example.test", Authenticity.VERIFIED),
        ("sip:bob@EXAMPLE.TEST", Authenticity.VERIFIED),  # host is case-insensitive
        ("sip:Bob@example.test", Authenticity.SENDER_MISMATCH),  # user is case-sensitive
        ('"Bob" <sip:bob@example.test>;tag=a73kszlfl', Authenticity.VERIFIED),  # tag ignored
        ("<sip:bob@Example.Test>;tag=1928301774", Authenticity.VERIFIED),
        ("sips:bob@example.test", Authenticity.SENDER_MISMATCH),  # sips is not sip
        ("sip:bob@example.test:5070", Authenticity.SENDER_MISMATCH),  # explicit port differs
        ("not a uri", Authenticity.SENDER_MISMATCH),
    ],
)
def test_sender_matching_uses_sip_uri_comparison(
    store: TrustStore,
    ca: Authority,
    bob: Identity,
    now: datetime,
    sender: str,
    expected: Authenticity,
) -> None:
    store.add_crl(ca.crl(now=now))
    verdict = store.evaluate(bob.certificate, sender=sender, at=now)
    assert verdict.authenticity is expected


def test_pins_are_looked_up_by_uri_comparison(
    store: TrustStore, bob: Identity, now: datetime
) -> None:
    store.pin('"Bob" <sip:bob@EXAMPLE.test>;tag=x', bob.certificate, now=now)
    assert store.pinned("sip:bob@example.test") == bob.certificate
    assert store.pinned("<sip:bob@example.TEST>;tag=y") == bob.certificate
    assert store.pinned("sip:BOB@example.test") is None
    assert store.pins[0].aor == "sip:bob@example.test"
    with pytest.raises(TrustStoreError):
        store.pin("not a uri", bob.certificate, now=now)


def test_learn_remembers_the_latest_certificate_per_aor(
    store: TrustStore, ca: Authority, now: datetime
) -> None:
    first = create_identity(BOB, authority=ca, now=now)
    second = create_identity(BOB, authority=ca, now=now)
    assert store.learned(BOB) is None
    store.learn(BOB, first.certificate, now=now)
    store.learn("<sip:bob@EXAMPLE.test>", second.certificate, now=now + timedelta(minutes=1))
    assert store.learned(BOB) == second.certificate
    assert store.pinned(BOB) is None
    assert store.decisions == ()


# -- persistence and decisions --------------------------------------------------------------------


def test_to_json_from_json_round_trips_everything(
    store: TrustStore, ca: Authority, bob: Identity, now: datetime
) -> None:
    alice = create_identity("sip:alice@example.test", now=now)
    carol = create_identity("sip:carol@example.test", now=now)
    store.add_crl(ca.crl(now=now))
    store.pin("sip:alice@example.test", alice.certificate, now=now, note="met in person")
    store.distrust("sip:carol@example.test", carol.certificate, now=now)
    store.learn(BOB, bob.certificate, now=now)
    store.record_decision(BOB, bob.certificate, "trust", now=now, note="once")
    document = json.loads(json.dumps(store.to_json()))
    restored = TrustStore.from_json(document)
    assert restored.to_json() == store.to_json()
    assert restored.anchors == store.anchors
    assert restored.crls == store.crls
    assert restored.pinned("sip:alice@example.test") == alice.certificate
    assert restored.learned(BOB) == bob.certificate
    assert restored.distrusted("sip:carol@example.test", carol.certificate) is not None
    assert restored.decisions == store.decisions
    for certificate, sender in (
        (bob.certificate, BOB),
        (alice.certificate, "sip:alice@example.test"),
        (carol.certificate, "sip:carol@example.test"),
    ):
        assert restored.evaluate(certificate, sender=sender, at=now) == store.evaluate(
            certificate, sender=sender, at=now
        )


def test_from_json_rejects_a_broken_document() -> None:
    with pytest.raises(TrustStoreError):
        TrustStore.from_json({"version": 99})
    with pytest.raises(TrustStoreError):
        TrustStore.from_json({"anchors": ["not pem"]})
    with pytest.raises(TrustStoreError):
        TrustStore.from_json({"decisions": [{"aor": "sip:a@b"}]})
    with pytest.raises(TrustStoreError):
        TrustStore.from_json([])  # type: ignore[arg-type]


def test_decisions_are_timestamped_and_exported_as_json_lines(
    store: TrustStore, bob: Identity, now: datetime
) -> None:
    other = create_identity(BOB, now=now)
    d1 = store.pin(BOB, other.certificate, now=now)
    d2 = store.pin(BOB, bob.certificate, now=now + timedelta(minutes=5), note="new phone")
    d3 = store.distrust(BOB, other.certificate, now=now + timedelta(minutes=6))
    d4 = store.unpin(BOB, now=now + timedelta(minutes=7))
    assert store.unpin(BOB, now=now + timedelta(minutes=8)) is None
    assert d4 is not None
    assert store.decisions == (d1, d2, d3, d4)
    assert [d.action for d in store.decisions] == ["pin", "pin", "distrust", "unpin"]
    assert d2 == Decision(BOB, bob.sha256, "pin", now + timedelta(minutes=5), "new phone")
    lines = store.export_decisions_jsonl().splitlines()
    assert len(lines) == 4
    records = [json.loads(line) for line in lines]
    assert records[1] == {
        "aor": BOB,
        "sha256": bob.sha256,
        "action": "pin",
        "at": "2026-11-26T12:05:00+00:00",
        "note": "new phone",
    }
    assert [datetime.fromisoformat(r["at"]) for r in records] == [d.at for d in store.decisions]
    with pytest.raises(ValueError):
        store.pin(BOB, bob.certificate, now=now.replace(tzinfo=None))
    with pytest.raises(TrustStoreError, match="pin"):
        store.record_decision(BOB, bob.certificate, "pin", now=now)
    logged = store.record_decision(BOB, format_fingerprint(bob.sha256), "dismiss", now=now)
    assert logged.sha256 == bob.sha256 and store.decisions[-1] == logged
