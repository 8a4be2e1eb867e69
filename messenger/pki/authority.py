"""A small certificate authority for demos and tests: issuing, revoking, CRLs, CA files.

`create_authority` makes a root CA (or, with ``parent=``, an intermediate one);
`Authority.issue` makes RFC 8591 end-entity certificates (SubjectAltName
``uniformResourceIdentifier`` = the SIP URI, section 4.4); `Authority.revoke` and
`Authority.crl` publish revocation. `save_authority` / `load_authority` keep a CA in a folder
(``cert.pem``, ``key.pem`` owner-only, ``crl.pem``).

CA keys are EC P-256/P-384 or RSA: cryptography's path validator (which the trust store
uses) refuses Ed25519 issuer keys, so an Ed25519 CA would issue certificates nobody can
validate. End-entity keys may be P-256, RSA, Ed25519 or X25519.

Every certificate is back-dated by `BACKDATE` (one hour) so that a peer whose clock is a
little behind does not see a fresh certificate as not yet valid, and never outlives its
issuer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..sip.uri import SipUri, SipUriError, parse_aor
from ._files import (
    PrivateKey,
    PublicKey,
    generate_key,
    key_matches_certificate,
    load_pem_certificates,
    load_private_key,
    make_folder,
    pem_certificates,
    private_key_pem,
    random_serial,
    read_file,
    require_utc,
    signature_hash,
    write_private_file,
    write_public_file,
)
from .errors import AuthorityError, IdentityError

__all__ = [
    "BACKDATE",
    "CA_KEY_TYPES",
    "Authority",
    "RevokedEntry",
    "build_end_entity_certificate",
    "create_authority",
    "default_key_usage",
    "load_authority",
    "save_authority",
    "sip_aor",
]

BACKDATE = timedelta(hours=1)
CA_KEY_TYPES = ("p256", "p384", "rsa2048", "rsa3072")
DEFAULT_CRL_VALIDITY = timedelta(days=7)


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_agreement: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def default_key_usage(public_key: PublicKey) -> x509.KeyUsage:
    """The keyUsage an RFC 8591 end-entity certificate gets for its key type.

    EC: digitalSignature + keyAgreement (sign, and ECDH for encryption); RSA:
    digitalSignature + keyEncipherment; Ed25519: digitalSignature; X25519: keyAgreement.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _key_usage(digital_signature=True, key_agreement=True)
    if isinstance(public_key, rsa.RSAPublicKey):
        return _key_usage(digital_signature=True, key_encipherment=True)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return _key_usage(digital_signature=True)
    if isinstance(public_key, x25519.X25519PublicKey):
        return _key_usage(key_agreement=True)
    raise IdentityError(f"unsupported public key type {type(public_key).__name__}")


def sip_aor(aor: str) -> tuple[str, str]:
    """The canonical SIP AoR of `aor` (a URI or name-addr) and the name for the subject CN
    (the user part; the host when there is no user part). IdentityError when malformed."""
    try:
        canonical = parse_aor(aor)
        uri = SipUri.parse(canonical)
    except SipUriError as exc:
        raise IdentityError(f"{aor!r} is not a SIP or SIPS URI: {exc}") from exc
    return canonical, uri.user if uri.user is not None else uri.host


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def build_end_entity_certificate(
    *,
    aor: str,
    public_key: PublicKey,
    issuer_name: x509.Name,
    issuer_key: PrivateKey,
    not_before: datetime,
    not_after: datetime,
    key_usage: x509.KeyUsage | None = None,
    subject_cn: str | None = None,
) -> x509.Certificate:
    """An RFC 8591 end-entity certificate for `aor` signed by `issuer_key`.

    SubjectAltName URI = the canonical SIP AoR; subject CN = `subject_cn` or the user part;
    keyUsage (critical) = `key_usage` or `default_key_usage`; EKU emailProtection;
    basicConstraints CA=false (critical); SKI; AKI (also when self-issued: cryptography's
    verifier requires it); random 159-bit serial. Used for CA-issued and self-signed ones.
    """
    canonical, user = sip_aor(aor)
    issuer_public = issuer_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn or user))
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(canonical)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage or default_key_usage(public_key), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public),  # type: ignore[arg-type]
            critical=False,
        )
    )
    return builder.sign(issuer_key, signature_hash(issuer_key))  # type: ignore[arg-type]


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate: its serial, when it was revoked, and why (if said)."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None


class Authority:
    """A certificate authority: its key, its certificate, the certificates above it
    (`chain`, nearest first, empty for a root) and the certificates it revoked.

    `last_crl` is the most recent CRL it issued; `revoke` re-issues it, so it always
    lists every revocation.
    """

    def __init__(
        self,
        key: PrivateKey,
        certificate: x509.Certificate,
        *,
        chain: tuple[x509.Certificate, ...] = (),
        revoked: Mapping[int, RevokedEntry] | None = None,
        crl_number: int = 0,
        last_crl: x509.CertificateRevocationList | None = None,
    ) -> None:
        if not key_matches_certificate(key, certificate):
            raise AuthorityError("the CA key does not match the CA certificate")
        self.key = key
        self.certificate = certificate
        self.chain = tuple(chain)
        self._revoked: dict[int, RevokedEntry] = dict(revoked or {})
        self._crl_number = crl_number
        self._last_crl = last_crl

    def __repr__(self) -> str:
        return f"Authority({self.name!r}, revoked={len(self._revoked)})"

    @property
    def name(self) -> str:
        """The CA's common name (its subject as RFC 4514 text when it has none)."""
        names = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if names:
            return str(names[0].value)
        return self.certificate.subject.rfc4514_string()

    @property
    def revoked(self) -> tuple[RevokedEntry, ...]:
        """The revoked certificates, in serial order."""
        return tuple(self._revoked[s] for s in sorted(self._revoked))

    @property
    def crl_number(self) -> int:
        """The number of the last CRL issued (0 before the first)."""
        return self._crl_number

    @property
    def last_crl(self) -> x509.CertificateRevocationList | None:
        """The most recent CRL this authority issued."""
        return self._last_crl

    def is_revoked(self, certificate_or_serial: x509.Certificate | int) -> bool:
        """True when the certificate (or serial) is on this authority's revoked list."""
        return _serial_of(certificate_or_serial) in self._revoked

    def _clamp(self, not_after: datetime) -> datetime:
        return min(not_after, self.certificate.not_valid_after_utc)

    def issue(
        self,
        aor: str,
        public_key: PublicKey,
        *,
        days: int = 365,
        now: datetime,
        key_usage: x509.KeyUsage | None = None,
        subject_cn: str | None = None,
    ) -> x509.Certificate:
        """An end-entity certificate for the SIP `aor` and `public_key` (P-256, RSA,
        Ed25519 or X25519), valid from `now` - BACKDATE for `days` days (never beyond this
        CA's own validity). `key_usage` defaults to `default_key_usage(public_key)`."""
        now = require_utc(now)
        if days <= 0:
            raise ValueError("days must be positive")
        return build_end_entity_certificate(
            aor=aor,
            public_key=public_key,
            issuer_name=self.certificate.subject,
            issuer_key=self.key,
            not_before=now - BACKDATE,
            not_after=self._clamp(now + timedelta(days=days)),
            key_usage=key_usage,
            subject_cn=subject_cn,
        )

    def revoke(
        self,
        certificate_or_serial: x509.Certificate | int,
        *,
        now: datetime,
        reason: x509.ReasonFlags | None = None,
    ) -> RevokedEntry:
        """Put a certificate (or serial) on the revoked list and re-issue `last_crl` at
        `now`. Revoking twice keeps the first entry."""
        now = require_utc(now)
        serial = _serial_of(certificate_or_serial)
        if isinstance(certificate_or_serial, x509.Certificate) and (
            certificate_or_serial.issuer != self.certificate.subject
        ):
            raise AuthorityError(
                f"{self.name} did not issue the certificate of "
                f"{certificate_or_serial.subject.rfc4514_string()}"
            )
        entry = self._revoked.setdefault(serial, RevokedEntry(serial, now, reason))
        self.crl(now=now)
        return entry

    def crl(
        self, *, now: datetime, next_update: timedelta = DEFAULT_CRL_VALIDITY
    ) -> x509.CertificateRevocationList:
        """A fresh CRL: thisUpdate `now`, nextUpdate `now + next_update`, every revoked
        entry (with its reason code), a CRLNumber one higher than the last, and AKI."""
        now = require_utc(now)
        self._crl_number += 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + next_update)
            .add_extension(x509.CRLNumber(self._crl_number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()  # type: ignore[arg-type]
                ),
                critical=False,
            )
        )
        for entry in self.revoked:
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(entry.revoked_at)
            )
            if entry.reason is not None:
                revoked = revoked.add_extension(x509.CRLReason(entry.reason), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        crl = builder.sign(self.key, signature_hash(self.key))  # type: ignore[arg-type]
        self._last_crl = crl
        return crl


def _serial_of(certificate_or_serial: x509.Certificate | int) -> int:
    if isinstance(certificate_or_serial, x509.Certificate):
        return certificate_or_serial.serial_number
    if isinstance(certificate_or_serial, int) and certificate_or_serial > 0:
        return certificate_or_serial
    raise TypeError("expected a certificate or a positive serial number")


def create_authority(
    name: str,
    *,
    days: int = 3650,
    now: datetime,
    key_type: str = "p256",
    parent: Authority | None = None,
) -> Authority:
    """A new CA named `name` (subject CN): a self-signed root, or an intermediate signed by
    `parent`. basicConstraints CA=true and keyUsage keyCertSign + cRLSign (both critical),
    SKI and AKI. An empty CRL is issued at `now` so `last_crl` is never None."""
    now = require_utc(now)
    if key_type not in CA_KEY_TYPES:
        raise AuthorityError(
            f"a CA key must be one of {', '.join(CA_KEY_TYPES)}, not {key_type!r}"
            " (the path validator refuses Ed25519 issuers)"
        )
    if days <= 0:
        raise ValueError("days must be positive")
    key = generate_key(key_type)
    issuer_key: PrivateKey = key if parent is None else parent.key
    issuer_name = _name(name) if parent is None else parent.certificate.subject
    not_after = now + timedelta(days=days)
    if parent is not None:
        not_after = parent._clamp(not_after)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_key.public_key()  # type: ignore[arg-type]
            ),
            critical=False,
        )
        .sign(issuer_key, signature_hash(issuer_key))  # type: ignore[arg-type]
    )
    chain = () if parent is None else (parent.certificate, *parent.chain)
    authority = Authority(key, certificate, chain=chain)
    authority.crl(now=now)
    return authority


def save_authority(
    authority: Authority,
    folder: Path,
    passphrase: bytes | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Write ``cert.pem`` (CA certificate, then the certificates above it), ``key.pem``
    (PKCS#8, encrypted when `passphrase` is given, owner-only from creation) and
    ``crl.pem`` (`authority.last_crl`, or a fresh CRL when `now` is given)."""
    folder = Path(folder)
    make_folder(folder)
    crl = authority.crl(now=now) if now is not None else authority.last_crl
    if crl is None:
        raise AuthorityError("the authority has issued no CRL yet: pass now= to issue one")
    write_private_file(folder / "key.pem", private_key_pem(authority.key, passphrase))
    write_public_file(
        folder / "cert.pem", pem_certificates((authority.certificate, *authority.chain))
    )
    write_public_file(folder / "crl.pem", crl.public_bytes(serialization.Encoding.PEM))


def load_authority(folder: Path, passphrase: bytes | None = None) -> Authority:
    """Read a CA saved by `save_authority`, including its revoked list and CRL number from
    ``crl.pem`` (a missing ``crl.pem`` means nothing was revoked yet).

    Raises WrongPassphraseError for an encrypted key without or with the wrong passphrase,
    AuthorityError for missing or damaged files or a CRL the CA did not sign."""
    folder = Path(folder)
    certificates = load_pem_certificates(
        read_file(folder / "cert.pem", error=AuthorityError),
        where=str(folder / "cert.pem"),
        error=AuthorityError,
    )
    key = load_private_key(
        read_file(folder / "key.pem", error=AuthorityError),
        passphrase,
        where=str(folder / "key.pem"),
        error=AuthorityError,
    )
    certificate = certificates[0]
    revoked: dict[int, RevokedEntry] = {}
    crl_number = 0
    crl: x509.CertificateRevocationList | None = None
    crl_path = folder / "crl.pem"
    if crl_path.exists():
        try:
            crl = x509.load_pem_x509_crl(read_file(crl_path, error=AuthorityError))
        except ValueError as exc:
            raise AuthorityError(f"{crl_path} holds no readable CRL: {exc}") from exc
        if crl.issuer != certificate.subject or not crl.is_signature_valid(
            certificate.public_key()  # type: ignore[arg-type]
        ):
            raise AuthorityError(f"{crl_path} was not issued by this CA")
        for entry in crl:
            reason: x509.ReasonFlags | None = None
            with contextlib.suppress(x509.ExtensionNotFound):
                reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            revoked[entry.serial_number] = RevokedEntry(
                entry.serial_number, entry.revocation_date_utc, reason
            )
        try:
            crl_number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            crl_number = 0
    return Authority(
        key,
        certificate,
        chain=tuple(certificates[1:]),
        revoked=revoked,
        crl_number=crl_number,
        last_crl=crl,
    )
