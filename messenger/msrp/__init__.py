"""MSRP core (RFC 4975, RFC 4976 relays, RFC 6135 connection setup), sans-IO.

Frames and their incremental parser (`messenger.msrp.frame`), URIs (`messenger.msrp.uri`),
chunking and reassembly by Byte-Range (`messenger.msrp.chunking`), random identifiers
(`messenger.msrp.ids`) and the session endpoint (`messenger.msrp.session`). Stdlib only:
no sockets, no asyncio, no clock.
"""

from .chunking import Reassembler, Reassembly, chunk_message
from .errors import MsrpByteRangeError, MsrpError, MsrpParseError
from .frame import (
    ByteRange,
    FrameParser,
    MsrpFrame,
    MsrpRequest,
    MsrpResponse,
    Status,
    parse_frame,
    response_to,
)
from .ids import new_message_id, new_session_id, new_transaction_id
from .session import MsrpSession
from .uri import MsrpUri, parse_path

__all__ = [
    "ByteRange",
    "FrameParser",
    "MsrpByteRangeError",
    "MsrpError",
    "MsrpFrame",
    "MsrpParseError",
    "MsrpRequest",
    "MsrpResponse",
    "MsrpSession",
    "MsrpUri",
    "Reassembler",
    "Reassembly",
    "Status",
    "chunk_message",
    "new_message_id",
    "new_session_id",
    "new_transaction_id",
    "parse_frame",
    "parse_path",
    "response_to",
]
