"""The trust store and trust evaluation: anchors, per-AoR pins, user decisions, learned
certificates, CRLs, and `TrustStore.evaluate`, which turns a signer's certificate into a
`TrustVerdict` (../shared/spec/trust-model.md).

Path validation is cryptography's `x509.verification` (client verifier, with extension
policies that accept EKU emailProtection, no EKU, and a leaf whose only SubjectAltName is a
``sip:`` URI); nothing here builds paths by hand. Revocation is checked against CRLs held by
the store. SIP URIs are compared only with `messenger.sip.uri.uri_equal`.

`evaluate` precedence, worst first (each rule also yields a `Check`; every check is always
computed, so the checklist is complete whatever the state):

1. ``weak-algorithm``   SHA-1/MD5 certificate signature, RSA below `min_rsa_bits`, EC below
                        256 bits, DSA (leaf, and every certificate of a validated chain)
2. ``sender-mismatch``  a sender was given and no SAN URI of the certificate equals it
3. ``expired`` / ``not-yet-valid``  `at` (or `signing_time`) outside the leaf's validity
4. ``revoked``          a current, correctly signed CRL lists a certificate of the chain
5. ``key-changed``      a certificate is pinned for the AoR and this one differs (even if it
                        chains to an anchor)
6. ``unverified-new``   keyUsage/EKU forbid the operation (FAIL key-usage check), or the user
                        distrusted this certificate for this AoR (FAIL pin check)
7. ``verified-pinned``  the pinned certificate itself (for ``usage="encryption"`` also a
                        certificate directly signed by the pinned one: the X25519 certificate
                        of a self-signed Ed25519 identity)
8. ``verified`` / ``revocation-unknown``  chains to an anchor; every CRL found and clear /
                        some issuer's CRL missing or out of date
9. ``unverified-new``   otherwise: unknown issuer, self-signed and not pinned

Without a sender the pins of the certificate's own SIP URIs are consulted, the sender check
is UNKNOWN ("no sender to compare") and `sender_match` is None; the state is then about the
certificate alone, and the caller must not treat it as a sender match.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ..sip.uri import SipUriError, parse_aor, uri_equal
from ._files import require_utc
from .errors import TrustStoreError
from .verdict import (
    Authenticity,
    CertificateSummary,
    Check,
    Outcome,
    Revocation,
    TrustVerdict,
    certificate_sha256,
    certificate_uris,
    per_object,
)

__all__ = [
    "ACTIONS",
    "USAGES",
    "VERDICT_REUSE",
    "CachingTrustStore",
    "Decision",
    "LearnedCertificate",
    "Pin",
    "TrustStore",
    "format_fingerprint",
]

USAGES = ("signing", "encryption")
#: Actions the store itself records; `TrustStore.record_decision` accepts any other word too.
ACTIONS = ("pin", "unpin", "distrust", "trust")
_STATE_ACTIONS = frozenset({"pin", "unpin", "distrust"})

_JSON_VERSION = 1


#: Size of the bounded caches of facts derived from immutable values (fingerprint text,
#: names, canonical AoRs, CRL signature checks): each is computed once, not per message.
_FACTS_CACHE = 1024


@functools.lru_cache(maxsize=_FACTS_CACHE)
def format_fingerprint(sha256_hex: str) -> str:
    """A SHA-256 fingerprint as people compare it: ``AB:CD:...`` (32 upper-case pairs)."""
    text = sha256_hex.upper()
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _canonical_aor(aor: str) -> str:
    try:
        return parse_aor(aor)
    except SipUriError as exc:
        raise TrustStoreError(f"{aor!r} is not a SIP or SIPS address: {exc}") from exc


def _sha256_of(certificate_or_sha256: x509.Certificate | str) -> str:
    if isinstance(certificate_or_sha256, x509.Certificate):
        return certificate_sha256(certificate_or_sha256)
    text = certificate_or_sha256.replace(":", "").lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise TrustStoreError(f"{certificate_or_sha256!r} is not a SHA-256 fingerprint")
    return text


# -- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """A decision the user made about a certificate for an AoR, with its timestamp.

    `action` is ``pin``, ``unpin``, ``distrust``, ``trust`` or another word the caller
    chose (`TrustStore.record_decision`); `sha256` is the certificate's fingerprint.
    """

    aor: str
    sha256: str
    action: str
    at: datetime
    note: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "aor": self.aor,
            "sha256": self.sha256,
            "action": self.action,
            "at": self.at.isoformat(),
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        try:
            return cls(
                aor=str(data["aor"]),
                sha256=str(data["sha256"]),
                action=str(data["action"]),
                at=require_utc(datetime.fromisoformat(data["at"]), "at"),
                note=str(data.get("note", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TrustStoreError(f"unreadable decision {data!r}: {exc}") from exc


@dataclass(frozen=True)
class Pin:
    """The certificate the user pinned for an AoR, and when."""

    aor: str
    certificate: x509.Certificate
    at: datetime
    note: str = ""

    @property
    def sha256(self) -> str:
        return certificate_sha256(self.certificate)


@dataclass(frozen=True)
class LearnedCertificate:
    """A certificate seen from an AoR (not pinned): what the user agent encrypts to."""

    aor: str
    certificate: x509.Certificate
    at: datetime


# -- path validation policy ----------------------------------------------------------------


def _eku_allows_email(_policy: Any, _certificate: x509.Certificate, eku: Any) -> None:
    """Extension policy callback: an EKU, when present, must allow S/MIME."""
    if eku is None:
        return
    if (
        ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
        or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
    ):
        return
    raise ValueError("extendedKeyUsage allows neither emailProtection nor anyExtendedKeyUsage")


@functools.cache
def _extension_policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """(CA policy, end-entity policy): the web PKI defaults, with an EKU allowing S/MIME."""
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku_allows_email
    )
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku_allows_email
    )
    return ca_policy, ee_policy


def _anchored_builder(anchors: Sequence[x509.Certificate]) -> PolicyBuilder:
    """The verifier policy for `anchors` (store and extension policies, not the time).
    Builders are immutable: each message derives its own verifier with its own time."""
    ca_policy, ee_policy = _extension_policies()
    return (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
    )


# -- certificate facts ---------------------------------------------------------------------

_WEAK_SIGNATURE_OIDS = {
    SignatureAlgorithmOID.RSA_WITH_MD5.dotted_string: "MD5",
    SignatureAlgorithmOID.RSA_WITH_SHA1.dotted_string: "SHA-1",
    "1.3.14.3.2.29": "SHA-1",  # sha1WithRSASignature (OIW)
    SignatureAlgorithmOID.ECDSA_WITH_SHA1.dotted_string: "SHA-1",
    SignatureAlgorithmOID.DSA_WITH_SHA1.dotted_string: "SHA-1",
    "1.2.840.113549.1.1.2": "MD2",
    "1.2.840.113549.1.1.3": "MD4",
}
_WEAK_HASH_NAMES = {"sha1": "SHA-1", "md5": "MD5", "md4": "MD4", "md2": "MD2"}


@functools.lru_cache(maxsize=_FACTS_CACHE)
def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


@per_object
def _subject_cn(certificate: x509.Certificate) -> str:
    return _common_name(certificate.subject)


@per_object
def _issuer_cn(certificate: x509.Certificate) -> str:
    return _common_name(certificate.issuer)


@per_object
def _weak_signature(certificate: x509.Certificate) -> str | None:
    oid = certificate.signature_algorithm_oid.dotted_string
    if oid in _WEAK_SIGNATURE_OIDS:
        return f"a {_WEAK_SIGNATURE_OIDS[oid]} signature"
    try:
        algorithm = certificate.signature_hash_algorithm
    except Exception:
        return f"an unsupported signature algorithm ({oid})"
    if algorithm is not None and algorithm.name in _WEAK_HASH_NAMES:
        return f"a {_WEAK_HASH_NAMES[algorithm.name]} signature"
    return None


@per_object
def _weak_key(certificate: x509.Certificate, min_rsa_bits: int) -> str | None:
    try:
        key = certificate.public_key()
    except Exception:
        return "a public key of an unsupported type"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < min_rsa_bits:
        return f"an RSA key of {key.key_size} bits (at least {min_rsa_bits} required)"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 256:
        return f"an EC key of {key.curve.key_size} bits"
    if isinstance(key, dsa.DSAPublicKey):
        return "a DSA key"
    return None


@per_object
def _algorithm_words(certificate: x509.Certificate) -> str:
    name = certificate.signature_algorithm_oid._name
    try:
        key = CertificateSummary.of(certificate).key_type
    except Exception:  # pragma: no cover - key types the summary cannot name
        key = "unknown key"
    return f"{name} signature, {key} key"


@per_object
def _usage_problem(certificate: x509.Certificate, usage: str) -> str | None:
    """Why the certificate's key, keyUsage or EKU forbid `usage`, or None when allowed."""
    try:
        key = certificate.public_key()
    except Exception:
        return "its public key type is not supported"
    if usage == "signing" and isinstance(key, x25519.X25519PublicKey | x448.X448PublicKey):
        return "its key can only agree keys, not sign"
    if usage == "encryption" and isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "its key can only sign, not encrypt"
    try:
        ku = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    except Exception as exc:
        return f"its keyUsage cannot be read ({exc})"
    if ku is not None:
        if usage == "signing" and not ku.digital_signature:
            return "its keyUsage lacks digitalSignature"
        if usage == "encryption" and not (ku.key_agreement or ku.key_encipherment):
            return "its keyUsage lacks keyAgreement and keyEncipherment"
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    except Exception as exc:
        return f"its extendedKeyUsage cannot be read ({exc})"
    if eku is not None and not (
        ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
        or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
    ):
        return "its extendedKeyUsage allows neither emailProtection nor anyExtendedKeyUsage"
    return None


#: `uri_equal` (pure, on strings) remembered for the few addresses a store compares often.
_same_uri = functools.lru_cache(maxsize=4096)(uri_equal)


class _CrlKey:
    """A CRL as a cache key (CRL objects are not hashable): equal when the DER is."""

    __slots__ = ("crl", "digest")

    def __init__(self, crl: x509.CertificateRevocationList) -> None:
        self.crl = crl
        self.digest = crl.fingerprint(hashes.SHA256())

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CrlKey) and other.digest == self.digest


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    if crl.issuer != issuer.subject:
        return False
    return _crl_signature_holds(_CrlKey(crl), issuer)


@functools.lru_cache(maxsize=_FACTS_CACHE)
def _crl_signature_holds(key: _CrlKey, issuer: x509.Certificate) -> bool:
    crl = key.crl
    if crl.issuer != issuer.subject:
        return False
    try:
        ku = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.crl_sign:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except Exception:
        return False


def _no_crl_link(certificate: x509.Certificate, issuer: x509.Certificate) -> _Link:
    """The link of `certificate` to `issuer` when the store holds no CRL at all."""
    return _Link(
        certificate, issuer, Revocation.UNKNOWN, problem=f"no CRL from {_subject_cn(issuer)}"
    )


@per_object
def _no_crl_summary(
    leaf: x509.Certificate, uppers: tuple[x509.Certificate, ...]
) -> tuple[tuple[_Link, ...], Revocation, Check]:
    """The revocation links and summary of the chain (`leaf`, then `uppers`) when the store
    holds no CRL at all: revocation unknown at every link."""
    links = tuple(_no_crl_link(c, i) for c, i in itertools.pairwise((leaf, *uppers)))
    return (links, *_revocation_summary(links))


@dataclass(frozen=True)
class _Link:
    """The revocation status of one certificate of a validated chain."""

    certificate: x509.Certificate
    issuer: x509.Certificate
    status: Revocation
    crl: x509.CertificateRevocationList | None = None
    revoked_at: datetime | None = None
    reason: str = ""
    problem: str = ""


# -- the store -----------------------------------------------------------------------------


class TrustStore:
    """What this user trusts: anchors (CA or self-signed certificates), one pinned
    certificate per AoR, the distrusted (AoR, certificate) pairs, certificates learned
    from peers, CRLs, and the log of every decision with its timestamp."""

    def __init__(self) -> None:
        self._anchors: list[x509.Certificate] = []
        self._crls: list[x509.CertificateRevocationList] = []
        self._pins: list[Pin] = []
        self._distrusted: list[Decision] = []
        self._learned: list[LearnedCertificate] = []
        self._decisions: list[Decision] = []
        #: Bumped by every change that can alter a verdict (see `CachingTrustStore`).
        self._revision = 0
        #: The path validation policy for the anchors, as of a revision (see
        #: `_validated_chain`); each message sets its own time on it.
        self._builder: tuple[int, PolicyBuilder] | None = None
        #: Verdicts assembled from the per-message results (see `evaluate`).
        self._assembled: dict[tuple[Any, ...], tuple[tuple[Any, ...], TrustVerdict]] = {}

    def __repr__(self) -> str:
        return (
            f"TrustStore(anchors={len(self._anchors)}, pins={len(self._pins)}, "
            f"crls={len(self._crls)}, decisions={len(self._decisions)})"
        )

    # -- anchors and CRLs ------------------------------------------------------------------

    def add_anchor(self, certificate: x509.Certificate) -> None:
        """Trust `certificate` (a CA, or a self-signed certificate) as a path anchor."""
        if not isinstance(certificate, x509.Certificate):
            raise TypeError("add_anchor takes an x509.Certificate")
        if certificate not in self._anchors:
            self._anchors.append(certificate)
            self._revision += 1

    def remove_anchor(self, certificate: x509.Certificate) -> None:
        """Stop trusting `certificate` as an anchor (no error when it was not one)."""
        if certificate in self._anchors:
            self._anchors.remove(certificate)
            self._revision += 1

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return tuple(self._anchors)

    def add_crl(self, crl: x509.CertificateRevocationList) -> None:
        """Keep a CRL; `evaluate` uses it once its signature verifies with the issuer's key
        and it is current (thisUpdate <= at < nextUpdate)."""
        if not isinstance(crl, x509.CertificateRevocationList):
            raise TypeError("add_crl takes an x509.CertificateRevocationList")
        if crl not in self._crls:
            self._crls.append(crl)
            self._revision += 1

    @property
    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        return tuple(self._crls)

    # -- decisions -------------------------------------------------------------------------

    def _log(self, aor: str, sha256: str, action: str, now: datetime, note: str) -> Decision:
        decision = Decision(aor, sha256, action, require_utc(now), note)
        self._decisions.append(decision)
        self._revision += 1  # every decision changes what `evaluate` may answer
        return decision

    def pin(
        self, aor: str, certificate: x509.Certificate, *, now: datetime, note: str = ""
    ) -> Decision:
        """Pin `certificate` for `aor` (replacing an earlier pin, lifting a distrust of it)."""
        key = _canonical_aor(aor)
        decision = self._log(key, certificate_sha256(certificate), "pin", now, note)
        self._pins = [p for p in self._pins if not uri_equal(p.aor, key)]
        self._pins.append(Pin(key, certificate, decision.at, note))
        self._distrusted = [
            d
            for d in self._distrusted
            if not (uri_equal(d.aor, key) and d.sha256 == decision.sha256)
        ]
        self._revision += 1  # again, now that the pins changed
        return decision

    def unpin(self, aor: str, *, now: datetime, note: str = "") -> Decision | None:
        """Remove the pin of `aor`; None (and nothing logged) when nothing was pinned."""
        found = self.pin_for(aor)
        if found is None:
            return None
        self._pins.remove(found)
        self._revision += 1
        return self._log(found.aor, found.sha256, "unpin", now, note)

    def distrust(
        self, aor: str, certificate: x509.Certificate, *, now: datetime, note: str = ""
    ) -> Decision:
        """Record that the user does not trust `certificate` for `aor`; if it was the pinned
        one, the pin goes. `evaluate` then says so (unverified-new, FAIL pin check)."""
        key = _canonical_aor(aor)
        sha = certificate_sha256(certificate)
        decision = self._log(key, sha, "distrust", now, note)
        self._pins = [p for p in self._pins if not (uri_equal(p.aor, key) and p.sha256 == sha)]
        self._distrusted = [
            d for d in self._distrusted if not (uri_equal(d.aor, key) and d.sha256 == sha)
        ]
        self._distrusted.append(decision)
        self._revision += 1  # again, now that the pins and distrusts changed
        return decision

    def record_decision(
        self,
        aor: str,
        certificate_or_sha256: x509.Certificate | str,
        action: str,
        *,
        now: datetime,
        note: str = "",
    ) -> Decision:
        """Log a decision that changes no trust state (for example ``trust`` to accept a
        message once, or ``dismiss``); kept and exported like the others."""
        if not action or not isinstance(action, str):
            raise TrustStoreError("a decision needs an action word")
        if action in _STATE_ACTIONS:
            raise TrustStoreError(f"use TrustStore.{action}() for a {action!r} decision")
        return self._log(_canonical_aor(aor), _sha256_of(certificate_or_sha256), action, now, note)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """Every decision, oldest first."""
        return tuple(self._decisions)

    def export_decisions_jsonl(self) -> str:
        """The decisions as JSON lines (one object per line, oldest first)."""
        return "".join(json.dumps(d.to_json(), ensure_ascii=False) + "\n" for d in self._decisions)

    # -- lookups ---------------------------------------------------------------------------

    def pin_for(self, aor: str) -> Pin | None:
        """The pin of `aor` (URI or name-addr, compared by `uri_equal`), or None."""
        return next((p for p in self._pins if _same_uri(p.aor, aor)), None)

    def pinned(self, aor: str) -> x509.Certificate | None:
        """The certificate pinned for `aor`, or None."""
        found = self.pin_for(aor)
        return None if found is None else found.certificate

    @property
    def pins(self) -> tuple[Pin, ...]:
        return tuple(self._pins)

    def distrusted(self, aor: str, certificate: x509.Certificate) -> Decision | None:
        """The decision by which the user distrusted `certificate` for `aor`, or None."""
        sha = certificate_sha256(certificate)
        return next(
            (d for d in self._distrusted if d.sha256 == sha and _same_uri(d.aor, aor)), None
        )

    def learn(self, aor: str, certificate: x509.Certificate, *, now: datetime) -> None:
        """Remember `certificate` as the one to encrypt to for `aor` (replaces an earlier
        one; pins nothing, decides nothing)."""
        key = _canonical_aor(aor)
        self._learned = [entry for entry in self._learned if not uri_equal(entry.aor, key)]
        self._learned.append(LearnedCertificate(key, certificate, require_utc(now)))
        self._revision += 1

    def learned(self, aor: str) -> x509.Certificate | None:
        """The certificate last learned for `aor`, or None."""
        found = next((e for e in self._learned if uri_equal(e.aor, aor)), None)
        return None if found is None else found.certificate

    # -- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Everything in the store as a JSON-ready dict (certificates and CRLs as PEM)."""
        return {
            "version": _JSON_VERSION,
            "anchors": [_pem(c) for c in self._anchors],
            "crls": [
                crl.public_bytes(serialization.Encoding.PEM).decode("ascii") for crl in self._crls
            ],
            "pins": [
                {
                    "aor": p.aor,
                    "certificate": _pem(p.certificate),
                    "at": p.at.isoformat(),
                    "note": p.note,
                }
                for p in self._pins
            ],
            "distrusted": [d.to_json() for d in self._distrusted],
            "learned": [
                {"aor": e.aor, "certificate": _pem(e.certificate), "at": e.at.isoformat()}
                for e in self._learned
            ],
            "decisions": [d.to_json() for d in self._decisions],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrustStore:
        """A store from `to_json` output; TrustStoreError when the document is unusable."""
        if not isinstance(data, dict):
            raise TrustStoreError("a trust store document is a JSON object")
        version = data.get("version", _JSON_VERSION)
        if version != _JSON_VERSION:
            raise TrustStoreError(f"unsupported trust store version {version!r}")
        store = cls()
        try:
            for text in data.get("anchors", []):
                store.add_anchor(_load_pem_certificate(text))
            for text in data.get("crls", []):
                store.add_crl(x509.load_pem_x509_crl(text.encode("ascii")))
            for item in data.get("pins", []):
                store._pins.append(
                    Pin(
                        str(item["aor"]),
                        _load_pem_certificate(item["certificate"]),
                        require_utc(datetime.fromisoformat(item["at"]), "at"),
                        str(item.get("note", "")),
                    )
                )
            store._distrusted = [Decision.from_json(d) for d in data.get("distrusted", [])]
            for item in data.get("learned", []):
                store._learned.append(
                    LearnedCertificate(
                        str(item["aor"]),
                        _load_pem_certificate(item["certificate"]),
                        require_utc(datetime.fromisoformat(item["at"]), "at"),
                    )
                )
            store._decisions = [Decision.from_json(d) for d in data.get("decisions", [])]
        except TrustStoreError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TrustStoreError(f"unreadable trust store document: {exc}") from exc
        return store

    # -- evaluation ------------------------------------------------------------------------

    def _validated_chain(
        self,
        certificate: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        at: datetime,
    ) -> tuple[list[x509.Certificate] | None, Check]:
        """Path validation by cryptography's client verifier; the chain (leaf first) or
        None, and the chain check."""
        if not self._anchors:
            return None, Check("chain", Outcome.UNKNOWN, "you have no trust anchors")
        try:
            builder = self._builder
            if builder is None or builder[0] != self._revision:
                builder = self._builder = (self._revision, _anchored_builder(self._anchors))
            verified = (
                builder[1].time(at).build_client_verifier().verify(certificate, list(intermediates))
            )
        except VerificationError as exc:
            if _self_signed(certificate):
                return None, Check(
                    "chain", Outcome.UNKNOWN, "self-signed, and not one of your trust anchors"
                )
            if not self._issuer_known(certificate, intermediates):
                issuer_cn = _issuer_cn(certificate)
                return None, Check(
                    "chain",
                    Outcome.UNKNOWN,
                    f"issued by {issuer_cn}, which is not one of your trust anchors",
                )
            return None, Check("chain", Outcome.FAIL, f"the path did not validate: {exc}")
        chain = list(verified.chain)
        return chain, _chain_pass(chain[-1], len(chain) == 1)

    def _issuer_known(
        self, certificate: x509.Certificate, intermediates: Sequence[x509.Certificate]
    ) -> bool:
        """Whether the issuer names lead (by name only, for wording) to an anchor."""
        anchor_names = {a.subject for a in self._anchors}
        seen: set[x509.Name] = set()
        name = certificate.issuer
        while name not in seen:
            if name in anchor_names:
                return True
            seen.add(name)
            nxt = next((c for c in intermediates if c.subject == name), None)
            if nxt is None:
                return False
            name = nxt.issuer
        return False

    def _link_status(
        self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime
    ) -> _Link:
        issuer_cn = _subject_cn(issuer)
        named = [crl for crl in self._crls if crl.issuer == issuer.subject]
        signed = [crl for crl in named if _crl_signed_by(crl, issuer)]
        current = [
            crl
            for crl in signed
            if crl.last_update_utc <= at
            and crl.next_update_utc is not None
            and at < crl.next_update_utc
        ]
        if not current:
            if signed:
                latest = max(signed, key=lambda c: c.last_update_utc)
                if latest.last_update_utc > at:
                    problem = f"the CRL from {issuer_cn} is newer than the time checked"
                else:
                    problem = f"the CRL from {issuer_cn} is out of date"
                    if latest.next_update_utc is not None:
                        problem += f" (next update was due {_day(latest.next_update_utc)})"
            elif named:
                problem = f"the CRL naming {issuer_cn} is not signed by its key"
            else:
                problem = f"no CRL from {issuer_cn}"
            return _Link(certificate, issuer, Revocation.UNKNOWN, problem=problem)
        for crl in current:
            entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            if entry is not None:
                reason = ""
                try:
                    flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
                    reason = flag.value
                except x509.ExtensionNotFound:
                    pass
                return _Link(
                    certificate,
                    issuer,
                    Revocation.REVOKED,
                    crl=crl,
                    revoked_at=entry.revocation_date_utc,
                    reason=reason,
                )
        newest = max(current, key=lambda c: c.last_update_utc)
        return _Link(certificate, issuer, Revocation.GOOD, crl=newest)

    def evaluate(
        self,
        certificate: x509.Certificate,
        *,
        intermediates: Sequence[x509.Certificate] = (),
        sender: str | None,
        at: datetime,
        signing_time: datetime | None = None,
        usage: str = "signing",
        min_rsa_bits: int = 2048,
    ) -> TrustVerdict:
        """The trust verdict for `certificate`, whose signature the caller already verified.

        `intermediates` are untrusted certificates that may help path building (those the
        message carried); `sender` the SIP URI or name-addr the message is filed under
        (None: nothing to compare); `at` the time of receipt (path validation, CRL currency);
        `signing_time` the signed time, also required to be inside the validity; `usage`
        ``signing`` or ``encryption``. Never returns BAD_SIGNATURE or UNSIGNED.
        See the module docstring for the precedence of states.
        """
        at = require_utc(at, "at")
        if signing_time is not None:
            signing_time = require_utc(signing_time, "signing_time")
        if usage not in USAGES:
            raise ValueError(f"usage must be one of {USAGES}, not {usage!r}")
        # Everything below that depends only on the certificate and the question asked
        # (names, algorithm, key usage, the sender comparison) is computed once.
        facts = _question_facts(certificate, sender, usage, min_rsa_bits)

        # Validity, path validation and revocation are checked for every message.
        validity_state, validity_check = _validity(certificate, at, signing_time)
        chain, chain_check = self._validated_chain(certificate, intermediates, at)
        links: Sequence[_Link] = ()
        revocation = Revocation.NOT_CHECKED
        if chain is None:
            revocation_check = Check(
                "revocation", Outcome.UNKNOWN, "not checked: no validated chain to a trust anchor"
            )
        elif len(chain) == 1:
            revocation_check = Check(
                "revocation",
                Outcome.PASS,
                "nothing to check: the certificate is itself a trust anchor",
            )
        elif not self._crls:
            links, revocation, revocation_check = _no_crl_summary(chain[0], tuple(chain[1:]))
        else:
            links = [self._link_status(c, i, at) for c, i in itertools.pairwise(chain)]
            revocation, revocation_check = _revocation_summary(links)

        # What follows is a function of those results, the question and the store's state
        # alone, so the verdict is assembled once per distinct set of them. Certificates
        # and CRLs are keyed by identity: the entry holds them (its links hold the CRLs),
        # so while it lives no other object can have their ids.
        held = (certificate, *chain) if chain is not None else (certificate,)
        key = (
            self._revision,
            sender,
            usage,
            min_rsa_bits,
            id(validity_state),  # enum members and None are singletons
            validity_check,
            tuple(map(id, held)),
            chain is None,
            chain_check,
            id(revocation),
            revocation_check,
            tuple([(id(k.crl), id(k.status), k.revoked_at, k.reason, k.problem) for k in links]),
        )
        hit = self._assembled.get(key)
        if hit is not None:
            return hit[1]
        verdict = self._assemble(
            certificate,
            facts,
            sender,
            usage,
            min_rsa_bits,
            validity_state,
            validity_check,
            chain,
            chain_check,
            links,
            revocation,
            revocation_check,
        )
        if len(self._assembled) >= _MAX_ASSEMBLED:
            self._assembled.clear()
        self._assembled[key] = ((*held, links), verdict)
        return verdict

    def _assemble(
        self,
        certificate: x509.Certificate,
        facts: _QuestionFacts,
        sender: str | None,
        usage: str,
        min_rsa_bits: int,
        validity_state: Authenticity | None,
        validity_check: Check,
        chain: list[x509.Certificate] | None,
        chain_check: Check,
        links: Sequence[_Link],
        revocation: Revocation,
        revocation_check: Check,
    ) -> TrustVerdict:
        """The verdict from the per-message results of `evaluate` (precedence, words)."""
        weak, lead = facts.weak, facts.lead
        if chain is not None and weak is None:
            for upper in chain[1:]:
                problem = _weak_signature(upper) if upper is not chain[-1] else None
                problem = problem or _weak_key(upper, min_rsa_bits)
                if problem is not None:
                    weak = f"{problem} in the certificate of {_subject_cn(upper)}"
                    break
        if weak is None:
            algorithm_check = Check("algorithm", Outcome.PASS, _algorithm_words(certificate))
        else:
            algorithm_check = Check("algorithm", Outcome.FAIL, f"weak: {weak}")

        # pins and decisions
        pin_aors = [sender] if sender is not None else facts.sip_uris
        pin = next((p for a in pin_aors if (p := self.pin_for(a)) is not None), None)
        distrust = next(
            (d for a in pin_aors if (d := self.distrusted(a, certificate)) is not None), None
        )
        pin_relation = "none"
        if pin is not None:
            if pin.sha256 == facts.fingerprint:
                pin_relation = "same"
            elif usage == "encryption" and _directly_issued_by(certificate, pin.certificate):
                pin_relation = "certified"
            else:
                pin_relation = "different"
        if pin is None and distrust is None:
            pin_check = _unpinned_check(tuple(pin_aors), facts.fingerprint)
        else:
            pin_check = _pin_check(pin, pin_relation, distrust, pin_aors, facts.fingerprint)

        checks = (
            algorithm_check,
            facts.usage_check,
            facts.sender_check,
            validity_check,
            chain_check,
            pin_check,
            revocation_check,
        )
        summaries = tuple(CertificateSummary.of(c) for c in (chain or [certificate]))
        issuer_cn = _issuer_cn(certificate)

        # precedence, worst first
        state: Authenticity
        if weak is not None:
            state = Authenticity.WEAK_ALGORITHM
            reason = f"{lead}, but the certificate uses a weak algorithm: {weak}."
        elif facts.sender_match is False:
            state = Authenticity.SENDER_MISMATCH
            if usage == "signing":
                reason = f"Signed by {facts.named}, not by the sender {_sender_words(sender)}."
            else:
                reason = f"The certificate names {facts.named}, not {_sender_words(sender)}."
        elif validity_state is not None:
            state = validity_state
            reason = f"{lead}, but {validity_check.reason}."
        elif revocation is Revocation.REVOKED:
            state = Authenticity.REVOKED
            reason = f"{lead}, but {_revoked_words(links)}."
        elif pin_relation == "different":
            assert pin is not None
            state = Authenticity.KEY_CHANGED
            reason = (
                f"{lead} with a new certificate: the certificate differs from the one you "
                f"pinned on {_day(pin.at)}; compare fingerprints before trusting it."
            )
        elif facts.usage_problem is not None:
            state = Authenticity.UNVERIFIED_NEW
            reason = (
                f"{lead}, but the certificate does not allow {facts.operation}: "
                f"{facts.usage_problem}."
            )
        elif distrust is not None:
            state = Authenticity.UNVERIFIED_NEW
            reason = f"{lead}, with a certificate you marked as not trusted on {_day(distrust.at)}."
        elif pin_relation in ("same", "certified"):
            assert pin is not None
            state = Authenticity.VERIFIED_PINNED
            if pin_relation == "same":
                reason = f"{lead}, with the certificate you pinned on {_day(pin.at)}."
            else:
                reason = f"{lead}, certified by the certificate you pinned on {_day(pin.at)}."
        elif chain is not None:
            if len(chain) == 1:
                state = Authenticity.VERIFIED
                reason = f"{lead}, with a certificate you trust as an anchor."
            elif revocation is Revocation.GOOD:
                state = Authenticity.VERIFIED
                leaf_crl = links[0].crl
                assert leaf_crl is not None
                reason = (
                    f"{lead}, certificate issued by {issuer_cn}, not revoked "
                    f"(CRL of {_day(leaf_crl.last_update_utc)})."
                )
            else:
                state = Authenticity.REVOCATION_UNKNOWN
                problems = "; ".join(link.problem for link in links if link.problem)
                reason = (
                    f"{lead}, certificate issued by {issuer_cn}; revocation could not be "
                    f"checked: {problems}."
                )
        else:
            state = Authenticity.UNVERIFIED_NEW
            if _self_signed(certificate):
                origin = "a self-signed certificate you have not pinned"
            else:
                origin = f"a certificate from {issuer_cn}, an issuer you do not trust"
            reason = (
                f"{lead}, with {origin}: compare its fingerprint with {facts.who} over another "
                f"channel before trusting it."
            )
        return TrustVerdict(
            authenticity=state,
            sender_match=facts.sender_match,
            chain=summaries,
            revocation=revocation,
            checks=checks,
            reason=reason,
        )


# -- evaluate helpers ----------------------------------------------------------------------


class _QuestionFacts(NamedTuple):
    fingerprint: str
    sip_uris: tuple[str, ...]
    named: str
    weak: str | None
    sender_match: bool | None
    sender_check: Check
    who: str
    lead: str
    usage_problem: str | None
    operation: str
    usage_check: Check


@per_object
def _question_facts(
    certificate: x509.Certificate, sender: str | None, usage: str, min_rsa_bits: int
) -> _QuestionFacts:
    """What `TrustStore.evaluate` derives from the certificate and the question alone (no
    time, no store state): fingerprint, SIP URIs, the name it goes by, a weak algorithm,
    the sender comparison and its check, the words naming the signer, the key usage
    problem and its check. Certificates are immutable, so this is computed once."""
    fingerprint = certificate_sha256(certificate)
    uris = certificate_uris(certificate)
    sip_uris = [u for u in uris if u.lower().startswith(("sip:", "sips:"))]
    named = ", ".join(uris) if uris else _subject_cn(certificate)

    # algorithm
    weak = _weak_signature(certificate) or _weak_key(certificate, min_rsa_bits)

    # sender
    matched: str | None = None
    sender_match: bool | None
    if sender is None:
        sender_match = None
        sender_check = Check("sender", Outcome.UNKNOWN, "no sender to compare")
    else:
        matched = next((u for u in uris if _same_uri(sender, u)), None)
        sender_match = matched is not None
        sender_words = _sender_words(sender)
        if matched is not None:
            sender_check = Check(
                "sender", Outcome.PASS, f"{matched} in the certificate matches the sender"
            )
        else:
            sender_check = Check(
                "sender",
                Outcome.FAIL,
                f"the certificate names {named}, not the sender {sender_words}",
            )
    who = (
        matched
        or (_parse_or_keep(sender) if sender is not None else None)
        or (sip_uris[0] if sip_uris else named)
    )
    lead = f"Signed by {who}" if usage == "signing" else f"The certificate of {who}"

    # key usage
    usage_problem = _usage_problem(certificate, usage)
    operation = "signing" if usage == "signing" else "encryption"
    if usage_problem is None:
        usage_check = Check("key-usage", Outcome.PASS, f"allows {operation}")
    else:
        usage_check = Check(
            "key-usage", Outcome.FAIL, f"does not allow {operation}: {usage_problem}"
        )
    return _QuestionFacts(
        fingerprint,
        tuple(sip_uris),
        named,
        weak,
        sender_match,
        sender_check,
        who,
        lead,
        usage_problem,
        operation,
        usage_check,
    )


@functools.lru_cache(maxsize=_FACTS_CACHE)
def _parse_or_keep(text: str) -> str:
    """The canonical AoR of `text` when it parses; `text` itself otherwise (for words)."""
    try:
        return parse_aor(text)
    except SipUriError:
        return text


def _sender_words(sender: str | None) -> str:
    return "" if sender is None else _parse_or_keep(sender)


def _load_pem_certificate(text: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(text.encode("ascii"))


@per_object
def _self_signed(certificate: x509.Certificate) -> bool:
    """Issuer name = subject name and the certificate's own key verifies its signature."""
    return certificate.issuer == certificate.subject and _directly_issued_by(
        certificate, certificate
    )


def _directly_issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """One signature check (not path building): `issuer` signed `certificate`."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except Exception:
        return False
    return True


#: How far a signer's clock may run ahead of ours before its signing time is ignored.
SIGNING_CLOCK_SKEW = timedelta(minutes=5)


@per_object
def _chain_pass(anchor: x509.Certificate, is_anchor: bool) -> Check:
    if is_anchor:
        return Check("chain", Outcome.PASS, "the certificate is itself one of your trust anchors")
    return Check("chain", Outcome.PASS, f"chains to your trust anchor {_subject_cn(anchor)}")


@per_object
def _validity_facts(certificate: x509.Certificate) -> tuple[datetime, datetime, Check]:
    """(notBefore, notAfter, the check passed when no signing-time note applies)."""
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    words = f"valid from {_day(not_before)} to {_day(not_after)}"
    return not_before, not_after, Check("validity", Outcome.PASS, words)


def _validity(
    certificate: x509.Certificate, at: datetime, signing_time: datetime | None
) -> tuple[Authenticity | None, Check]:
    not_before, not_after, passed = _validity_facts(certificate)
    moments: list[tuple[str, datetime]] = [("now", at)]
    note = ""
    if signing_time is not None and signing_time > at + SIGNING_CLOCK_SKEW:
        # A signing time after the moment of verification is a claim about the future:
        # it proves nothing, so validity at the moment of verification alone decides.
        note = (
            f"; the claimed signing time {_day(signing_time)} lies after the moment of "
            "verification and was not used"
        )
    elif signing_time is not None:
        moments.append(("signing", signing_time))
    for label, moment in moments:
        if moment > not_after:
            if label == "now":
                words = f"the certificate expired on {_day(not_after)}"
            else:
                words = (
                    f"it was signed on {_day(moment)}, after the certificate expired on "
                    f"{_day(not_after)}"
                )
            return Authenticity.EXPIRED, Check("validity", Outcome.FAIL, words)
    for label, moment in moments:
        if moment < not_before:
            if label == "now":
                words = f"the certificate is not valid before {_day(not_before)}"
            else:
                words = (
                    f"it was signed on {_day(moment)}, before the certificate became valid "
                    f"on {_day(not_before)}"
                )
            return Authenticity.NOT_YET_VALID, Check("validity", Outcome.FAIL, words)
    if not note:
        return None, passed
    return None, Check("validity", Outcome.PASS, f"{passed.reason}{note}")


def _revocation_summary(links: Iterable[_Link]) -> tuple[Revocation, Check]:
    links = list(links)
    revoked = [link for link in links if link.status is Revocation.REVOKED]
    if revoked:
        return Revocation.REVOKED, Check("revocation", Outcome.FAIL, _revoked_words(links))
    unknown = [link for link in links if link.status is Revocation.UNKNOWN]
    if unknown:
        return Revocation.UNKNOWN, Check(
            "revocation",
            Outcome.UNKNOWN,
            "could not be checked: " + "; ".join(link.problem for link in unknown),
        )
    leaf_crl = links[0].crl
    assert leaf_crl is not None
    return Revocation.GOOD, Check(
        "revocation",
        Outcome.PASS,
        f"not revoked (CRL of {_day(leaf_crl.last_update_utc)} from "
        f"{_common_name(links[0].issuer.subject)})",
    )


@functools.lru_cache(maxsize=_FACTS_CACHE)
def _unpinned_check(aors: tuple[str, ...], fingerprint: str) -> Check:
    """The pin check when nothing is pinned or distrusted for `aors` (computed once)."""
    return _pin_check(None, "none", None, aors, fingerprint)


def _revoked_words(links: Sequence[_Link]) -> str:
    link = next(link for link in links if link.status is Revocation.REVOKED)
    issuer = _common_name(link.issuer.subject)
    when = f" on {_day(link.revoked_at)}" if link.revoked_at is not None else ""
    why = f" ({link.reason})" if link.reason and link.reason != "unspecified" else ""
    if link is links[0]:
        return f"{issuer} revoked the certificate{when}{why}"
    return (
        f"{issuer} revoked the certificate of {_common_name(link.certificate.subject)}{when}{why}"
    )


def _pin_check(
    pin: Pin | None,
    relation: str,
    distrust: Decision | None,
    aors: Sequence[str],
    fingerprint: str,
) -> Check:
    if relation == "different":
        assert pin is not None
        return Check(
            "pin",
            Outcome.FAIL,
            f"the certificate differs from the one you pinned on {_day(pin.at)} for {pin.aor} "
            f"(pinned {format_fingerprint(pin.sha256)}, now {format_fingerprint(fingerprint)})",
        )
    if distrust is not None:
        return Check(
            "pin",
            Outcome.FAIL,
            f"you marked this certificate as not trusted for {distrust.aor} on {_day(distrust.at)}",
        )
    if relation == "same":
        assert pin is not None
        return Check(
            "pin", Outcome.PASS, f"the certificate you pinned for {pin.aor} on {_day(pin.at)}"
        )
    if relation == "certified":
        assert pin is not None
        return Check(
            "pin",
            Outcome.PASS,
            f"signed by the certificate you pinned for {pin.aor} on {_day(pin.at)}",
        )
    target = ", ".join(_parse_or_keep(a) for a in aors) if aors else "this sender"
    return Check(
        "pin",
        Outcome.UNKNOWN,
        f"no certificate pinned for {target} (fingerprint {format_fingerprint(fingerprint)})",
    )


#: How long after the moment of one verdict the same question may reuse it (CRLs and
#: validity change on a scale of hours; a user's decision takes effect at once).
VERDICT_REUSE = timedelta(seconds=30)
_MAX_VERDICTS = 4096
#: Verdicts assembled from per-message results kept per store (a conversation brings a
#: handful of distinct ones; a stream of new certificates only recycles them).
_MAX_ASSEMBLED = 1024


def _position(moment: datetime | None, certificate: x509.Certificate) -> str:
    if moment is None:
        return "none"
    if moment < certificate.not_valid_before_utc:
        return "before"
    if moment > certificate.not_valid_after_utc:
        return "after"
    return "inside"


class CachingTrustStore(TrustStore):
    """A `TrustStore` that answers a repeated question from its last verdict.

    A busy conversation brings the same signer certificate again and again; validating its
    path each time costs more than decrypting and verifying the message. A verdict is
    reused for a question asked within `VERDICT_REUSE` after it (measured on `at`, the
    moment of verification, so time stays a parameter), keyed by everything it depends
    on: the certificate, the intermediates offered, the sender, the usage, the RSA floor,
    where `at` and the signing time fall relative to the validity, and the store's
    revision, which every change (anchors, CRLs, pins, distrust, decisions, learned
    certificates) moves on.
    """

    def __init__(self) -> None:
        super().__init__()
        self._verdicts: dict[tuple, tuple[datetime, TrustVerdict]] = {}

    def evaluate(
        self,
        certificate: x509.Certificate,
        *,
        intermediates: Sequence[x509.Certificate] = (),
        sender: str | None,
        at: datetime,
        signing_time: datetime | None = None,
        usage: str = "signing",
        min_rsa_bits: int = 2048,
    ) -> TrustVerdict:
        signing_position = _position(signing_time, certificate)
        if signing_time is not None and signing_time > at + SIGNING_CLOCK_SKEW:
            signing_position = "future"
        key = (
            self._revision,
            certificate.public_bytes(serialization.Encoding.DER),
            tuple(c.public_bytes(serialization.Encoding.DER) for c in intermediates),
            sender,
            usage,
            min_rsa_bits,
            _position(at, certificate),
            signing_position,
        )
        cached = self._verdicts.get(key)
        if cached is not None and timedelta(0) <= at - cached[0] <= VERDICT_REUSE:
            return cached[1]
        verdict = super().evaluate(
            certificate,
            intermediates=intermediates,
            sender=sender,
            at=at,
            signing_time=signing_time,
            usage=usage,
            min_rsa_bits=min_rsa_bits,
        )
        if len(self._verdicts) >= _MAX_VERDICTS:
            self._verdicts.clear()
        self._verdicts[key] = (at, verdict)
        return verdict
