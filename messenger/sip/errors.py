"""Exception types of the SIP core: every failure caused by data from the wire is a `SipError`.

Programming errors (a header value with CR/LF, a status outside 100..699) raise
`ValueError` or `TypeError` instead. The hierarchy is small on purpose::

    SipError
    +-- SipParseError      malformed or oversized SIP message / stream data
    +-- SipUriError        malformed SIP or SIPS URI (also raised for name-addr input)
    +-- SipDigestError     unusable digest challenge or credentials
    +-- SipTransactionError  a transaction was used in a way RFC 3261 section 17 forbids
"""

from __future__ import annotations

__all__ = [
    "SipDigestError",
    "SipError",
    "SipParseError",
    "SipTransactionError",
    "SipUriError",
]


class SipError(Exception):
    """Base class of every error raised by `messenger.sip`."""


class SipParseError(SipError):
    """A SIP message (or a stream of them) could not be parsed.

    ``partial_request`` is set when the start line was a readable request and the headers
    needed to answer it (Via, From, To, Call-ID, CSeq) could be read: a UA can then answer
    ``400 Bad Request`` to it (see `messenger.sip.message.best_effort_response_400`).
    It is typed loosely here to keep this module free of imports; it holds a
    `messenger.sip.message.SipRequest` whose body may be empty or truncated.
    """

    def __init__(self, message: str, *, partial_request: object | None = None) -> None:
        super().__init__(message)
        self.partial_request = partial_request


class SipUriError(SipError):
    """A SIP or SIPS URI (or the name-addr around it) is malformed."""


class SipDigestError(SipError):
    """A digest authentication challenge or response cannot be used."""


class SipTransactionError(SipError):
    """A transaction was driven against the rules of RFC 3261 section 17."""
