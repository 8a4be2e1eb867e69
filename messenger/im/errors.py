"""Errors of the instant-message layer: CPIM (RFC 3862) and IMDN (RFC 5438).

Every failure to parse or build a ``message/cpim`` or ``message/imdn+xml`` body raises one
of these; nothing in ``messenger.im`` lets another exception type escape on bad input.
"""

from __future__ import annotations


class ImError(Exception):
    """Base class of every error raised by ``messenger.im``."""


class CpimError(ImError):
    """A ``message/cpim`` body (RFC 3862) is malformed or cannot be built as asked."""


class ImdnError(ImError):
    """A ``message/imdn+xml`` body (RFC 5438) is malformed or cannot be built as asked."""
