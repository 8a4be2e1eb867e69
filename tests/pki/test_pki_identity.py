"""Identities: creation for every key type, files with and without passphrase, owner-only
key files, wrong passphrases, PKCS#12 (ours and OpenSSL's), certificate loading."""

from __future__ import annotations

import os
import stat
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from messenger.pki import _files
from messenger.pki.authority import Authority
from messenger.pki.errors import IdentityError, PkiError, WrongPassphraseError
from messenger.pki.identity import (
    Identity,
    create_identity,
    identity_from_pkcs12,
    identity_to_pkcs12,
    load_certificates,
    load_identity,
    save_identity,
)

KEY_TYPES = ["p256", "ed25519", "rsa2048", "rsa3072"]
KEY_CLASSES = {
    "p256": ec.EllipticCurvePrivateKey,
    "ed25519": ed25519.Ed25519PrivateKey,
    "rsa2048": rsa.RSAPrivateKey,
    "rsa3072": rsa.RSAPrivateKey,
}


def _ext(certificate: x509.Certificate, kind: type) -> x509.Extension:
    return certificate.extensions.get_extension_for_class(kind)


@pytest.mark.parametrize("with_ca", [False, True], ids=["self-signed", "ca-issued"])
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_create_identity_every_key_type_has_rfc8591_certificate(
    key_type: str, with_ca: bool, ca: Authority, now: datetime
) -> None:
    identity = create_identity(
        "sip:alice@example.test", key_type=key_type, authority=ca if with_ca else None, now=now
    )
    cert = identity.certificate
    assert isinstance(identity.signing_key, KEY_CLASSES[key_type])
    if key_type.startswith("rsa"):
        assert identity.signing_key.key_size == int(key_type[3:])
    assert identity.aor == "sip:alice@example.test"
    assert identity.uris == ("sip:alice@example.test",)
    san = _ext(cert, x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "sip:alice@example.test"
    ]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert ku.value.key_agreement == (key_type == "p256")
    assert ku.value.key_encipherment == key_type.startswith("rsa")
    assert not ku.value.key_cert_sign
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    if with_ca:
        assert cert.issuer == ca.certificate.subject
        assert identity.chain == (ca.certificate,)
        ca_ski = _ext(ca.certificate, x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ca_ski.digest
        cert.verify_directly_issued_by(ca.certificate)
    else:
        assert cert.issuer == cert.subject
        assert identity.chain == ()
        assert aki.key_identifier == ski.digest
        cert.verify_directly_issued_by(cert)
    assert 0 < cert.serial_number < 2**159
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc == now + timedelta(days=365)
    pairs = identity.decryption_keys()
    assert len(pairs) == 1
    dec_key, dec_cert = pairs[0]
    if key_type == "ed25519":
        assert isinstance(dec_key, x25519.X25519PrivateKey)
        assert dec_cert != cert
    else:
        assert dec_key is identity.signing_key and dec_cert is cert


@pytest.mark.parametrize("with_ca", [False, True], ids=["self-signed", "ca-issued"])
def test_ed25519_identity_has_x25519_key_agreement_certificate(
    with_ca: bool, ca: Authority, now: datetime
) -> None:
    identity = create_identity(
        "sip:eve@example.test", key_type="ed25519", authority=ca if with_ca else None, now=now
    )
    enc = identity.encryption_certificate
    assert enc is not None and identity.has_separate_encryption_key
    assert isinstance(enc.public_key(), x25519.X25519PublicKey)
    ku = _ext(enc, x509.KeyUsage)
    assert ku.critical and ku.value.key_agreement and not ku.value.digital_signature
    assert enc.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == (
        identity.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    )
    if with_ca:
        enc.verify_directly_issued_by(ca.certificate)
    else:
        enc.verify_directly_issued_by(identity.certificate)
        assert enc.subject != enc.issuer  # not to be mistaken for a self-signed certificate


def test_create_identity_canonicalises_a_name_addr(now: datetime) -> None:
    identity = create_identity('"Bob" <sip:bob@EXAMPLE.Test>;tag=77', now=now)
    assert identity.aor == "sip:bob@example.test"


def test_create_identity_refuses_bad_input(now: datetime) -> None:
    with pytest.raises(IdentityError):
        create_identity("mailto:bob@example.test", now=now)
    with pytest.raises(IdentityError):
        create_identity("sip:bob@example.test", key_type="dsa1024", now=now)
    with pytest.raises(ValueError):
        create_identity("sip:bob@example.test", now=now.replace(tzinfo=None))


def test_identity_refuses_a_key_that_does_not_match(now: datetime) -> None:
    one = create_identity("sip:a@example.test", now=now)
    other = create_identity("sip:b@example.test", now=now)
    with pytest.raises(IdentityError, match="does not match"):
        Identity(one.signing_key, other.certificate)


@pytest.mark.parametrize("passphrase", [None, b"correct horse"], ids=["plain", "encrypted"])
@pytest.mark.parametrize("key_type", ["p256", "ed25519", "rsa2048"])
def test_save_and_load_identity_round_trip(
    key_type: str, passphrase: bytes | None, ca: Authority, now: datetime, tmp_path: Path
) -> None:
    identity = create_identity("sip:bob@example.test", key_type=key_type, authority=ca, now=now)
    folder = tmp_path / "bob"
    save_identity(identity, folder, passphrase)
    expected = {"cert.pem", "key.pem"}
    if key_type == "ed25519":
        expected |= {"enc-cert.pem", "enc-key.pem"}
    assert {p.name for p in folder.iterdir()} == expected
    key_text = (folder / "key.pem").read_bytes()
    marker = b"ENCRYPTED PRIVATE KEY" if passphrase else b"-----BEGIN PRIVATE KEY-----"
    assert marker in key_text
    loaded = load_identity(folder, passphrase)
    assert loaded.certificate == identity.certificate
    assert loaded.chain == (ca.certificate,)
    assert loaded.aor == identity.aor
    assert loaded.encryption_certificate == identity.encryption_certificate
    assert _files.public_key_der(loaded.signing_key.public_key()) == _files.public_key_der(
        identity.signing_key.public_key()
    )


def test_key_files_are_owner_only_from_creation(
    now: datetime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = create_identity("sip:eve@example.test", key_type="ed25519", now=now)
    opened: list[tuple[int, int]] = []
    real_open = os.open

    def spy_open(path: os.PathLike[str] | str, flags: int, mode: int = 0o777) -> int:
        opened.append((flags, mode))
        return real_open(path, flags, mode)

    def no_chmod(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("key permissions must be set at creation, not by chmod")

    monkeypatch.setattr(_files.os, "open", spy_open)
    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    save_identity(identity, tmp_path / "eve", b"pass")
    assert len(opened) == 2  # key.pem and enc-key.pem
    for flags, mode in opened:
        assert flags & os.O_CREAT and flags & os.O_EXCL
        assert mode == 0o600
    for name in ("key.pem", "enc-key.pem"):
        assert stat.S_IMODE((tmp_path / "eve" / name).stat().st_mode) == 0o600
    # saving again replaces the files and keeps them owner-only
    save_identity(identity, tmp_path / "eve", None)
    assert stat.S_IMODE((tmp_path / "eve" / "key.pem").stat().st_mode) == 0o600
    assert not [p for p in (tmp_path / "eve").iterdir() if p.name.endswith(".tmp")]


def test_load_identity_wrong_or_missing_passphrase(now: datetime, tmp_path: Path) -> None:
    save_identity(create_identity("sip:bob@example.test", now=now), tmp_path, b"right")
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        load_identity(tmp_path, b"wrong")
    with pytest.raises(WrongPassphraseError, match="passphrase is needed"):
        load_identity(tmp_path, None)
    assert load_identity(tmp_path, b"right").aor == "sip:bob@example.test"


def test_passphrase_for_an_unencrypted_key_is_ignored(now: datetime, tmp_path: Path) -> None:
    save_identity(create_identity("sip:bob@example.test", now=now), tmp_path, None)
    assert load_identity(tmp_path, b"anything").aor == "sip:bob@example.test"


def test_empty_passphrase_is_refused(now: datetime, tmp_path: Path) -> None:
    with pytest.raises(PkiError):
        save_identity(create_identity("sip:bob@example.test", now=now), tmp_path, b"")


def test_load_identity_missing_corrupt_or_mismatched_files(now: datetime, tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="missing"):
        load_identity(tmp_path / "nowhere", None)
    one = tmp_path / "one"
    two = tmp_path / "two"
    save_identity(create_identity("sip:a@example.test", now=now), one, None)
    save_identity(create_identity("sip:b@example.test", now=now), two, None)
    (one / "cert.pem").write_bytes((two / "cert.pem").read_bytes())
    with pytest.raises(IdentityError, match="does not match"):
        load_identity(one, None)
    (two / "key.pem").write_bytes(
        b"-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(IdentityError):
        load_identity(two, None)
    (two / "cert.pem").write_bytes(b"not a certificate")
    with pytest.raises(IdentityError):
        load_identity(two, None)


def test_damaged_encrypted_key_is_not_reported_as_a_wrong_passphrase(
    now: datetime, tmp_path: Path
) -> None:
    save_identity(create_identity("sip:bob@example.test", now=now), tmp_path, b"pw")
    (tmp_path / "key.pem").write_bytes(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    with pytest.raises(IdentityError, match="damaged"):
        load_identity(tmp_path, b"pw")


def test_ed25519_identity_without_encryption_files_is_an_error(
    now: datetime, tmp_path: Path
) -> None:
    save_identity(
        create_identity("sip:eve@example.test", key_type="ed25519", now=now), tmp_path, None
    )
    (tmp_path / "enc-key.pem").unlink()
    with pytest.raises(IdentityError, match=r"enc-key\.pem"):
        load_identity(tmp_path, None)


@pytest.mark.parametrize("key_type", ["p256", "rsa2048"])
def test_pkcs12_round_trip(key_type: str, ca: Authority, now: datetime) -> None:
    identity = create_identity("sip:bob@example.test", key_type=key_type, authority=ca, now=now)
    data = identity_to_pkcs12(identity, b"secret")
    loaded = identity_from_pkcs12(data, b"secret")
    assert loaded.certificate == identity.certificate
    assert loaded.chain == identity.chain
    assert loaded.aor == "sip:bob@example.test"
    with pytest.raises(WrongPassphraseError):
        identity_from_pkcs12(data, b"wrong")
    with pytest.raises(IdentityError):
        identity_from_pkcs12(b"not pkcs12 at all", b"secret")


def test_pkcs12_refuses_an_ed25519_identity_with_two_keys(now: datetime) -> None:
    identity = create_identity("sip:eve@example.test", key_type="ed25519", now=now)
    with pytest.raises(IdentityError, match="two private keys"):
        identity_to_pkcs12(identity, b"secret")


@pytest.mark.interop
def test_pkcs12_made_by_openssl_export_loads(
    openssl: str, ca: Authority, now: datetime, tmp_path: Path
) -> None:
    identity = create_identity("sip:bob@example.test", authority=ca, now=now)
    save_identity(identity, tmp_path, None)
    (tmp_path / "ca.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(
        identity.certificate.public_bytes(serialization.Encoding.PEM)
    )
    subprocess.run(
        [
            openssl,
            "pkcs12",
            "-export",
            "-inkey",
            "key.pem",
            "-in",
            "leaf.pem",
            "-certfile",
            "ca.pem",
            "-name",
            "bob",
            "-passout",
            "pass:s3cret",
            "-out",
            "bob.p12",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    loaded = identity_from_pkcs12((tmp_path / "bob.p12").read_bytes(), b"s3cret")
    assert loaded.certificate == identity.certificate
    assert loaded.chain == (ca.certificate,)
    with pytest.raises(WrongPassphraseError):
        identity_from_pkcs12((tmp_path / "bob.p12").read_bytes(), b"nope")


def test_load_certificates_accepts_pem_der_and_pkcs7(ca: Authority, now: datetime) -> None:
    identity = create_identity("sip:bob@example.test", authority=ca, now=now)
    leaf, root = identity.certificate, ca.certificate
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, root))
    assert load_certificates(pem) == [leaf, root]
    assert load_certificates(leaf.public_bytes(serialization.Encoding.DER)) == [leaf]
    bundle = pkcs7.serialize_certificates([leaf, root], serialization.Encoding.DER)
    assert set(load_certificates(bundle)) == {leaf, root}
    with pytest.raises(IdentityError):
        load_certificates(b"\x30\x03\x02\x01\x00")
    with pytest.raises(IdentityError):
        load_certificates(b"-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n")
