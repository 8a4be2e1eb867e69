"""Instant-message formats below the security layer: CPIM (RFC 3862) and IMDN (RFC 5438).

Sans-IO and stdlib-only: time and randomness are parameters. See `messenger.im.cpim` and
`messenger.im.imdn`.
"""

from .cpim import CpimMessage, format_datetime, new_message_id, parse_cpim, parse_datetime, uri_of
from .errors import CpimError, ImdnError, ImError
from .imdn import Imdn, build_imdn, build_imdn_cpim, imdn_of, imdn_requested, parse_imdn

__all__ = [
    "CpimError",
    "CpimMessage",
    "ImError",
    "Imdn",
    "ImdnError",
    "build_imdn",
    "build_imdn_cpim",
    "format_datetime",
    "imdn_of",
    "imdn_requested",
    "new_message_id",
    "parse_cpim",
    "parse_datetime",
    "parse_imdn",
    "uri_of",
]
