"""Events handed up by the SIP transaction layer (RFC 3261 section 17) to its user.

Small frozen dataclasses, drained with ``events()`` from a transaction or from the
`messenger.sip.transaction.TransactionLayer`. ``remote`` is whatever the transport passed
in to say where bytes came from (for example ``(host, port)`` or a connection id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import SipRequest, SipResponse
    from .transaction import TransactionKey

__all__ = [
    "MessageDiscarded",
    "RequestReceived",
    "ResponseReceived",
    "SipEvent",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportFailed",
    "UnmatchedResponse",
]


@dataclass(frozen=True)
class SipEvent:
    """Base class of every event of the SIP core."""


@dataclass(frozen=True)
class ResponseReceived(SipEvent):
    """A client transaction got a response for its request (provisional or final)."""

    key: TransactionKey
    response: SipResponse


@dataclass(frozen=True)
class TransactionTimeout(SipEvent):
    """Timer F fired: no final response came (the TU treats it as a 408)."""

    key: TransactionKey


@dataclass(frozen=True)
class TransportFailed(SipEvent):
    """The transport reported that it could not send for this transaction."""

    key: TransactionKey


@dataclass(frozen=True)
class TransactionTerminated(SipEvent):
    """The transaction reached the Terminated state and was forgotten."""

    key: TransactionKey


@dataclass(frozen=True)
class RequestReceived(SipEvent):
    """A new request arrived. ``key`` names its server transaction (answer through
    ``TransactionLayer.send_response``); it is None for ACK, which has no transaction."""

    key: TransactionKey | None
    request: SipRequest
    remote: object


@dataclass(frozen=True)
class UnmatchedResponse(SipEvent):
    """A response that matches no client transaction (section 18.1.2: a UA drops it)."""

    response: SipResponse
    remote: object


@dataclass(frozen=True)
class MessageDiscarded(SipEvent):
    """Bytes that did not parse; ``answered`` tells whether a 400 was sent back."""

    reason: str
    remote: object
    answered: bool
