"""Exception types of the MSRP core: every failure of `messenger.msrp` is an `MsrpError`.

::

    MsrpError
    +-- MsrpParseError       malformed (400) or oversized (413) frame, header or URI
        +-- MsrpByteRangeError   a Byte-Range that is malformed, inconsistent (400) or
                                 announces more than the receiver accepts (413)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MsrpByteRangeError", "MsrpError", "MsrpParseError"]


class MsrpError(Exception):
    """Base class of every error raised by `messenger.msrp`."""


class MsrpParseError(MsrpError):
    """Received MSRP data cannot be accepted.

    ``status_code`` is the MSRP status to answer with when there is a request to answer
    (RFC 4975 section 10.5): 400 when the data is malformed, 413 when it is larger than
    this receiver accepts; None when no answer applies.

    `messenger.msrp.frame.FrameParser` also sets ``transaction_id`` (when the start line
    could be read, so a 400 or 413 can be addressed) and ``frames``: the complete frames
    that preceded the bad one in the same ``feed`` call, which the caller still owns.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = 400,
        transaction_id: str | None = None,
        frames: Sequence[object] = (),
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.transaction_id = transaction_id
        self.frames: tuple[object, ...] = tuple(frames)


class MsrpByteRangeError(MsrpParseError):
    """A Byte-Range header is malformed, contradicts another chunk, or is too large."""
