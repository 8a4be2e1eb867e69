"""Fixtures of the PKI tests: a pinned clock, a demo CA, identities, a trust store, and a
helper that re-signs a certificate with a weak hash (cryptography refuses to make one)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from messenger.pki.authority import Authority, create_authority
from messenger.pki.identity import Identity, create_identity
from messenger.pki.trust import TrustStore

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def now() -> datetime:
    """The pinned wall clock of every PKI test."""
    return NOW


@pytest.fixture
def ca(now: datetime) -> Authority:
    return create_authority("Demo CA", now=now)


@pytest.fixture
def bob(ca: Authority, now: datetime) -> Identity:
    return create_identity("sip:bob@example.test", authority=ca, now=now)


@pytest.fixture
def store(ca: Authority) -> TrustStore:
    """A trust store whose only anchor is the demo CA (no CRL yet)."""
    trust = TrustStore()
    trust.add_anchor(ca.certificate)
    return trust


@pytest.fixture
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl is not installed")
    return path


def _resign(
    certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, weak: str
) -> x509.Certificate:
    parsed = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    tbs = parsed["tbs_certificate"]
    digest = {"sha1": hashes.SHA1(), "md5": hashes.MD5()}[weak]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = f"{weak}_ecdsa"
        tbs["signature"] = asn1_x509.SignedDigestAlgorithm({"algorithm": algorithm})
        signature = key.sign(tbs.dump(force=True), ec.ECDSA(digest))
    else:
        algorithm = f"{weak}_rsa"
        tbs["signature"] = asn1_x509.SignedDigestAlgorithm({"algorithm": algorithm})
        signature = key.sign(tbs.dump(force=True), padding.PKCS1v15(), digest)
    rebuilt = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": {"algorithm": algorithm},
            "signature_value": signature,
        }
    )
    return x509.load_der_x509_certificate(rebuilt.dump(force=True))


@pytest.fixture
def resign_weak() -> Callable[..., x509.Certificate]:
    """``resign_weak(cert, issuer_key, "sha1"|"md5")``: the same certificate, signed again by
    `issuer_key` with a weak hash (built with asn1crypto)."""
    return _resign
