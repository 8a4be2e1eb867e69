"""Random identifiers of SIP: Via branch (with the RFC 3261 magic cookie), tags, Call-IDs.

Randomness is a parameter: pass a seeded `random.Random` in tests; the default is the
`secrets` module, as these values must be unguessable on the wire.
"""

from __future__ import annotations

import random
import secrets

__all__ = ["BRANCH_MAGIC_COOKIE", "new_branch", "new_call_id", "new_tag", "random_hex"]

#: RFC 3261 section 8.1.1.7: every branch of an RFC 3261 element starts with this.
BRANCH_MAGIC_COOKIE = "z9hG4bK"


def random_hex(nbytes: int, rng: random.Random | None = None) -> str:
    """``nbytes`` random bytes in hex, from ``rng`` or else from `secrets`."""
    if rng is None:
        return secrets.token_hex(nbytes)
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()


def new_branch(rng: random.Random | None = None) -> str:
    """A fresh Via branch: ``z9hG4bK`` followed by 128 random bits in hex."""
    return BRANCH_MAGIC_COOKIE + random_hex(16, rng)


def new_tag(rng: random.Random | None = None) -> str:
    """A fresh From/To tag (64 random bits in hex; section 19.3 asks for 32 at least)."""
    return random_hex(8, rng)


def new_call_id(host: str | None = None, rng: random.Random | None = None) -> str:
    """A fresh Call-ID (128 random bits), ``@host`` appended when ``host`` is given."""
    value = random_hex(16, rng)
    return f"{value}@{host}" if host else value
