"""The user's own identity as the faces set it up (messenger/ua/identities.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from messenger.pki.authority import create_authority, save_authority
from messenger.pki.identity import identity_to_pkcs12
from messenger.ua import identities as ids

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ALICE = "sip:alice@example.test"


def test_a_new_identity_is_saved_encrypted_and_opens_with_its_passphrase(tmp_path):
    secret = ids.check_new_passphrase("correct horse", "correct horse")
    identity = ids.create_identity(f"  {ALICE} ", now=NOW)
    assert identity.uris == (ALICE,)
    ids.save_identity(identity, tmp_path / "identity", secret)
    assert (tmp_path / "identity" / "key.pem").stat().st_mode & 0o077 == 0
    with pytest.raises(ids.WrongPassphrase, match="does not open your key"):
        ids.load_identity(tmp_path / "identity", b"wrong")
    with pytest.raises(ids.WrongPassphrase):
        ids.load_identity(tmp_path / "identity", None)
    assert ids.load_identity(tmp_path / "identity", secret).certificate == identity.certificate


def test_problems_are_typed_and_said_in_words(tmp_path):
    with pytest.raises(ids.InvalidAddress, match="write it as sip:name@domain"):
        ids.create_identity("alice", now=NOW)
    with pytest.raises(ids.PassphraseProblem, match="differ"):
        ids.check_new_passphrase("correct horse", "correct hose")
    with pytest.raises(ids.PassphraseProblem, match="at least 8 characters"):
        ids.check_new_passphrase("short", "short")
    with pytest.raises(ids.IdentityError, match="cannot be read") as missing:
        ids.load_identity(tmp_path / "nothing", b"x")
    assert not isinstance(missing.value, ids.WrongPassphrase)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ids.IdentityError, match="could not be written"):
        ids.save_identity(ids.create_identity(ALICE, now=NOW), blocker / "identity", b"12345678")
    with pytest.raises(ids.IdentityError, match="choose the CA folder"):
        ids.issue_from_ca(ALICE, "  ", None, now=NOW)


def test_issue_from_a_ca_folder(tmp_path):
    ca = create_authority("Identities Test CA", now=NOW)
    save_authority(ca, tmp_path / "ca", b"ca secret", now=NOW)
    with pytest.raises(ids.WrongPassphrase, match="type the CA's passphrase again"):
        ids.issue_from_ca(ALICE, tmp_path / "ca", b"nope", now=NOW)
    (tmp_path / "broken").mkdir()
    with pytest.raises(ids.IdentityError, match="cannot be used"):
        ids.issue_from_ca(ALICE, tmp_path / "broken", None, now=NOW)
    identity = ids.issue_from_ca(ALICE, str(tmp_path / "ca"), b"ca secret", now=NOW)
    assert identity.certificate.issuer == ca.certificate.subject
    assert identity.chain[0] == ca.certificate


def test_import_pkcs12(tmp_path):
    alice = ids.create_identity(ALICE, now=NOW)
    path = tmp_path / "alice.p12"
    path.write_bytes(identity_to_pkcs12(alice, b"p12 secret"))
    with pytest.raises(ids.WrongPassphrase, match=r"alice\.p12 did not open"):
        ids.import_pkcs12(path, b"wrong", aor=ALICE)
    with pytest.raises(ids.AddressMismatch, match=r"is for sip:alice@example\.test, not sip:b"):
        ids.import_pkcs12(path, b"p12 secret", aor="sip:bob@example.test")
    (tmp_path / "junk.p12").write_bytes(b"not pkcs12 at all")
    with pytest.raises(ids.IdentityError, match="cannot be imported"):
        ids.import_pkcs12(tmp_path / "junk.p12", b"x", aor=ALICE)
    with pytest.raises(ids.IdentityError, match="choose the PKCS#12 file"):
        ids.import_pkcs12("", b"x", aor=ALICE)
    imported = ids.import_pkcs12(path, b"p12 secret", aor=ALICE)
    assert imported.certificate == alice.certificate


def test_fingerprints_for_the_window():
    alice = ids.create_identity(ALICE, now=NOW)
    sha = ids.certificate_sha256(alice.certificate)
    assert len(sha) == 64 and sha == sha.lower()
    shown = ids.format_fingerprint(sha)
    assert len(shown.split(":")) == 32 and shown == shown.upper()
