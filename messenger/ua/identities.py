"""The user's own identity, as the faces set it up: create one, issue one from a CA folder,
import a PKCS#12 file, save it encrypted with a passphrase and open it again.

Every failure is an `IdentityError` whose message says what went wrong and what to do;
the subclasses let a face react to the common cases (`WrongPassphrase`: ask again,
`AddressMismatch`: the file is for someone else, `InvalidAddress` and `PassphraseProblem`:
fix the form). The certificate helpers a window needs to show fingerprints
(`certificate_sha256`, `format_fingerprint`) are here too, so that a face needs nothing
from `messenger.pki` itself.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from messenger.pki import identity as _pki_identity
from messenger.pki.authority import load_authority
from messenger.pki.errors import PkiError, WrongPassphraseError
from messenger.pki.identity import Identity
from messenger.pki.trust import format_fingerprint
from messenger.pki.verdict import certificate_sha256
from messenger.sip.errors import SipError
from messenger.sip.uri import parse_aor

__all__ = [
    "MIN_PASSPHRASE",
    "AddressMismatch",
    "Identity",
    "IdentityError",
    "InvalidAddress",
    "PassphraseProblem",
    "WrongPassphrase",
    "certificate_sha256",
    "check_new_passphrase",
    "create_identity",
    "format_fingerprint",
    "import_pkcs12",
    "issue_from_ca",
    "load_identity",
    "save_identity",
    "validate_aor",
]

#: The shortest passphrase accepted for a new private key.
MIN_PASSPHRASE = 8


class IdentityError(Exception):
    """An identity cannot be created, read or saved; the message says what to do."""


class WrongPassphrase(IdentityError):
    """A key (the user's, the CA's or a PKCS#12 file's) did not open with the passphrase."""


class AddressMismatch(IdentityError):
    """The certificate is for another SIP address than the one asked for."""


class InvalidAddress(IdentityError):
    """The text is not a SIP address of the form sip:name@domain."""


class PassphraseProblem(IdentityError):
    """A new passphrase is too short, or the two copies typed differ."""


def validate_aor(text: str) -> str:
    """The SIP address as the SIP layer reads it (RFC 3261 URI rules; parameters and
    brackets dropped); `InvalidAddress` when it is not sip:name@domain."""
    text = text.strip()
    try:
        aor = parse_aor(text)
    except SipError as exc:
        raise InvalidAddress(
            f"{text!r} is not a SIP address ({exc}): write it as sip:name@domain"
        ) from None
    if "@" not in aor:
        raise InvalidAddress(f"{text!r} is not a SIP address: write it as sip:name@domain")
    return aor


def check_new_passphrase(passphrase: str, repeat: str) -> bytes:
    """The passphrase for a new key as bytes; `PassphraseProblem` when the two copies
    differ or it is shorter than `MIN_PASSPHRASE` characters."""
    if passphrase != repeat:
        raise PassphraseProblem("the two passphrases differ: type the same passphrase twice")
    if len(passphrase) < MIN_PASSPHRASE:
        raise PassphraseProblem(
            f"choose a passphrase of at least {MIN_PASSPHRASE} characters: it protects "
            "your private key"
        )
    return passphrase.encode("utf-8")


def create_identity(aor: str, *, now: datetime) -> Identity:
    """A new self-signed identity (P-256 key) for ``aor``."""
    aor = validate_aor(aor)
    try:
        return _pki_identity.create_identity(aor, now=now)
    except (PkiError, ValueError) as exc:
        raise IdentityError(f"no identity could be created for {aor}: {exc}") from exc


def issue_from_ca(
    aor: str, folder: str | Path, ca_passphrase: bytes | None, *, now: datetime
) -> Identity:
    """A new identity for ``aor`` whose certificate is issued by the CA kept in ``folder``
    (``cert.pem`` and ``key.pem``, the key opened with ``ca_passphrase``)."""
    aor = validate_aor(aor)
    text = str(folder).strip()
    if not text:
        raise IdentityError("choose the CA folder (with cert.pem and key.pem)")
    path = Path(text)
    if not path.is_dir():
        raise IdentityError(f"the CA folder {path} does not exist: choose the folder of the CA")
    try:
        authority = load_authority(path, ca_passphrase or None)
    except WrongPassphraseError as exc:
        raise WrongPassphrase(
            f"the CA key in {path} did not open: {_words(exc)}; type the CA's passphrase again"
        ) from exc
    except PkiError as exc:
        raise IdentityError(f"the CA in {path} cannot be used: {_words(exc)}") from exc
    try:
        return _pki_identity.create_identity(aor, authority=authority, now=now)
    except (PkiError, ValueError) as exc:
        raise IdentityError(f"the CA in {path} could not issue a certificate: {exc}") from exc


def import_pkcs12(path: str | Path, passphrase: bytes, *, aor: str) -> Identity:
    """The identity in a PKCS#12 file (``.p12``); its certificate must name ``aor``."""
    aor = validate_aor(aor)
    path = Path(str(path).strip())
    if str(path) == ".":  # nothing chosen (Path("") is ".")
        raise IdentityError("choose the PKCS#12 file (.p12) to import")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IdentityError(
            f"cannot read {path}: {exc.strerror or exc}; choose a file you can read"
        ) from exc
    try:
        identity = _pki_identity.identity_from_pkcs12(data, passphrase)
    except WrongPassphraseError as exc:
        raise WrongPassphrase(
            f"{path.name} did not open: {_words(exc)}; type the file's passphrase again"
        ) from exc
    except PkiError as exc:
        raise IdentityError(f"{path.name} cannot be imported: {_words(exc)}") from exc
    if aor.lower() not in (u.lower() for u in identity.uris):
        named = ", ".join(identity.uris) or "no SIP address"
        raise AddressMismatch(
            f"the certificate in {path.name} is for {named}, not {aor}: import the file "
            f"made for {aor}, or use the address the certificate names"
        )
    return identity


def save_identity(identity: Identity, folder: str | Path, passphrase: bytes) -> None:
    """Write the identity into ``folder``, the private key encrypted with ``passphrase``
    and readable by its owner only."""
    folder = Path(folder)
    try:
        _pki_identity.save_identity(identity, folder, passphrase)
    except (OSError, PkiError) as exc:
        raise IdentityError(
            f"your identity could not be written to {folder}: {_words(exc)}; choose a "
            "folder you can write to"
        ) from exc


def load_identity(folder: str | Path, passphrase: bytes | None) -> Identity:
    """Open the identity saved in ``folder``; `WrongPassphrase` when the key is encrypted
    and ``passphrase`` is missing or wrong."""
    folder = Path(folder)
    try:
        return _pki_identity.load_identity(folder, passphrase)
    except WrongPassphraseError as exc:
        raise WrongPassphrase(
            f"the passphrase does not open your key in {folder}: {_words(exc)}"
        ) from exc
    except (OSError, PkiError) as exc:
        raise IdentityError(
            f"your identity in {folder} cannot be read: {_words(exc)}; restore it from a "
            "backup, or move the profile away to set up a new one"
        ) from exc


def _words(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
