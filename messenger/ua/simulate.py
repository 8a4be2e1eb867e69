"""What a usability study needs to show on the receiving side, made for real.

Each case builds a SIP MESSAGE with real `protect()` calls and throwaway identities from
`messenger.pki`, then feeds the raw bytes through `UserAgent.receive_bytes`, the same
incoming path as the network. Nothing is faked in the report: the receiving agent judges
every message itself.

Cases (the state the receiver should see):

``sender-mismatch``   signed by a valid certificate for someone else than the sender
``unverified-new``    from a stranger whose certificate is self-signed
``key-changed``       from the contact, signed with a new key while another one is pinned
``bad-signature``     the signed content was altered after signing
``tampered``          the encrypted message was altered in transit (the receiver refuses
                      it with 400; the report travels with the refusal)
``expired``           signed by the contact with a certificate that expired
``unsigned``          no signature, from a contact who always signs
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from cryptography import x509

from messenger.im.cpim import CpimMessage, new_message_id
from messenger.pki.authority import Authority
from messenger.pki.identity import Identity, create_identity
from messenger.sip.ids import new_branch, new_call_id, new_tag
from messenger.sip.message import SipRequest
from messenger.smime.mime import MimeEntity
from messenger.smime.protect import protect

__all__ = ["CASES", "Simulation", "Simulator"]

CPIM_TYPE = "message/cpim"


@dataclass(frozen=True)
class Simulation:
    """One simulated case: its key, the menu label, and the state it should produce."""

    key: str
    label: str
    expected: str  # the state the receiver should report (authenticity, or confidentiality)
    text: str


CASES: tuple[Simulation, ...] = (
    Simulation(
        "sender-mismatch",
        "Message signed by someone else (sender mismatch)",
        "sender-mismatch",
        "Please send the invoice to my new account.",
    ),
    Simulation(
        "unverified-new",
        "Message from a stranger with a self-signed certificate",
        "unverified-new",
        "Hi, we have not talked before: this is Carol.",
    ),
    Simulation(
        "key-changed",
        "Contact's key changed",
        "key-changed",
        "I have a new phone, this is my new key.",
    ),
    Simulation(
        "bad-signature",
        "Altered message (signature does not match)",
        "bad-signature",
        "Meet me at 10 o'clock at the station.",
    ),
    Simulation(
        "tampered",
        "Encrypted message altered in transit (refused)",
        "tampered",
        "The code for the door is 4711.",
    ),
    Simulation(
        "expired",
        "Message signed with an expired certificate",
        "expired",
        "Old key, still signing.",
    ),
    Simulation(
        "unsigned",
        "Unsigned message from a contact who always signs",
        "unsigned",
        "No signature on this one, trust me.",
    ),
)
_BY_KEY = {c.key: c for c in CASES}


class Simulator:
    """Crafts the cases for one receiving agent; `peer` is the contact they pretend to be.

    `authority` (the demo CA) issues the certificates that should chain to a trusted
    issuer (sender-mismatch, expired); without it those are self-signed.
    """

    def __init__(
        self,
        agent,
        *,
        peer: str,
        authority: Authority | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.agent = agent
        self.peer = peer
        self.authority = authority
        self._clock = clock or (lambda: datetime.now(UTC))
        # Answers to injected requests go here and are dropped.
        self._sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sink.bind(("127.0.0.1", 0))
        self._sink.setblocking(False)
        self._identities: dict[str, Identity] = {}

    def close(self) -> None:
        self._sink.close()

    @property
    def local(self) -> str:
        return str(self.agent.aor)

    # -- identities ------------------------------------------------------------------------

    def _identity(self, key: str, aor: str, *, ca: bool, now: datetime, days: int = 30):
        found = self._identities.get(key)
        if found is None:
            authority = self.authority if ca else None
            found = create_identity(aor, authority=authority, days=days, now=now)
            self._identities[key] = found
        return found

    # -- building --------------------------------------------------------------------------

    def _cpim(self, sender: str, text: str, now: datetime) -> bytes:
        return CpimMessage.build(
            sender,
            [self.local],
            text.encode("utf-8"),
            "text/plain;charset=utf-8",
            when=now,
            message_id=new_message_id(),
            disposition=(),
        ).to_bytes()

    def _recipient(self) -> list[x509.Certificate]:
        certificate = self.agent.identity.encryption_certificate
        return [certificate] if certificate is not None else []

    def body(self, key: str) -> tuple[str, MimeEntity]:
        """The sender and the protected body of one case (no SIP around it)."""
        case = _BY_KEY.get(key)
        if case is None:
            raise ValueError(f"unknown simulation {key!r}; choose one of {', '.join(_BY_KEY)}")
        now = self._clock()
        sender = self.peer
        if key == "sender-mismatch":
            mallory = self._identity("mallory", "sip:mallory@example.test", ca=True, now=now)
            entity = protect(
                self._cpim(sender, case.text, now),
                content_type=CPIM_TYPE,
                signer=mallory,
                recipients=self._recipient(),
                signing_time=now,
            )
        elif key == "unverified-new":
            sender = "sip:carol@example.test"
            carol = self._identity("carol", sender, ca=False, now=now)
            entity = protect(
                self._cpim(sender, case.text, now),
                content_type=CPIM_TYPE,
                signer=carol,
                recipients=self._recipient(),
                signing_time=now,
            )
        elif key == "key-changed":
            new = create_identity(self.peer, now=now)
            entity = protect(
                self._cpim(sender, case.text, now),
                content_type=CPIM_TYPE,
                signer=new,
                recipients=self._recipient(),
                signing_time=now,
            )
        elif key == "bad-signature":
            signer = self._identity("peer", self.peer, ca=True, now=now)
            text = case.text
            signed = protect(
                self._cpim(sender, text, now),
                content_type=CPIM_TYPE,
                signer=signer,
                signing_time=now,
            )
            der = signed.decoded_body()
            altered = text.replace("10", "11").encode()
            assert text.encode() in der, "the signed content is encapsulated"
            der = der.replace(text.encode(), altered, 1)
            # the altered SignedData, encrypted to the receiver as its own MIME entity
            entity = protect(
                der,
                content_type=signed.header("Content-Type") or "application/pkcs7-mime",
                recipients=self._recipient(),
                signing_time=now,
            )
        elif key == "tampered":
            signer = self._identity("peer", self.peer, ca=True, now=now)
            sealed = protect(
                self._cpim(sender, case.text, now),
                content_type=CPIM_TYPE,
                signer=signer,
                recipients=self._recipient(),
                signing_time=now,
            )
            der = bytearray(sealed.decoded_body())
            der[-1] ^= 0x01  # the last byte of the GCM tag: the integrity check fails
            entity = MimeEntity.build(
                sealed.header("Content-Type") or "application/pkcs7-mime", bytes(der)
            )
        elif key == "expired":
            old = now - timedelta(days=40)
            stale = self._identity("expired", self.peer, ca=True, now=old, days=10)
            entity = protect(
                self._cpim(sender, case.text, now),
                content_type=CPIM_TYPE,
                signer=stale,
                recipients=self._recipient(),
                signing_time=now,
            )
        else:  # unsigned
            entity = MimeEntity.build(CPIM_TYPE, self._cpim(sender, case.text, now))
        return sender, entity

    def request(self, key: str, *, transport: str, port: int) -> bytes:
        """The raw SIP MESSAGE of one case."""
        sender, entity = self.body(key)
        headers = [
            ("Via", f"SIP/2.0/{transport.upper()} 127.0.0.1:{port};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<{sender}>;tag={new_tag()}"),
            ("To", f"<{self.local}>"),
            ("Call-ID", new_call_id("simulate.invalid")),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", entity.header("Content-Type") or CPIM_TYPE),
        ]
        for name in ("Content-Disposition", "Content-Transfer-Encoding"):
            value = entity.header(name)
            if value is not None:
                headers.append((name, value))
        return SipRequest("MESSAGE", self.local, headers, entity.body).to_bytes()

    def prepare(self, key: str) -> None:
        """What must hold on the receiving side before a case is sent.

        A key change is a change against a pin: for ``key-changed`` the contact's current
        certificate is pinned first when nothing is (recorded as a decision like any other).
        """
        if key == "key-changed":
            current = self.agent.peer_certificate(self.peer)
            if self.agent.trust.pinned(self.peer) is None and current is not None:
                self.agent.decide_trust(self.peer, current, "trust")

    async def inject(self, key: str) -> bytes:
        """Build one case (keys and signatures in a worker thread, so a window does not
        wait on them) and feed it to the agent; returns the bytes fed."""
        transport = "udp" if "udp" in self.agent.addresses else next(iter(self.agent.addresses))
        port = self._sink.getsockname()[1]
        self.prepare(key)
        data = await asyncio.get_running_loop().run_in_executor(
            None, partial(self.request, key, transport=transport, port=port)
        )
        await self.agent.receive_bytes(data, transport=transport, remote=("127.0.0.1", port))
        return data
