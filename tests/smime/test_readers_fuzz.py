"""Property tests over the readers behind `messenger smime open` and `inspect`: arbitrary
bytes and mutated real messages only ever raise the package's own error types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.pki.authority import create_authority
from messenger.pki.identity import create_identity
from messenger.pki.trust import TrustStore
from messenger.smime import cms
from messenger.smime.errors import SmimeError
from messenger.smime.inspect import describe, load_any
from messenger.smime.mime import MimeEntity
from messenger.smime.protect import protect, unprotect

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def samples():
    ca = create_authority("Fuzz CA", now=NOW - timedelta(days=1))
    alice = create_identity("sip:alice@example.test", authority=ca, now=NOW - timedelta(days=1))
    bob = create_identity("sip:bob@example.test", authority=ca, now=NOW - timedelta(days=1))
    trust = TrustStore()
    trust.add_anchor(ca.certificate)
    wires = [
        protect(b"hi", signer=alice, recipients=[bob.encryption_certificate], signing_time=NOW),
        protect(b"hi", signer=alice, multipart_signed=True, signing_time=NOW),
        protect(
            b"hi", recipients=[bob.encryption_certificate], cipher="aes128-cbc", signing_time=NOW
        ),
    ]
    return bob, trust, [w.to_bytes() for w in wires]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_load_any_and_describe_raise_only_smime_errors(data: bytes) -> None:
    for blob in (data, b"\x30" + data, b"-----BEGIN CMS-----\n" + data):
        try:
            describe(load_any(blob))
        except SmimeError:
            pass


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.integers(0, 2),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_mutated_messages_open_or_raise_smime_errors(samples, which, edits, cut) -> None:
    bob, trust, wires = samples
    wire = bytearray(wires[which])
    for pos, value in edits:
        wire[pos % len(wire)] = value
    data = bytes(wire[: cut % len(wire)] if cut is not None else wire)
    try:
        entity = load_any(data)
        describe(entity)
    except SmimeError:
        pass
    try:
        result = unprotect(
            MimeEntity.parse(data),
            identity=bob,
            trust=trust,
            sender="sip:alice@example.test",
            at=NOW,
        )
    except SmimeError:
        return
    assert result.report.to_json()["authenticity"]


def test_signer_certificate_with_a_malformed_extension_is_judged_not_crashed(samples) -> None:
    """A certificate whose extensions do not parse (found by the property test above)."""
    _, trust, _ = samples
    alice = create_identity("sip:alice@example.test", now=NOW - timedelta(days=1))
    der = alice.certificate.public_bytes(Encoding.DER)
    at = der.index(b"\x86\x16sip:alice@example.test")  # the SAN uniformResourceIdentifier
    broken = x509.load_der_x509_certificate(der[:at] + b"\x00" + der[at + 1 :])
    with pytest.raises(ValueError):
        _ = broken.extensions
    signed = cms.sign(
        b"Content-Type: text/plain\r\n\r\nhi",
        key=alice.signing_key,
        certificate=broken,
        signing_time=NOW,
    )
    entity = MimeEntity.build("application/pkcs7-mime; smime-type=signed-data", signed)
    result = unprotect(entity, trust=trust, sender="sip:alice@example.test", at=NOW)
    report = result.report
    assert result.content == b"hi"
    assert not report.is_green
    assert report.authenticity.signature_valid  # the signature holds; the certificate does not
    assert report.to_json()["signer"]["uris"] == []
