"""The demo CA: its certificate, issuing (also X25519), revoking, CRLs, its files, and that
OpenSSL accepts what it issues for S/MIME signing."""

from __future__ import annotations

import stat
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from messenger.pki.authority import (
    Authority,
    create_authority,
    load_authority,
    save_authority,
)
from messenger.pki.errors import AuthorityError, WrongPassphraseError
from messenger.pki.identity import Identity, create_identity


def _ext(obj: x509.Certificate | x509.CertificateRevocationList, kind: type) -> x509.Extension:
    return obj.extensions.get_extension_for_class(kind)


def test_create_authority_is_a_critical_ca_with_key_identifiers(
    ca: Authority, now: datetime
) -> None:
    cert = ca.certificate
    assert ca.name == "Demo CA"
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    assert cert.not_valid_after_utc == now + timedelta(days=3650)
    cert.verify_directly_issued_by(cert)
    assert ca.last_crl is not None and ca.crl_number == 1


def test_rsa_authority_and_refused_ed25519_authority(now: datetime) -> None:
    rsa_ca = create_authority("RSA CA", now=now, key_type="rsa2048")
    leaf = create_identity("sip:r@example.test", authority=rsa_ca, now=now)
    leaf.certificate.verify_directly_issued_by(rsa_ca.certificate)
    with pytest.raises(AuthorityError, match="Ed25519"):
        create_authority("Ed CA", now=now, key_type="ed25519")


def test_issue_for_an_x25519_key(ca: Authority, now: datetime) -> None:
    key = x25519.X25519PrivateKey.generate()
    cert = ca.issue("sip:x@example.test", key.public_key(), days=30, now=now, subject_cn="x enc")
    assert isinstance(cert.public_key(), x25519.X25519PublicKey)
    ku = _ext(cert, x509.KeyUsage).value
    assert ku.key_agreement and not ku.digital_signature
    assert cert.subject.rfc4514_string() == "CN=x enc"
    cert.verify_directly_issued_by(ca.certificate)


def test_issued_certificate_never_outlives_its_ca(now: datetime) -> None:
    short = create_authority("Short CA", days=10, now=now)
    identity = create_identity("sip:a@example.test", authority=short, days=365, now=now)
    assert identity.certificate.not_valid_after_utc == short.certificate.not_valid_after_utc


def test_revoke_and_crl(ca: Authority, bob: Identity, now: datetime) -> None:
    assert not ca.is_revoked(bob.certificate)
    entry = ca.revoke(bob.certificate, now=now, reason=x509.ReasonFlags.key_compromise)
    assert entry.serial == bob.certificate.serial_number and entry.revoked_at == now
    assert ca.is_revoked(bob.certificate.serial_number)
    ca.revoke(bob.certificate, now=now + timedelta(days=1))  # second time keeps the first
    assert ca.revoked == (entry,)
    crl = ca.crl(now=now + timedelta(hours=2), next_update=timedelta(days=3))
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert crl.issuer == ca.certificate.subject
    assert crl.last_update_utc == now + timedelta(hours=2)
    assert crl.next_update_utc == now + timedelta(hours=2, days=3)
    number = _ext(crl, x509.CRLNumber).value.crl_number
    assert number == ca.crl_number and number >= 3
    ski = _ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert _ext(crl, x509.AuthorityKeyIdentifier).value.key_identifier == ski
    revoked = crl.get_revoked_certificate_by_serial_number(bob.certificate.serial_number)
    assert revoked is not None
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert ca.last_crl == crl
    other = create_authority("Other CA", now=now)
    with pytest.raises(AuthorityError, match="did not issue"):
        other.revoke(bob.certificate, now=now)


def test_save_and_load_authority_round_trip(
    ca: Authority, bob: Identity, now: datetime, tmp_path: Path
) -> None:
    ca.revoke(bob.certificate, now=now, reason=x509.ReasonFlags.superseded)
    save_authority(ca, tmp_path / "ca", b"ca-pass")
    assert stat.S_IMODE((tmp_path / "ca" / "key.pem").stat().st_mode) == 0o600
    assert {p.name for p in (tmp_path / "ca").iterdir()} == {"cert.pem", "key.pem", "crl.pem"}
    with pytest.raises(WrongPassphraseError):
        load_authority(tmp_path / "ca", None)
    with pytest.raises(WrongPassphraseError):
        load_authority(tmp_path / "ca", b"nope")
    loaded = load_authority(tmp_path / "ca", b"ca-pass")
    assert loaded.certificate == ca.certificate
    assert loaded.revoked == ca.revoked
    assert loaded.revoked[0].reason == x509.ReasonFlags.superseded
    assert loaded.crl_number == ca.crl_number
    # the loaded CA keeps issuing and numbering CRLs
    carol = create_identity("sip:carol@example.test", authority=loaded, now=now)
    carol.certificate.verify_directly_issued_by(ca.certificate)
    assert _ext(loaded.crl(now=now), x509.CRLNumber).value.crl_number == ca.crl_number + 1


def test_save_authority_with_now_issues_a_fresh_crl(
    ca: Authority, now: datetime, tmp_path: Path
) -> None:
    later = now + timedelta(days=5)
    save_authority(ca, tmp_path, now=later)
    crl = x509.load_pem_x509_crl((tmp_path / "crl.pem").read_bytes())
    assert crl.last_update_utc == later


def test_load_authority_rejects_a_foreign_crl(now: datetime, tmp_path: Path) -> None:
    one = create_authority("One", now=now)
    two = create_authority("Two", now=now)
    save_authority(one, tmp_path / "one")
    save_authority(two, tmp_path / "two")
    (tmp_path / "one" / "crl.pem").write_bytes((tmp_path / "two" / "crl.pem").read_bytes())
    with pytest.raises(AuthorityError, match="not issued by this CA"):
        load_authority(tmp_path / "one")
    with pytest.raises(AuthorityError, match="missing"):
        load_authority(tmp_path / "none")


def test_intermediate_authority_chain(ca: Authority, now: datetime) -> None:
    sub = create_authority("Demo Sub CA", now=now, parent=ca)
    assert sub.chain == (ca.certificate,)
    sub.certificate.verify_directly_issued_by(ca.certificate)
    identity = create_identity("sip:dave@example.test", authority=sub, now=now)
    assert identity.chain == (sub.certificate, ca.certificate)


@pytest.mark.interop
@pytest.mark.parametrize("key_type", ["p256", "rsa2048", "ed25519"])
def test_openssl_verify_accepts_our_certificates_for_smime_signing(
    openssl: str, ca: Authority, now: datetime, tmp_path: Path, key_type: str
) -> None:
    sub = create_authority("Demo Sub CA", now=now, parent=ca)
    direct = create_identity("sip:bob@example.test", key_type=key_type, authority=ca, now=now)
    nested = create_identity("sip:dave@example.test", key_type=key_type, authority=sub, now=now)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.certificate.public_bytes(pem))
    (tmp_path / "sub.pem").write_bytes(sub.certificate.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(direct.certificate.public_bytes(pem))
    (tmp_path / "nested.pem").write_bytes(nested.certificate.public_bytes(pem))
    attime = str(int((now + timedelta(minutes=5)).timestamp()))
    for leaf, extra in (("leaf.pem", []), ("nested.pem", ["-untrusted", "sub.pem"])):
        result = subprocess.run(
            [
                openssl,
                "verify",
                "-attime",
                attime,
                "-CAfile",
                "ca.pem",
                *extra,
                "-purpose",
                "smimesign",
                leaf,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{leaf}: OK" in result.stdout
    # and OpenSSL sees the revocation in our CRL
    ca.revoke(direct.certificate, now=now)
    assert ca.last_crl is not None
    (tmp_path / "crl.pem").write_bytes(ca.last_crl.public_bytes(pem))
    result = subprocess.run(
        [
            openssl,
            "verify",
            "-attime",
            attime,
            "-CAfile",
            "ca.pem",
            "-CRLfile",
            "crl.pem",
            "-crl_check",
            "-purpose",
            "smimesign",
            "leaf.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "revoked" in (result.stdout + result.stderr).lower()
