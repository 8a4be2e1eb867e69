"""Exception types of the PKI layer: every failure of `messenger.pki` is a `PkiError`.

::

    PkiError
    +-- WrongPassphraseError   an encrypted key (file or PKCS#12) and no or the wrong passphrase
    +-- IdentityError          missing or corrupt identity files, a key that does not match
    |                          its certificate, an unusable AoR or key type
    +-- TrustStoreError        a trust store document that cannot be read
    +-- AuthorityError         missing or corrupt CA files, an unusable CA key type
"""

from __future__ import annotations

__all__ = [
    "AuthorityError",
    "IdentityError",
    "PkiError",
    "TrustStoreError",
    "WrongPassphraseError",
]


class PkiError(Exception):
    """Base class of every error raised by `messenger.pki`."""


class WrongPassphraseError(PkiError):
    """A private key is encrypted and the passphrase is missing or wrong."""


class IdentityError(PkiError):
    """An identity (key + certificate) cannot be created, read or used."""


class TrustStoreError(PkiError):
    """The trust store (or its JSON document) is unusable."""


class AuthorityError(PkiError):
    """The demo certificate authority cannot be created, read or used."""
