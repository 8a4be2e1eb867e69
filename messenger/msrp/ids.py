"""Random MSRP identifiers: transaction ids, session ids and Message-IDs (RFC 4975).

RFC 4975 asks for identifiers that are hard to guess: transaction ids and Message-IDs with
at least 64 bits of randomness (section 7.1) and session ids of MSRP URIs with at least
80 bits (section 14.1). All three are drawn from the letters and digits only, which fit
every grammar involved (``ident``, the ``unreserved`` characters of a URI) and need no
escaping. Pass ``rng`` (a `random.Random`) to pin them in tests; by default `secrets` is
used.
"""

from __future__ import annotations

import secrets
from random import Random

__all__ = ["new_message_id", "new_session_id", "new_transaction_id"]

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _draw(length: int, rng: Random | None) -> str:
    choice = secrets.choice if rng is None else rng.choice
    return "".join(choice(_ALPHABET) for _ in range(length))


def new_transaction_id(rng: Random | None = None) -> str:
    """A fresh transaction id: 16 alphanumerics, about 95 bits (``ident`` allows 4 to 32)."""
    return _draw(16, rng)


def new_message_id(rng: Random | None = None) -> str:
    """A fresh MSRP Message-ID: 16 alphanumerics, about 95 bits."""
    return _draw(16, rng)


def new_session_id(rng: Random | None = None) -> str:
    """A fresh session-id for an MSRP URI: 20 alphanumerics, about 119 bits."""
    return _draw(20, rng)
