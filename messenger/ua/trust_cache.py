"""A trust store that remembers its verdicts for a short while.

A busy conversation brings the same signer certificate again and again; validating its
path each time costs more than decrypting and verifying the message itself. `CachingTrustStore`
keeps each verdict for `VERDICT_TTL` seconds, keyed by everything the verdict depends on:
the certificate, the intermediates offered, the sender, the usage, the RSA floor, and where
the moment of receipt and the signing time fall relative to the certificate's validity
(inside it, before it, after it, a signing time in the future). Any change to the store
(anchors, CRLs, pins, distrust, learned certificates) forgets every verdict at once, so a
user's decision takes effect on the next message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from messenger.pki.trust import SIGNING_CLOCK_SKEW, TrustStore
from messenger.pki.verdict import TrustVerdict

__all__ = ["VERDICT_TTL", "CachingTrustStore"]

#: Seconds a verdict is reused (CRLs and path validity change on a scale of hours).
VERDICT_TTL = 30.0
_MAX_ENTRIES = 4096


def _position(moment: datetime | None, certificate: x509.Certificate) -> str:
    if moment is None:
        return "none"
    if moment < certificate.not_valid_before_utc:
        return "before"
    if moment > certificate.not_valid_after_utc:
        return "after"
    return "inside"


class CachingTrustStore(TrustStore):
    """A `TrustStore` whose `evaluate` answers repeated questions from a cache."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._verdicts: dict[tuple, tuple[float, TrustVerdict]] = {}
        self._monotonic = monotonic

    def forget_verdicts(self) -> None:
        self._verdicts.clear()

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
            certificate.public_bytes(Encoding.DER),
            tuple(c.public_bytes(Encoding.DER) for c in intermediates),
            sender,
            usage,
            min_rsa_bits,
            _position(at, certificate),
            signing_position,
        )
        now = self._monotonic()
        cached = self._verdicts.get(key)
        if cached is not None and cached[0] > now:
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
        if len(self._verdicts) >= _MAX_ENTRIES:
            self._verdicts.clear()
        self._verdicts[key] = (now + VERDICT_TTL, verdict)
        return verdict


def _forgetting(name: str):
    method = getattr(TrustStore, name)

    def wrapper(self: CachingTrustStore, *args, **kwargs):
        self._verdicts.clear()
        return method(self, *args, **kwargs)

    wrapper.__name__ = name
    wrapper.__doc__ = method.__doc__
    return wrapper


for _name in (
    "add_anchor",
    "remove_anchor",
    "add_crl",
    "pin",
    "unpin",
    "distrust",
    "learn",
    "record_decision",
):
    setattr(CachingTrustStore, _name, _forgetting(_name))
