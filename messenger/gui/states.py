"""The one table from report states to what the window shows.

Every confidentiality and authenticity state of the security report (trust-model.md)
maps to an icon, short words, an accessible text a screen reader reads, and a colour
family. Colour is never the only signal: the words and the icon shape differ per state.
The window renders these; it never decides a state itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from messenger.pki.verdict import Authenticity
from messenger.smime.report import Confidentiality

__all__ = [
    "AUTHENTICITY",
    "CONFIDENTIALITY",
    "DELIVERY",
    "FAMILY_COLOURS",
    "StateStyle",
    "authenticity_style",
    "confidentiality_style",
    "delivery_words",
]

#: Colour families: (light palette colour, dark palette colour). Mid tones that keep
#: contrast on both; the words and icons carry the meaning on their own.
FAMILY_COLOURS: dict[str, tuple[str, str]] = {
    "green": ("#1b7f3b", "#5fd38a"),
    "amber": ("#9a5b00", "#f0b44c"),
    "red": ("#b3261e", "#ff8a80"),
    "grey": ("#5f6368", "#b0b4b8"),
    "neutral": ("#3c5a99", "#9db8f0"),
}


@dataclass(frozen=True)
class StateStyle:
    """How one state looks and reads."""

    state: str
    icon: str  # file stem under resources/icons/
    words: str  # short label next to the icon
    accessible: str  # what a screen reader says
    family: str  # a key of FAMILY_COLOURS
    symbol: str  # one character drawn when the SVG icon is not available

    def colour(self, dark: bool = False) -> str:
        light, night = FAMILY_COLOURS[self.family]
        return night if dark else light


def _a(state: Authenticity, icon: str, words: str, accessible: str, family: str, symbol: str):
    return StateStyle(str(state), icon, words, accessible, family, symbol)


AUTHENTICITY: dict[str, StateStyle] = {
    s.state: s
    for s in (
        _a(
            Authenticity.VERIFIED,
            "auth-verified",
            "Verified sender",
            "Verified: valid signature by the sender, certificate from an issuer you trust",
            "green",
            "✓",
        ),
        _a(
            Authenticity.VERIFIED_PINNED,
            "auth-pinned",
            "Verified (pinned key)",
            "Verified with the certificate you pinned for this contact",
            "green",
            "✓",
        ),
        _a(
            Authenticity.UNVERIFIED_NEW,
            "auth-unverified",
            "Not yet verified",
            "Unverified: valid signature, but the certificate is new and not trusted yet; "
            "compare fingerprints",
            "amber",
            "?",
        ),
        _a(
            Authenticity.KEY_CHANGED,
            "auth-key-changed",
            "Key changed",
            "Warning: this contact signed with a different certificate than the one you pinned",
            "amber",
            "!",
        ),
        _a(
            Authenticity.SENDER_MISMATCH,
            "auth-mismatch",
            "Signed by someone else",
            "Danger: the signature is by a certificate for someone other than the sender",
            "red",
            "≠",
        ),
        _a(
            Authenticity.EXPIRED,
            "auth-expired",
            "Signer's certificate expired",
            "Danger: the signer's certificate had expired",
            "red",
            "⌛",
        ),
        _a(
            Authenticity.NOT_YET_VALID,
            "auth-expired",
            "Signer's certificate not yet valid",
            "Danger: the signer's certificate was not yet valid",
            "red",
            "⌛",
        ),
        _a(
            Authenticity.REVOKED,
            "auth-revoked",
            "Signer's certificate revoked",
            "Danger: the issuer revoked the signer's certificate",
            "red",
            "⊘",
        ),
        _a(
            Authenticity.REVOCATION_UNKNOWN,
            "auth-revocation-unknown",
            "Verified, revocation not checked",
            "Verified sender; whether the certificate was revoked could not be checked",
            "green",
            "✓",
        ),
        _a(
            Authenticity.BAD_SIGNATURE,
            "auth-bad-signature",
            "Altered: signature does not match",
            "Danger: the signature does not match, the content was altered",
            "red",
            "✗",
        ),
        _a(
            Authenticity.WEAK_ALGORITHM,
            "auth-weak",
            "Weak algorithm",
            "Danger: signed with an algorithm that is no longer safe",
            "red",
            "✗",
        ),
        _a(
            Authenticity.UNSIGNED,
            "auth-unsigned",
            "Not signed",
            "Not signed: nothing shows who wrote this message",
            "grey",
            "–",
        ),
    )
}

#: The unsigned state when the contact is known to sign: same icon, louder words.
UNSIGNED_EXPECTED = StateStyle(
    "unsigned",
    "auth-unsigned",
    "Not signed (this contact signs)",
    "Warning: not signed, although this contact signs messages",
    "red",
    "–",
)


def _c(state: Confidentiality, icon: str, words: str, accessible: str, family: str, symbol: str):
    return StateStyle(str(state), icon, words, accessible, family, symbol)


CONFIDENTIALITY: dict[str, StateStyle] = {
    s.state: s
    for s in (
        _c(
            Confidentiality.ENCRYPTED,
            "conf-encrypted",
            "Encrypted",
            "Encrypted for you with authenticated encryption",
            "neutral",
            "E",
        ),
        _c(
            Confidentiality.ENCRYPTED_LEGACY,
            "conf-legacy",
            "Encrypted (legacy mode)",
            "Encrypted for you, but with a legacy mode that does not detect changes",
            "amber",
            "E",
        ),
        _c(
            Confidentiality.PLAINTEXT,
            "conf-plaintext",
            "Not encrypted",
            "Not encrypted: anyone on the path could read it",
            "grey",
            "P",
        ),
        _c(
            Confidentiality.UNDECIPHERABLE,
            "conf-undecipherable",
            "Cannot decrypt",
            "Encrypted, but not to any key you hold: it cannot be read here",
            "red",
            "?",
        ),
        _c(
            Confidentiality.TAMPERED,
            "conf-tampered",
            "Tampered: nothing shown",
            "Danger: the encrypted message was altered in transit; nothing of it is shown",
            "red",
            "✗",
        ),
    )
}

#: Delivery states of outgoing messages (store.DELIVERY_STATES) in words.
DELIVERY: dict[str, str] = {
    "pending": "Sending…",
    "sent": "Sent",
    "delivered": "Delivered",
    "displayed": "Read",
    "failed": "Not delivered",
    "refused": "Refused",
    "received": "",
}

#: What this window applied to a message it sent (outgoing messages carry no report).
SENT_SIGNED = StateStyle(
    "sent-signed", "auth-verified", "Signed by you", "Signed by you", "green", "✓"
)
SENT_UNSIGNED = StateStyle(
    "sent-unsigned", "auth-unsigned", "Not signed", "Sent without a signature", "grey", "–"
)


def sent_styles(signed: bool, encrypted: bool) -> tuple[StateStyle, StateStyle]:
    """(confidentiality, authenticity) styles of a message this window sent."""
    conf = CONFIDENTIALITY["encrypted" if encrypted else "plaintext"]
    return conf, SENT_SIGNED if signed else SENT_UNSIGNED


_UNKNOWN_AUTH = StateStyle(
    "unknown", "auth-unsigned", "No report", "No security report for this message", "grey", "–"
)
_UNKNOWN_CONF = StateStyle(
    "unknown",
    "conf-plaintext",
    "No report",
    "No security report for this message",
    "grey",
    "–",
)


def authenticity_style(state: str | None, *, expected_to_sign: bool = False) -> StateStyle:
    """The style of an authenticity state; an unknown word gives a neutral grey style."""
    if state == Authenticity.UNSIGNED and expected_to_sign:
        return UNSIGNED_EXPECTED
    if state is None:
        return _UNKNOWN_AUTH
    return AUTHENTICITY.get(state, _UNKNOWN_AUTH)


def confidentiality_style(state: str | None) -> StateStyle:
    if state is None:
        return _UNKNOWN_CONF
    return CONFIDENTIALITY.get(state, _UNKNOWN_CONF)


def delivery_words(state: str) -> str:
    return DELIVERY.get(state, state)
