"""Private helpers of `messenger.pki`: key generation, PEM key files (owner-only), time checks.

Not part of the public API; `identity` and `authority` share these.
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from .errors import PkiError, WrongPassphraseError

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | x25519.X25519PrivateKey
)
PublicKey = (
    ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | x25519.X25519PublicKey
)

KEY_TYPES = ("p256", "ed25519", "rsa2048", "rsa3072")


def require_utc(value: datetime, what: str = "now") -> datetime:
    """`value` converted to UTC; a naive datetime is refused (time is always explicit)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC)")
    return value.astimezone(UTC)


def random_serial() -> int:
    """A random positive serial number of at most 159 bits (RFC 5280 4.1.2.2: <= 20 octets)."""
    while True:
        serial = secrets.randbits(159)
        if serial > 0:
            return serial


def generate_key(
    key_type: str,
) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | (ed25519.Ed25519PrivateKey):
    """A fresh signing key: ``p256``, ``p384``, ``ed25519``, ``rsa2048`` or ``rsa3072``."""
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type in ("rsa2048", "rsa3072"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    raise ValueError(f"unknown key type {key_type!r} (expected one of {', '.join(KEY_TYPES)})")


def signature_hash(key: object) -> hashes.HashAlgorithm | None:
    """The hash to sign certificates and CRLs with, for a signing key (None for Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size >= 521:
            return hashes.SHA512()
        if key.curve.key_size >= 384:
            return hashes.SHA384()
        return hashes.SHA256()
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    raise PkiError(f"a {type(key).__name__} cannot sign certificates")


def public_key_der(key: object) -> bytes:
    """The SubjectPublicKeyInfo DER of a public key (used to compare keys)."""
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches_certificate(private_key: object, certificate: x509.Certificate) -> bool:
    """True when `private_key` is the private half of the certificate's public key."""
    try:
        mine = public_key_der(private_key.public_key())  # type: ignore[attr-defined]
        theirs = public_key_der(certificate.public_key())
    except Exception:
        return False
    return mine == theirs


def private_key_pem(key: object, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM, encrypted with `passphrase` (BestAvailableEncryption) when given."""
    encryption: serialization.KeySerializationEncryption
    if passphrase is None:
        encryption = serialization.NoEncryption()
    else:
        if not isinstance(passphrase, bytes) or not passphrase:
            raise PkiError("the passphrase must be non-empty bytes (use None for no encryption)")
        encryption = serialization.BestAvailableEncryption(passphrase)
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path`, the file being owner-only (0600) from its creation.

    The bytes go to a fresh temporary file opened with O_CREAT | O_EXCL and mode 0600 in
    the same folder, which then atomically replaces `path`: no moment exists where the
    key is on disk with wider permissions, and a crash never leaves a half-written key.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_public_file(path: Path, data: bytes) -> None:
    """Write a public file (certificates, CRLs) atomically."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_folder(folder: Path) -> None:
    """Create `folder` (owner-only when it is new)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def _is_encrypted_pem(data: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def load_private_key(
    data: bytes, passphrase: bytes | None, *, where: str, error: type[PkiError]
) -> PrivateKey:
    """Read a PEM private key; `WrongPassphraseError` for a missing or wrong passphrase,
    `error` (IdentityError, AuthorityError) when the file is not a usable key."""
    encrypted = _is_encrypted_pem(data)
    if encrypted and passphrase is None:
        raise WrongPassphraseError(
            f"the private key in {where} is encrypted: a passphrase is needed to open it"
        )
    if encrypted and b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data:
        # Tell a damaged file apart from a wrong passphrase: the PKCS#8 envelope must parse.
        try:
            body = data.split(b"-----BEGIN ENCRYPTED PRIVATE KEY-----", 1)[1]
            body = body.split(b"-----END ENCRYPTED PRIVATE KEY-----", 1)[0]
            info = asn1_keys.EncryptedPrivateKeyInfo.load(base64.b64decode(body, validate=False))
            _ = info.native
        except Exception as exc:
            raise error(f"the private key file {where} is damaged: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise WrongPassphraseError(f"wrong passphrase for the private key in {where}") from exc
        raise error(f"{where} does not hold a readable private key: {exc}") from exc
    except TypeError as exc:  # pragma: no cover - guarded by the checks above
        raise error(f"{where}: {exc}") from exc
    except Exception as exc:
        raise error(f"{where} does not hold a usable private key: {exc}") from exc
    if not isinstance(
        key,
        ec.EllipticCurvePrivateKey
        | rsa.RSAPrivateKey
        | ed25519.Ed25519PrivateKey
        | x25519.X25519PrivateKey,
    ):
        raise error(f"{where} holds a {type(key).__name__}, which this program does not use")
    return key


def load_pem_certificates(
    data: bytes, *, where: str, error: type[PkiError]
) -> list[x509.Certificate]:
    """All certificates of a PEM file, in file order; `error` when there is none."""
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise error(f"{where} holds no readable certificate: {exc}") from exc
    if not certificates:
        raise error(f"{where} holds no certificate")
    return certificates


def pem_certificates(certificates: list[x509.Certificate] | tuple[x509.Certificate, ...]) -> bytes:
    """Certificates as concatenated PEM."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def read_file(path: Path, *, error: type[PkiError]) -> bytes:
    """The bytes of `path`, or `error` naming the missing file."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise error(f"{path} is missing") from exc
    except OSError as exc:
        raise error(f"{path} cannot be read: {exc}") from exc
