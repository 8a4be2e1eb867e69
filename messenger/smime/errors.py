"""The S/MIME core's error types: every failure it raises is one of these."""

from __future__ import annotations


class SmimeError(Exception):
    """Base of every error raised by messenger.smime."""


class MalformedError(SmimeError):
    """The input is not a MIME entity or CMS structure we can read."""


class UnsupportedError(SmimeError):
    """A well-formed structure uses a content type or algorithm we do not implement."""


class WeakAlgorithmError(SmimeError):
    """The structure uses an algorithm the policy rejects (SHA-1, short RSA, 3DES, RC2...)."""


class NoRecipientKeyError(SmimeError):
    """The message is encrypted, but to no key we hold (answered with 493 Undecipherable)."""


class TamperedError(SmimeError):
    """Decryption failed its integrity check: GCM tag, key unwrap or CBC padding."""


class ProtectError(SmimeError):
    """We cannot build the protected message asked for (no usable key or recipient)."""
