"""Identities: a user's private keys and certificates (RFC 8591 section 4.4), on disk and
in PKCS#12.

An `Identity` is one SIP AoR's signing key and certificate, the issuer certificates above
it, and the key and certificate others encrypt to. For EC P-256 and RSA identities the
encryption key and certificate are the signing ones. Ed25519 can only sign, so an Ed25519
identity carries a separate X25519 key whose certificate (keyUsage keyAgreement) is issued
by the same CA or, for a self-signed identity, signed by the identity's own Ed25519 key.

Folder layout written by `save_identity`: ``cert.pem`` (leaf, then chain), ``key.pem``
(PKCS#8, passphrase-encrypted when one is given, owner-only from creation) and, for
identities with a separate encryption key, ``enc-cert.pem`` and ``enc-key.pem``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from ..sip.uri import SipUriError, parse_aor
from ._files import (
    KEY_TYPES,
    generate_key,
    key_matches_certificate,
    load_pem_certificates,
    load_private_key,
    make_folder,
    pem_certificates,
    private_key_pem,
    read_file,
    require_utc,
    write_private_file,
    write_public_file,
)
from .authority import (
    BACKDATE,
    Authority,
    build_end_entity_certificate,
    default_key_usage,
    sip_aor,
)
from .errors import IdentityError, PkiError, WrongPassphraseError
from .verdict import certificate_sha256, certificate_uris

__all__ = [
    "KEY_TYPES",
    "DecryptionKey",
    "Identity",
    "SigningKey",
    "create_identity",
    "identity_from_pkcs12",
    "identity_to_pkcs12",
    "load_certificates",
    "load_identity",
    "save_identity",
]

SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
DecryptionKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | x25519.X25519PrivateKey


@dataclass(frozen=True, eq=False)
class Identity:
    """A SIP AoR's keys and certificates.

    `chain` holds the issuer certificates above `certificate`, nearest first, up to and
    including the root CA certificate when it is known (what `create_identity` with an
    authority and `load_identity` give); it is empty for a self-signed certificate. The
    S/MIME core may leave the root out of what it sends; path validation never needs it
    from the sender since anchors come from the receiver's trust store.

    `encryption_key` / `encryption_certificate` default to the signing ones (EC, RSA);
    an Ed25519 identity must provide an X25519 pair. The constructor checks that each key
    matches its certificate and raises IdentityError otherwise.
    """

    signing_key: SigningKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    encryption_key: DecryptionKey | None = field(default=None)
    encryption_certificate: x509.Certificate | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chain", tuple(self.chain))
        if not isinstance(
            self.signing_key,
            ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey,
        ):
            raise IdentityError(
                f"a {type(self.signing_key).__name__} cannot be an identity's signing key"
            )
        if not key_matches_certificate(self.signing_key, self.certificate):
            raise IdentityError("the private key does not match the certificate")
        if self.encryption_key is None and self.encryption_certificate is None:
            if isinstance(self.signing_key, ed25519.Ed25519PrivateKey):
                raise IdentityError(
                    "an Ed25519 identity needs a separate X25519 encryption key and certificate"
                )
            object.__setattr__(self, "encryption_key", self.signing_key)
            object.__setattr__(self, "encryption_certificate", self.certificate)
        elif self.encryption_key is None or self.encryption_certificate is None:
            raise IdentityError("give both the encryption key and its certificate, or neither")
        if not isinstance(
            self.encryption_key,
            ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | x25519.X25519PrivateKey,
        ):
            raise IdentityError(
                f"a {type(self.encryption_key).__name__} cannot decrypt (encryption key)"
            )
        if not key_matches_certificate(self.encryption_key, self.encryption_certificate):
            raise IdentityError(
                "the encryption private key does not match the encryption certificate"
            )

    # -- what the rest of the product reads ------------------------------------------------

    @property
    def uris(self) -> tuple[str, ...]:
        """Every uniformResourceIdentifier SubjectAltName of the signing certificate."""
        return certificate_uris(self.certificate)

    @property
    def aor(self) -> str:
        """The identity's SIP AoR: the first sip:/sips: SAN URI, in canonical form."""
        for uri in self.uris:
            if uri.lower().startswith(("sip:", "sips:")):
                try:
                    return parse_aor(uri)
                except SipUriError:
                    continue
        raise IdentityError("the certificate names no SIP URI in its SubjectAltName")

    @property
    def sha256(self) -> str:
        """The SHA-256 fingerprint of the signing certificate (lowercase hex)."""
        return certificate_sha256(self.certificate)

    @property
    def has_separate_encryption_key(self) -> bool:
        """True for identities (Ed25519) whose encryption certificate is not the signing one."""
        return self.encryption_certificate != self.certificate

    def decryption_keys(self) -> list[tuple[DecryptionKey, x509.Certificate]]:
        """The (private key, certificate) pairs that can decrypt messages sent to this
        identity: one pair (the signing pair for EC/RSA; the X25519 pair for Ed25519)."""
        assert self.encryption_key is not None and self.encryption_certificate is not None
        return [(self.encryption_key, self.encryption_certificate)]


# -- creation ------------------------------------------------------------------------------


def create_identity(
    aor: str,
    *,
    key_type: str = "p256",
    authority: Authority | None = None,
    days: int = 365,
    now: datetime,
) -> Identity:
    """A new identity for the SIP `aor` (URI or name-addr; stored canonically).

    `key_type` is ``p256`` (default), ``ed25519``, ``rsa2048`` or ``rsa3072``. The
    certificate is issued by `authority`, or self-signed when it is None; it is valid from
    `now` minus one hour for `days` days. An Ed25519 identity also gets an X25519
    encryption key and certificate (issued by the authority, or signed by the Ed25519 key,
    subject CN "<user> (encryption)" so that it is not mistaken for a self-signed one).
    """
    now = require_utc(now)
    if key_type not in KEY_TYPES:
        raise IdentityError(f"unknown key type {key_type!r} (use one of {', '.join(KEY_TYPES)})")
    if days <= 0:
        raise ValueError("days must be positive")
    key = generate_key(key_type)
    if authority is not None:
        certificate = authority.issue(aor, key.public_key(), days=days, now=now)
        chain = (authority.certificate, *authority.chain)
    else:
        certificate = _self_signed(aor, key, days=days, now=now)
        chain = ()
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        return Identity(key, certificate, chain)
    encryption_key = x25519.X25519PrivateKey.generate()
    if authority is not None:
        encryption_certificate = authority.issue(
            aor, encryption_key.public_key(), days=days, now=now
        )
    else:
        encryption_certificate = build_end_entity_certificate(
            aor=aor,
            public_key=encryption_key.public_key(),
            issuer_name=certificate.subject,
            issuer_key=key,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            key_usage=default_key_usage(encryption_key.public_key()),
            subject_cn=f"{_common_name(certificate)} (encryption)",
        )
    return Identity(key, certificate, chain, encryption_key, encryption_certificate)


def _common_name(certificate: x509.Certificate) -> str:
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else "identity"


def _self_signed(aor: str, key: SigningKey, *, days: int, now: datetime) -> x509.Certificate:
    _, user = sip_aor(aor)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)])
    return build_end_entity_certificate(
        aor=aor,
        public_key=key.public_key(),
        issuer_name=name,
        issuer_key=key,
        not_before=now - BACKDATE,
        not_after=now + timedelta(days=days),
    )


# -- files ---------------------------------------------------------------------------------


def save_identity(identity: Identity, folder: Path, passphrase: bytes | None) -> None:
    """Write the identity into `folder` (created owner-only when new).

    ``cert.pem`` = leaf then chain; ``key.pem`` = PKCS#8 PEM, encrypted with `passphrase`
    (BestAvailableEncryption) or unencrypted when it is None; key files are created with
    mode 0600 (never widened, never chmod-ed afterwards) and replace old ones atomically.
    Identities with a separate encryption key also get ``enc-cert.pem`` / ``enc-key.pem``
    (stale ones from an earlier identity are removed otherwise).
    """
    folder = Path(folder)
    make_folder(folder)
    write_private_file(folder / "key.pem", private_key_pem(identity.signing_key, passphrase))
    write_public_file(
        folder / "cert.pem", pem_certificates((identity.certificate, *identity.chain))
    )
    if identity.has_separate_encryption_key:
        assert identity.encryption_certificate is not None
        write_private_file(
            folder / "enc-key.pem", private_key_pem(identity.encryption_key, passphrase)
        )
        write_public_file(
            folder / "enc-cert.pem", pem_certificates((identity.encryption_certificate,))
        )
    else:
        (folder / "enc-key.pem").unlink(missing_ok=True)
        (folder / "enc-cert.pem").unlink(missing_ok=True)


def load_identity(folder: Path, passphrase: bytes | None) -> Identity:
    """Read an identity written by `save_identity`.

    Raises WrongPassphraseError when a key is encrypted and `passphrase` is None or wrong;
    IdentityError when a file is missing or damaged or a key does not match its
    certificate. A passphrase given for an unencrypted key is ignored.
    """
    folder = Path(folder)
    certificates = load_pem_certificates(
        read_file(folder / "cert.pem", error=IdentityError),
        where=str(folder / "cert.pem"),
        error=IdentityError,
    )
    key = load_private_key(
        read_file(folder / "key.pem", error=IdentityError),
        passphrase,
        where=str(folder / "key.pem"),
        error=IdentityError,
    )
    encryption_key = None
    encryption_certificate = None
    if (folder / "enc-cert.pem").exists() or isinstance(key, ed25519.Ed25519PrivateKey):
        encryption_certificate = load_pem_certificates(
            read_file(folder / "enc-cert.pem", error=IdentityError),
            where=str(folder / "enc-cert.pem"),
            error=IdentityError,
        )[0]
        encryption_key = load_private_key(
            read_file(folder / "enc-key.pem", error=IdentityError),
            passphrase,
            where=str(folder / "enc-key.pem"),
            error=IdentityError,
        )
    if not key_matches_certificate(key, certificates[0]):
        raise IdentityError(f"the private key in {folder} does not match its certificate")
    return Identity(
        key,  # type: ignore[arg-type]
        certificates[0],
        tuple(certificates[1:]),
        encryption_key,  # type: ignore[arg-type]
        encryption_certificate,
    )


# -- PKCS#12 -------------------------------------------------------------------------------


def identity_to_pkcs12(identity: Identity, passphrase: bytes, name: str | None = None) -> bytes:
    """The identity as a PKCS#12 file (key, certificate, chain), protected by `passphrase`
    (BestAvailableEncryption: AES-256 + PBKDF2 + HMAC-SHA256 with cryptography 48).

    `name` is the friendly name (default: the AoR). PKCS#12 here holds one private key, so
    an Ed25519 identity (two keys) raises IdentityError: use `save_identity` for it.
    """
    if identity.has_separate_encryption_key:
        raise IdentityError(
            "an Ed25519 identity has two private keys (signing and X25519 encryption); "
            "PKCS#12 export holds one: save the identity as a folder instead"
        )
    if not isinstance(passphrase, bytes) or not passphrase:
        raise PkiError("a PKCS#12 file needs a non-empty passphrase")
    friendly = (name if name is not None else identity.aor).encode("utf-8")
    return pkcs12.serialize_key_and_certificates(
        friendly,
        identity.signing_key,
        identity.certificate,
        list(identity.chain) or None,
        serialization.BestAvailableEncryption(passphrase),
    )


def identity_from_pkcs12(data: bytes, passphrase: bytes) -> Identity:
    """An identity from PKCS#12 bytes (ours or, for example, ``openssl pkcs12 -export``).

    The extra certificates become the chain, ordered nearest issuer first. Raises
    WrongPassphraseError for a wrong passphrase, IdentityError when the file holds no key
    or certificate or is not PKCS#12.
    """
    try:
        bundle = pkcs12.load_pkcs12(data, passphrase)
    except ValueError as exc:
        if _looks_like_pkcs12(data):
            raise WrongPassphraseError(
                "the PKCS#12 file could not be opened: wrong passphrase"
            ) from exc
        raise IdentityError(f"not a readable PKCS#12 file: {exc}") from exc
    except Exception as exc:
        raise IdentityError(f"not a usable PKCS#12 file: {exc}") from exc
    if bundle.key is None or bundle.cert is None:
        raise IdentityError("the PKCS#12 file holds no private key with its certificate")
    leaf = bundle.cert.certificate
    extra = [c.certificate for c in bundle.additional_certs]
    return Identity(bundle.key, leaf, tuple(_order_chain(leaf, extra)))  # type: ignore[arg-type]


def _looks_like_pkcs12(data: bytes) -> bool:
    """True when `data` is a DER PFX structure (so a load failure means the passphrase)."""
    try:
        pfx = asn1_pkcs12.Pfx.load(data)
        _ = pfx["version"].native
        _ = pfx["auth_safe"]["content_type"].native
        return True
    except Exception:
        return False


def _order_chain(
    leaf: x509.Certificate, certificates: list[x509.Certificate]
) -> list[x509.Certificate]:
    """`certificates` reordered so that each one issued the one before (nearest issuer
    first, by name only: this is ordering, not validation); the rest keep their order."""
    remaining = list(certificates)
    ordered: list[x509.Certificate] = []
    current = leaf
    while True:
        if current.issuer == current.subject:
            break
        nxt = next((c for c in remaining if c.subject == current.issuer), None)
        if nxt is None:
            break
        ordered.append(nxt)
        remaining.remove(nxt)
        current = nxt
    return ordered + remaining


# -- certificates from bytes ---------------------------------------------------------------


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates from bytes: PEM (one or many), a DER certificate, or a DER/PEM PKCS#7
    ``certs-only`` bundle (what a 493 response carries). IdentityError when none is found."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("load_certificates takes bytes")
    data = bytes(data)
    if b"-----BEGIN CERTIFICATE-----" in data:
        return load_pem_certificates(data, where="the PEM data", error=IdentityError)
    if b"-----BEGIN PKCS7-----" in data:
        try:
            return list(pkcs7.load_pem_pkcs7_certificates(data))
        except ValueError as exc:
            raise IdentityError(f"the PKCS#7 data holds no readable certificate: {exc}") from exc
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    try:
        certificates = list(pkcs7.load_der_pkcs7_certificates(data))
    except ValueError as exc:
        raise IdentityError("no certificate found (expected PEM, DER or PKCS#7)") from exc
    if not certificates:
        raise IdentityError("the PKCS#7 data holds no certificate")
    return certificates
