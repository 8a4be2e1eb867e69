"""The security report: the one immutable record of what protected a message.

The core builds it; the user agent adds what only it knows (the replay check, which CPIM
headers the signature covered) with `dataclasses.replace`; every face renders it. See
../shared/spec/trust-model.md for the words.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from messenger.pki.verdict import (
    Authenticity,
    CertificateSummary,
    Check,
    Outcome,
    Revocation,
)

__all__ = [
    "Algorithm",
    "Authenticity",
    "Check",
    "Confidentiality",
    "Outcome",
    "Replay",
    "Revocation",
    "SecurityReport",
]


class Confidentiality(StrEnum):
    """Was it encrypted for me (trust-model.md, first axis)."""

    ENCRYPTED = "encrypted"
    ENCRYPTED_LEGACY = "encrypted-legacy"
    PLAINTEXT = "plaintext"
    UNDECIPHERABLE = "undecipherable"
    TAMPERED = "tampered"


class Replay(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Algorithm:
    """One algorithm found in a message: `role` is digest, signature, content-encryption,
    key-agreement, kdf, key-wrap or key-transport; `name` is for people; `oid` for interop."""

    role: str
    name: str
    oid: str

    def to_json(self) -> dict[str, str]:
        return {"role": self.role, "name": self.name, "oid": self.oid}


@dataclass(frozen=True)
class SecurityReport:
    confidentiality: Confidentiality
    authenticity: Authenticity
    #: Protection layers, outermost first: authEnveloped-data, enveloped-data,
    #: signed-data, multipart/signed, certs-only.
    layers: tuple[str, ...] = ()
    algorithms: tuple[Algorithm, ...] = ()
    signer: CertificateSummary | None = None
    chain: tuple[CertificateSummary, ...] = ()
    sender: str | None = None
    sender_match: bool | None = None
    signing_time: datetime | None = None
    signature_inside_encryption: bool | None = None
    content_type: str | None = None
    revocation: Revocation = Revocation.NOT_CHECKED
    checks: tuple[Check, ...] = ()
    #: One sentence for a person: what the states mean for this message.
    reason: str = ""
    #: Who the message was encrypted to (descriptions of the recipient infos).
    recipients: tuple[str, ...] = ()
    #: DER certificates the message carried (signer chain, certs-only bodies).
    certificates: tuple[bytes, ...] = field(default=(), repr=False)
    #: Set by the user agent: which CPIM headers the signature covered, and the replay check.
    cpim_covered: tuple[str, ...] | None = None
    replay: Replay | None = None

    @property
    def signature_valid(self) -> bool:
        return self.authenticity.signature_valid

    @property
    def is_green(self) -> bool:
        """Green needs a valid signature, a sender match and a trusted key; never
        encryption alone (anyone can encrypt to you)."""
        return self.authenticity.is_green and self.sender_match is True

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def with_check(self, check: Check) -> SecurityReport:
        """A copy with `check` added, replacing any earlier check of the same name."""
        checks = (*(c for c in self.checks if c.name != check.name), check)
        return replace(self, checks=checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "confidentiality": str(self.confidentiality),
            "authenticity": str(self.authenticity),
            "layers": list(self.layers),
            "algorithms": [a.to_json() for a in self.algorithms],
            "signer": self.signer.to_json() if self.signer else None,
            "chain": [c.to_json() for c in self.chain],
            "sender": self.sender,
            "sender_match": self.sender_match,
            "signing_time": self.signing_time.isoformat() if self.signing_time else None,
            "signature_inside_encryption": self.signature_inside_encryption,
            "content_type": self.content_type,
            "revocation": str(self.revocation),
            "checks": [c.to_json() for c in self.checks],
            "reason": self.reason,
            "recipients": list(self.recipients),
            "cpim_covered": list(self.cpim_covered) if self.cpim_covered is not None else None,
            "replay": str(self.replay) if self.replay else None,
            "green": self.is_green,
        }
