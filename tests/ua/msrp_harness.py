"""Two user-agent ends of an MSRP session on loopback, for the session-mode tests.

Imported by tests/ua/test_msrp_session.py, test_sessions.py, test_receiver_cancel.py,
tests/net/test_msrp_transport.py, tests/interop/test_kamailio_msrp.py and
test_kamailio_msrp_receiver_cancel.py (each puts this folder on sys.path).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from messenger.msrp.uri import MsrpUri
from messenger.net.msrp_transport import MsrpListener
from messenger.pki.authority import create_authority
from messenger.pki.identity import Identity, create_identity
from messenger.pki.trust import TrustStore
from messenger.ua.events import Event, MessageReceived, TransferProgress
from messenger.ua.session import ChatSession, new_local_uri

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"
MB = 1024 * 1024


def random_file(folder: Path, name: str, size: int) -> Path:
    """A file of ``size`` random bytes named ``name`` in ``folder``."""
    path = folder / name
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, MB))
            out.write(block)
            left -= len(block)
    return path


async def agent_pair(net, tmp_path: Path, *, listens=("tcp",), alice_kw=None, **kw):
    """Alice and Bob as user agents of ``net`` (the `Agents` of tests/ua/conftest.py),
    each reaching the other over ``listens[0]`` and knowing the other's certificate (what
    is sent is signed and encrypted); Bob keeps received files in ``bob-downloads``."""
    kw.setdefault("crls", [net.pki.ca.last_crl])
    alice = await net.add("alice", listens=listens, **kw, **(alice_kw or {}))
    bob = await net.add("bob", listens=listens, downloads=tmp_path / "bob-downloads", **kw)
    net.link(alice, bob, listens[0])
    net.link(bob, alice, listens[0])
    alice.set_peer_certificate(bob.aor, net.pki.bob.certificate)
    bob.set_peer_certificate(alice.aor, net.pki.alice.certificate)
    return alice, bob


@dataclass
class Pki:
    alice: Identity
    bob: Identity
    trust_alice: TrustStore
    trust_bob: TrustStore


def make_pki() -> Pki:
    now = dt.datetime.now(dt.UTC)
    ca = create_authority("MSRP Test CA", now=now)
    alice = create_identity(ALICE, authority=ca, now=now)
    bob = create_identity(BOB, authority=ca, now=now)
    trust_a, trust_b = TrustStore(), TrustStore()
    crl = ca.crl(now=now - dt.timedelta(minutes=1))
    for trust in (trust_a, trust_b):
        trust.add_anchor(ca.certificate)
        trust.add_crl(crl)
    return Pki(alice, bob, trust_a, trust_b)


def tls_contexts(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for 127.0.0.1 and a client context that
    trusts exactly that certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "msrp-cert.pem", folder / "msrp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


@dataclass
class Side:
    """One end: its session, the events it emitted, and futures for what tests wait on."""

    session: ChatSession | None = None
    events: list[Event] = field(default_factory=list)
    received: asyncio.Queue[MessageReceived] = field(default_factory=asyncio.Queue)
    ended: asyncio.Queue[TransferProgress] = field(default_factory=asyncio.Queue)

    def emit(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, MessageReceived):
            self.received.put_nowait(event)
        if isinstance(event, TransferProgress) and event.state != "running":
            self.ended.put_nowait(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@dataclass
class Pair:
    alice: Side
    bob: Side
    listener: MsrpListener

    @property
    def a(self) -> ChatSession:
        assert self.alice.session is not None
        return self.alice.session

    @property
    def b(self) -> ChatSession:
        assert self.bob.session is not None
        return self.bob.session

    async def close(self) -> None:
        for side in (self.alice, self.bob):
            if side.session is not None:
                await side.session.close()
        await self.listener.close()


async def open_pair(
    pki: Pki,
    tmp_path: Path,
    *,
    tls: bool = False,
    relay: MsrpUri | None = None,
    alice_kw: dict[str, Any] | None = None,
    bob_kw: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> Pair:
    """Alice active, Bob passive on a listener of his own (the usual answerer side);
    with ``relay`` Alice goes through it (AUTH, then its Use-Path)."""
    server_ctx = client_ctx = None
    if tls:
        server_ctx, client_ctx = tls_contexts(tmp_path / "tls")
    listener = await MsrpListener.start("127.0.0.1", 0, ssl=server_ctx)
    host, port = listener.address
    bob_uri = new_local_uri(host, port, secure=tls)
    alice_uri = new_local_uri("127.0.0.1", 9, secure=tls)  # active: never listened on
    alice, bob = Side(), Side()
    alice_path = ((relay,) if relay is not None else ()) + (alice_uri,)
    bob.session = ChatSession(
        **{
            "peer_certificate": pki.alice.certificate,
            "downloads": tmp_path / "bob-downloads",
            "temp_dir": tmp_path,
            **(bob_kw or {}),
        },
        local_aor=BOB,
        peer_aor=ALICE,
        identity=pki.bob,
        trust=pki.trust_bob,
        local_uri=bob_uri,
        remote_path=alice_path,
        active=False,
        listener=listener,
        emit=bob.emit,
    )
    alice.session = ChatSession(
        **{"peer_certificate": pki.bob.certificate, "temp_dir": tmp_path, **(alice_kw or {})},
        local_aor=ALICE,
        peer_aor=BOB,
        identity=pki.alice,
        trust=pki.trust_alice,
        local_uri=alice_uri,
        remote_path=(bob_uri,),
        active=True,
        relay=relay,
        ssl=client_ctx,
        emit=alice.emit,
    )
    passive = asyncio.ensure_future(bob.session.open(timeout))
    await alice.session.open(timeout)
    await passive
    return Pair(alice, bob, listener)
