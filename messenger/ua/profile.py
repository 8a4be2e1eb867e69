"""The user's own profile on disk: the identity folder and the account settings.

Layout of a profile folder::

    identity/      cert.pem, key.pem (encrypted with the user's passphrase)
    account.json   the account settings below (owner-only: it may hold the SIP password)
    trust/         trust anchors added in the wizard (PEM)
    received/      files received in sessions, each written whole (or not at all)
    history.sqlite3  the message store (messenger.ua.store)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from messenger.msrp.errors import MsrpError
from messenger.msrp.uri import MsrpUri
from messenger.pki.identity import Identity, load_certificates
from messenger.ua.agent import AccountConfig, Listen

__all__ = [
    "AccountSettings",
    "ProfileError",
    "account_config",
    "check_msrp_relay",
    "default_profile_dir",
    "load_settings",
    "save_settings",
]

ACCOUNT_FILE = "account.json"
IDENTITY_DIR = "identity"
TRUST_DIR = "trust"
DOWNLOADS_DIR = "received"


class ProfileError(Exception):
    """The profile cannot be read or written; the message says what to do."""


def data_dir() -> Path:
    """The messenger's folder in the platform's data folder (``~/.local/share/messenger``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "messenger"


def default_profile_dir() -> Path:
    """``$MESSENGER_PROFILE``, else the window's profile in `data_dir`."""
    env = os.environ.get("MESSENGER_PROFILE")
    if env:
        return Path(env)
    return data_dir() / "profile"


@dataclass
class AccountSettings:
    """What the wizard and the account settings dialog edit."""

    aor: str
    mode: str = "direct"  # direct | registrar | proxy
    registrar: str = ""
    proxy: str = ""
    transport: str = "udp"  # udp | tcp | tls
    listen: list[str] = field(default_factory=lambda: ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"])
    username: str = ""
    password: str = ""
    contacts: dict[str, str] = field(default_factory=dict)
    require_signatures: bool = False
    encrypt: bool = True
    sign: bool = True
    #: an RFC 4976 relay every MSRP session goes through (``msrps://host:port;tcp``)
    msrp_relay: str = ""

    def validate(self) -> None:
        """Raise ValueError, in words, when a setting cannot work."""
        if not self.aor.lower().startswith(("sip:", "sips:")) or "@" not in self.aor:
            raise ValueError(f"{self.aor!r} is not a SIP address: write it as sip:name@domain")
        if self.mode not in ("direct", "registrar", "proxy"):
            raise ValueError(f"unknown connection mode {self.mode!r}")
        if self.mode == "registrar" and not self.registrar:
            raise ValueError("give the registrar's SIP URI, or choose direct mode")
        if self.mode == "proxy" and not self.proxy:
            raise ValueError("give the outbound proxy's SIP URI, or choose direct mode")
        if self.transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"unknown transport {self.transport!r}")
        if not self.listen:
            raise ValueError("give at least one listen address, such as udp:0.0.0.0:5060")
        for text in self.listen:
            Listen.parse(text)
        for peer, where in self.contacts.items():
            if not peer.lower().startswith(("sip:", "sips:")):
                raise ValueError(f"contact {peer!r} is not a SIP address")
            Listen.parse(where)
        if self.msrp_relay:
            check_msrp_relay(self.msrp_relay)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountSettings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "aor" not in known:
            raise ProfileError("the account settings name no SIP address (aor)")
        return cls(**known)


def parse_msrp_relay(text: str) -> MsrpUri:
    """An MSRP relay URI (``msrp://host:port;tcp`` or ``msrps://...``, no session id);
    ValueError in words otherwise. The one check of a relay setting, wherever it comes from."""
    example = "msrp://HOST:PORT;tcp (msrps:// for TLS), such as msrps://relay.example.com:2855;tcp"
    try:
        uri = MsrpUri.parse(text.strip())
    except MsrpError as exc:
        raise ValueError(
            f"the MSRP relay {text.strip()!r} is not an MSRP URI ({exc}); write it as {example}"
        ) from None
    if uri.session_id:
        raise ValueError(
            f"the MSRP relay {text.strip()!r} names a session ({uri.session_id}); a relay is "
            f"written without one, as {example}"
        )
    return uri


def check_msrp_relay(text: str) -> str:
    """The MSRP relay URI as the sessions will use it; ValueError in words otherwise."""
    return str(parse_msrp_relay(text))


def save_settings(folder: Path, settings: AccountSettings) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / ACCOUNT_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(settings), handle, indent=2)
    os.replace(tmp, path)


def load_settings(folder: Path) -> AccountSettings | None:
    """The saved settings, or None when the profile was never set up (first run)."""
    path = folder / ACCOUNT_FILE
    if not path.exists() or not (folder / IDENTITY_DIR / "cert.pem").exists():
        return None
    try:
        return AccountSettings.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ProfileError(
            f"the account settings in {path} cannot be read ({exc}); fix or remove the file "
            "to run the first-run wizard again"
        ) from exc


def trust_anchors(folder: Path) -> list[x509.Certificate]:
    found: list[x509.Certificate] = []
    trust = folder / TRUST_DIR
    if trust.is_dir():
        for path in sorted(trust.glob("*.pem")):
            found.extend(load_certificates(path.read_bytes()))
    return found


def add_trust_anchor(folder: Path, certificate_pem: bytes, name: str) -> None:
    trust = folder / TRUST_DIR
    trust.mkdir(parents=True, exist_ok=True, mode=0o700)
    (trust / f"{name}.pem").write_bytes(certificate_pem)


def _with_transport(uri: str, transport: str) -> str:
    """The server URI with the chosen transport, unless the URI names one itself."""
    if transport == "udp" or ";transport=" in uri.lower():
        return uri
    return f"{uri};transport={transport}"


def account_config(folder: Path, settings: AccountSettings, identity: Identity) -> AccountConfig:
    """The user agent's configuration for this profile."""
    registrar = proxy = None
    if settings.mode == "registrar":
        registrar = _with_transport(settings.registrar, settings.transport)
    elif settings.mode == "proxy":
        proxy = _with_transport(settings.proxy, settings.transport)
    return AccountConfig(
        aor=settings.aor,
        identity=identity,
        profile=folder,
        listens=[Listen.parse(t) for t in settings.listen],
        registrar=registrar,
        proxy=proxy,
        username=settings.username or None,
        password=settings.password or None,
        contacts=dict(settings.contacts),
        trust_anchors=trust_anchors(folder),
        sign=settings.sign,
        encrypt=settings.encrypt,
        require_signatures=settings.require_signatures,
        msrp_relay=check_msrp_relay(settings.msrp_relay) if settings.msrp_relay else None,
        downloads=folder / DOWNLOADS_DIR,
    )
