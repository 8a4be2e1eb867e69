"""Finding the certificate object behind a fingerprint the report names."""

from __future__ import annotations

from typing import Any

from cryptography import x509

from messenger.pki.verdict import certificate_sha256

__all__ = ["find_certificate"]


def find_certificate(agent: Any, peer: str | None, sha256: str) -> x509.Certificate | None:
    """The certificate with this SHA-256 among those the agent knows for `peer`
    (learned history, current, pinned) and its trust anchors; None when none matches."""
    sha256 = sha256.replace(":", "").lower()
    candidates: list[x509.Certificate] = []
    if peer:
        for _at, der in agent.store.certificate_history(peer):
            try:
                candidates.append(x509.load_der_x509_certificate(der))
            except ValueError:
                continue
        for cert in (agent.peer_certificate(peer), agent.trust.pinned(peer)):
            if cert is not None:
                candidates.append(cert)
    candidates.extend(agent.trust.anchors)
    candidates.extend(getattr(agent.config, "trust_anchors", []) or [])
    identity = getattr(agent.config, "identity", None)
    if identity is not None:
        candidates.extend((identity.certificate, *identity.chain))
    for cert in candidates:
        if certificate_sha256(cert) == sha256:
            return cert
    return None
