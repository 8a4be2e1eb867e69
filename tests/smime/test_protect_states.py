"""unprotect() end to end for every authenticity state the trust store decides (one message,
one state each), and the receive shapes RFC 8591 allows: nested MIME trees, a bare CMS
layer inside another, multipart/signed inside encryption."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from messenger.pki.authority import create_authority
from messenger.pki.identity import create_identity
from messenger.pki.trust import TrustStore
from messenger.pki.verdict import Authenticity, Revocation
from messenger.smime import cms
from messenger.smime.mime import MimeEntity, build_multipart
from messenger.smime.protect import protect, unprotect
from messenger.smime.report import Confidentiality

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"


@pytest.fixture(scope="module")
def world():
    ca = create_authority("States CA", now=NOW - timedelta(days=10))
    alice = create_identity(ALICE, authority=ca, now=NOW - timedelta(days=1), days=30)
    alice_again = create_identity(ALICE, authority=ca, now=NOW - timedelta(days=1), days=30)
    bob = create_identity(BOB, authority=ca, now=NOW - timedelta(days=1), days=30)
    stranger = create_identity(ALICE, now=NOW - timedelta(days=1))  # self-signed
    revoked = create_identity(ALICE, authority=ca, now=NOW - timedelta(days=1), days=30)
    ca.revoke(revoked.certificate, now=NOW - timedelta(hours=2))
    crl = ca.crl(now=NOW - timedelta(hours=1))
    return {
        "ca": ca,
        "alice": alice,
        "alice_again": alice_again,
        "bob": bob,
        "stranger": stranger,
        "revoked": revoked,
        "crl": crl,
    }


def _store(world, *, crl: bool = True, anchor: bool = True, pin=None) -> TrustStore:
    store = TrustStore()
    if anchor:
        store.add_anchor(world["ca"].certificate)
    if crl:
        store.add_crl(world["crl"])
    if pin is not None:
        store.pin(ALICE, pin.certificate, now=NOW - timedelta(days=1))
    return store


# state -> (signer, trust store arguments, time of receipt)
CASES = {
    "verified": ("alice", {}, NOW),
    "verified-pinned": ("stranger", {"anchor": False, "pin": "stranger"}, NOW),
    "unverified-new": ("stranger", {"anchor": False}, NOW),
    "key-changed": ("alice_again", {"pin": "alice"}, NOW),
    "expired": ("alice", {}, NOW + timedelta(days=60)),
    "not-yet-valid": ("alice", {}, NOW - timedelta(days=5)),
    "revoked": ("revoked", {}, NOW),
    "revocation-unknown": ("alice", {"crl": False}, NOW),
}


@pytest.mark.parametrize("state", sorted(CASES))
def test_every_trust_state_through_unprotect(world, state: str) -> None:
    signer_name, store_args, at = CASES[state]
    if "pin" in store_args:
        store_args = {**store_args, "pin": world[store_args["pin"]]}
    bob = world["bob"]
    signing_time = min(at, NOW)
    entity = protect(
        b"state " + state.encode(),
        signer=world[signer_name],
        recipients=[bob.encryption_certificate],
        signing_time=signing_time,
    )
    result = unprotect(
        MimeEntity.parse(entity.to_bytes()),
        identity=bob,
        trust=_store(world, **store_args),
        sender=ALICE,
        at=at,
    )
    report = result.report
    assert report.authenticity == Authenticity(state), report.reason
    assert report.confidentiality is Confidentiality.ENCRYPTED
    assert result.content == b"state " + state.encode()  # the content is shown in every state
    assert report.signature_valid
    assert report.is_green == (state in ("verified", "verified-pinned", "revocation-unknown"))
    if state == "revoked":
        assert report.revocation is Revocation.REVOKED
    doc = report.to_json()
    assert doc["authenticity"] == state and doc["signer"]["uris"] == [ALICE]


def test_nested_multipart_tree_finds_the_protected_part(world) -> None:
    signed = protect(b"deep inside", signer=world["alice"], signing_time=NOW)
    inner = build_multipart(
        "alternative",
        [b"Content-Type: text/html\r\n\r\n<p>sibling</p>", signed.to_bytes()],
    )
    outer = build_multipart(
        "mixed", [b"Content-Type: text/plain\r\n\r\nfirst sibling", inner.to_bytes()]
    )
    result = unprotect(
        MimeEntity.parse(outer.to_bytes()), trust=_store(world), sender=ALICE, at=NOW
    )
    assert result.content == b"deep inside"
    assert result.report.authenticity is Authenticity.VERIFIED
    assert sorted(p.body for p in result.outside) == [b"<p>sibling</p>", b"first sibling"]


def test_multipart_signed_inside_encryption(world) -> None:
    bob = world["bob"]
    entity = protect(
        b"detached, then sealed",
        signer=world["alice"],
        recipients=[bob.encryption_certificate],
        multipart_signed=True,
        signing_time=NOW,
    )
    result = unprotect(entity, identity=bob, trust=_store(world), sender=ALICE, at=NOW)
    assert result.report.layers == ("authEnveloped-data", "multipart/signed")
    assert result.report.signature_inside_encryption is True
    assert result.report.authenticity is Authenticity.VERIFIED
    assert result.content == b"detached, then sealed"


def test_bare_signed_data_inside_enveloped_data(world) -> None:
    """Some senders put the SignedData straight into the envelope (eContentType
    id-signedData, no MIME wrapper between the layers)."""
    alice, bob = world["alice"], world["bob"]
    inner = b"Content-Type: text/plain\r\n\r\nno wrapper"
    signed = cms.sign(inner, key=alice.signing_key, certificate=alice.certificate, signing_time=NOW)
    der = cms.encrypt(signed, [bob.encryption_certificate], content_type="signed_data")
    entity = MimeEntity.build("application/pkcs7-mime; smime-type=authEnveloped-data", der)
    result = unprotect(entity, identity=bob, trust=_store(world), sender=ALICE, at=NOW)
    assert result.report.layers == ("authEnveloped-data", "signed-data")
    assert result.report.authenticity is Authenticity.VERIFIED
    assert result.content == b"no wrapper"
