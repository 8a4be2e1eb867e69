"""Fixtures of the user-agent tests: a small PKI and in-process agents on loopback.

Tests are plain functions that run a coroutine with the `run` fixture; the `agents` fixture gives an
`Agents` factory to use as ``async with agents() as net:``, which starts agents on free
loopback ports, records their events, and stops them all at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from messenger.pki.authority import Authority, create_authority
from messenger.pki.identity import Identity, create_identity
from messenger.ua.agent import AccountConfig, Listen, UserAgent
from messenger.ua.events import Event


@dataclass
class Pki:
    ca: Authority
    alice: Identity
    bob: Identity
    carol: Identity
    now: datetime


@pytest.fixture(scope="session")
def pki() -> Pki:
    now = datetime.now(UTC)
    ca = create_authority("Agent Test CA", now=now)
    return Pki(
        ca=ca,
        alice=create_identity("sip:alice@example.test", authority=ca, now=now),
        bob=create_identity("sip:bob@example.test", authority=ca, now=now),
        carol=create_identity("sip:carol@example.test", authority=ca, now=now),
        now=now,
    )


def issue_tls_server(ca: Authority, now: datetime, names=("127.0.0.1", "localhost")):
    """A TLS server certificate (and key) for loopback, issued by ``ca``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="session")
def tls_server(pki):
    """(certificate, key) of a TLS server on 127.0.0.1 / localhost, issued by the test CA."""
    return issue_tls_server(pki.ca, pki.now)


def _run(coro, timeout: float = 60.0):
    """Run one test coroutine on a fresh loop, bounded in time."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@dataclass
class Recorder:
    """The events of one agent, with a way to wait for one."""

    events: list[Event] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    async def wait(
        self, kind: str, predicate: Callable[[Event], bool] = lambda e: True, timeout: float = 10
    ) -> Event:
        async def find() -> Event:
            while True:
                for event in self.events:
                    if event.kind == kind and predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(find(), timeout)


class Agents:
    """Starts agents for one test and stops them all when the block ends."""

    def __init__(self, root: Path, pki: Pki) -> None:
        self.root = root
        self.pki = pki
        self.started: list[UserAgent] = []
        self.recorders: dict[str, Recorder] = {}

    async def __aenter__(self) -> Agents:
        return self

    async def __aexit__(self, *exc) -> None:
        for agent in reversed(self.started):
            await agent.stop()

    async def add(
        self,
        user: str,
        *,
        listens: tuple[str, ...] = ("udp", "tcp"),
        identity: Identity | None = None,
        start: bool = True,
        clock=None,
        **config,
    ) -> UserAgent:
        identity = identity or getattr(self.pki, user)
        config.setdefault("trust_anchors", [self.pki.ca.certificate])
        account = AccountConfig(
            aor=f"sip:{user}@example.test",
            identity=identity,
            profile=self.root / f"{user}-{len(self.started)}",
            listens=[Listen(t, "127.0.0.1", 0) for t in listens],
            **config,
        )
        agent = UserAgent(account, clock=clock)
        recorder = Recorder()
        agent.subscribe(recorder)
        self.recorders[user] = recorder
        agent.recorder = recorder  # type: ignore[attr-defined]
        if start:
            await agent.start()
        self.started.append(agent)
        return agent

    @staticmethod
    def link(a: UserAgent, b: UserAgent, transport: str | None = None) -> None:
        """Direct mode: let ``a`` reach ``b`` at its listening address."""
        kind = transport or next(iter(b.addresses))
        host, port = b.addresses[kind]
        text = f"{transport}:{host}:{port}" if transport else f"{host}:{port}"
        a.config.contacts[b.aor] = text


async def udp_exchange(address: tuple[str, int], data: bytes, timeout: float = 5.0) -> bytes:
    """Send one datagram to ``address`` and return the first datagram that comes back."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, reply: bytes, addr) -> None:
            if not answer.done():
                answer.set_result(reply)

    transport, _ = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
    try:
        transport.sendto(data, address)
        return await asyncio.wait_for(answer, timeout)
    finally:
        transport.close()


@pytest.fixture
def udp() -> Callable:
    """``await udp(address, datagram)``: one request, the first datagram back."""
    return udp_exchange


@pytest.fixture
def run() -> Callable:
    """``run(coroutine)``: run one test coroutine on a fresh loop, bounded in time."""
    return _run


@pytest.fixture
def agents(pki, tmp_path) -> Callable[[], Agents]:
    return lambda: Agents(tmp_path, pki)
