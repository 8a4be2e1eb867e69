"""The trust verdict: authenticity states, checks, and certificate summaries.

These are the words of ../shared/spec/trust-model.md. The trust store produces a
`TrustVerdict`; the S/MIME core folds it into a `SecurityReport`; every face renders it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519


class Authenticity(StrEnum):
    """Who wrote it, and do I believe them (trust-model.md, second axis)."""

    VERIFIED = "verified"
    VERIFIED_PINNED = "verified-pinned"
    UNVERIFIED_NEW = "unverified-new"
    KEY_CHANGED = "key-changed"
    SENDER_MISMATCH = "sender-mismatch"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    REVOKED = "revoked"
    REVOCATION_UNKNOWN = "revocation-unknown"
    BAD_SIGNATURE = "bad-signature"
    WEAK_ALGORITHM = "weak-algorithm"
    UNSIGNED = "unsigned"

    @property
    def is_green(self) -> bool:
        """A green state: valid signature, sender match, and a trusted key."""
        return self in _GREEN

    @property
    def signature_valid(self) -> bool:
        """True when the signature itself held (whatever the trust in the signer)."""
        return self not in (
            Authenticity.BAD_SIGNATURE,
            Authenticity.WEAK_ALGORITHM,
            Authenticity.UNSIGNED,
        )


_GREEN = frozenset(
    {Authenticity.VERIFIED, Authenticity.VERIFIED_PINNED, Authenticity.REVOCATION_UNKNOWN}
)


class Outcome(StrEnum):
    """The result of one check in the security checklist."""

    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


class Revocation(StrEnum):
    """What the revocation check found."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    NOT_CHECKED = "not-checked"


@dataclass(frozen=True)
class Check:
    """One line of the checklist: `name` is one of signature, sender, chain, validity,
    key-usage, algorithm, revocation, replay, pin; `reason` is words for a person."""

    name: str
    outcome: Outcome
    reason: str

    def __hash__(self) -> int:
        # Checks key the trust store's assembled verdicts; equal checks have equal names
        # and reasons, and leaving the enum out keeps its Python-level hash out of it.
        return hash((self.name, self.reason))

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "outcome": str(self.outcome), "reason": self.reason}


def _key_type(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "EC P-256", "secp384r1": "EC P-384", "secp521r1": "EC P-521"}.get(
            key.curve.name, f"EC {key.curve.name}"
        )
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, x25519.X25519PublicKey):
        return "X25519"
    if isinstance(key, x448.X448PublicKey):
        return "X448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


#: Certificates are immutable, so the facts derived from one are computed once per
#: certificate object (a busy conversation sees the same few, parsed once).
_FACTS_CACHE = 1024

_T = TypeVar("_T")


def per_object(fn: Callable[..., _T]) -> Callable[..., _T]:
    """Remember `fn(obj, *args)` per object and arguments, for immutable objects that
    recur message after message (certificates, keys, their parsed facts).

    The object is keyed by its identity, not its hash (hashing a certificate hashes its
    whole DER encoding; a key has no useful hash); the other arguments by value. Each
    entry holds the object, so an id cannot be reused while its entry lives. Bounded: the
    oldest entries go first.
    """
    cache: dict[tuple[Any, ...], tuple[Any, _T]] = {}

    @functools.wraps(fn)
    def wrapper(obj: Any, *args: Any) -> _T:
        key = (id(obj), *args)
        hit = cache.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = fn(obj, *args)
        if len(cache) >= _FACTS_CACHE:
            try:
                del cache[next(iter(cache))]
            except (KeyError, RuntimeError, StopIteration):  # a concurrent caller won
                pass
        cache[key] = (obj, value)
        return value

    wrapper.cache_clear = cache.clear  # type: ignore[attr-defined]
    return wrapper


def _certificate_key_type(certificate: x509.Certificate) -> str:
    try:
        return _key_type(certificate.public_key())
    except (UnsupportedAlgorithm, ValueError) as exc:
        return f"unsupported key ({exc})"


@per_object
def certificate_sha256(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint of the DER certificate, lowercase hex without separators."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


@per_object
def certificate_uris(certificate: x509.Certificate) -> tuple[str, ...]:
    """The uniformResourceIdentifier SubjectAltNames (the SIP identities, RFC 8591 4.4)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (x509.ExtensionNotFound, ValueError):  # absent, or extensions that do not parse
        return ()
    return tuple(san.value.get_values_for_type(x509.UniformResourceIdentifier))


@dataclass(frozen=True)
class CertificateSummary:
    """What a person (and a JSON reader) needs to know about one certificate."""

    subject: str
    issuer: str
    uris: tuple[str, ...]
    serial: str
    not_before: datetime
    not_after: datetime
    sha256: str
    key_type: str
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    self_signed: bool

    @classmethod
    def of(cls, certificate: x509.Certificate) -> CertificateSummary:
        if cls is CertificateSummary:
            return _summary(certificate)
        return cls._build(certificate)

    @classmethod
    def _build(cls, certificate: x509.Certificate) -> CertificateSummary:
        usages: list[str] = []
        try:
            extensions = certificate.extensions
        except ValueError:  # extensions that do not parse: nothing to list
            extensions = x509.Extensions([])
        try:
            ku = extensions.get_extension_for_class(x509.KeyUsage).value
            for name in (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
            ):
                if getattr(ku, name):
                    usages.append(name)
        except x509.ExtensionNotFound:
            pass
        ekus: list[str] = []
        try:
            eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            ekus = [oid._name if oid._name != "Unknown OID" else oid.dotted_string for oid in eku]
        except x509.ExtensionNotFound:
            pass
        return cls(
            subject=certificate.subject.rfc4514_string(),
            issuer=certificate.issuer.rfc4514_string(),
            uris=certificate_uris(certificate),
            serial=format(certificate.serial_number, "x"),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            sha256=certificate_sha256(certificate),
            key_type=_certificate_key_type(certificate),
            key_usage=tuple(usages),
            extended_key_usage=tuple(ekus),
            self_signed=certificate.subject == certificate.issuer,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "uris": list(self.uris),
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
            "key_type": self.key_type,
            "key_usage": list(self.key_usage),
            "extended_key_usage": list(self.extended_key_usage),
            "self_signed": self.self_signed,
        }


@per_object
def _summary(certificate: x509.Certificate) -> CertificateSummary:
    return CertificateSummary._build(certificate)


@dataclass(frozen=True)
class TrustVerdict:
    """What the trust store concluded about a certificate that made a valid signature.

    `authenticity` is never BAD_SIGNATURE or UNSIGNED here: those are the S/MIME core's.
    `reason` is one sentence for a person; `checks` is the checklist behind it.
    """

    authenticity: Authenticity
    sender_match: bool | None
    chain: tuple[CertificateSummary, ...]
    revocation: Revocation
    checks: tuple[Check, ...]
    reason: str
