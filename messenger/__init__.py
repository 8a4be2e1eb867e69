"""End-to-end protected SIP messaging: RFC 8591 S/MIME over SIP MESSAGE and MSRP."""

__version__ = "0.1.0"
