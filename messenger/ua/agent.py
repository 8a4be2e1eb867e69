"""The headless user agent: one account, pager-mode messaging, events for its faces.

`UserAgent` binds the listeners of its account (`Listen`), registers when a registrar is
configured (`messenger.ua.registration`), sends protected MESSAGEs (`send_text`) and
receives them through the pipelines of `messenger.ua.pipeline`. Everything it learns or
does is an event of `messenger.ua.events`, delivered synchronously and in order on the
event loop thread to every subscriber.

Routing: with an outbound ``proxy`` every request goes there with the peer's AoR as the
Request-URI. Without one (direct mode) it goes to the address configured for the peer in
``contacts``, or to the host and port of the AoR itself. A MESSAGE larger than 1300 bytes
never goes over UDP (RFC 8591 section 7): it moves to TCP, or, when only UDP reaches the
peer, the message goes over an MSRP session instead.

Session mode (`messenger.ua.sessions`, reached through ``agent.sessions``): files
(`send_file`), content larger than 64 KiB and messages sent with ``session=True`` go over
an MSRP session set up with INVITE and SDP along the same route; incoming sessions are
answered there too.

Nothing is lost: an outgoing message is stored as pending before anything is sent (what a
previous run left pending goes out again, once, when the agent has started), and an
incoming one is committed with its report before the 200 goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from messenger.im.cpim import CpimMessage, new_message_id, parse_cpim
from messenger.im.errors import ImError
from messenger.im.imdn import IMDN_CONTENT_TYPE, build_imdn_cpim, imdn_of, imdn_requested
from messenger.net.sip_transport import (
    UDP_MAX_REQUEST,
    Peer,
    SipTransport,
    SipTransportError,
    Trace,
    advertised_host,
    client_tls_context,
    server_tls_context,
)
from messenger.pki.identity import Identity
from messenger.pki.trust import CachingTrustStore, TrustStore
from messenger.pki.verdict import Authenticity, certificate_sha256
from messenger.sip.address import Address
from messenger.sip.digest import build_authorization, parse_challenges, select_challenge
from messenger.sip.errors import SipError
from messenger.sip.events import (
    MessageDiscarded,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    TransactionTimeout,
    TransportFailed,
)
from messenger.sip.headers import Headers
from messenger.sip.ids import new_branch, new_call_id, new_tag
from messenger.sip.message import SipRequest, SipResponse
from messenger.sip.transaction import TransactionKey
from messenger.sip.uri import SipUri, parse_aor, uri_equal
from messenger.smime.errors import SmimeError
from messenger.smime.mime import MimeEntity
from messenger.smime.protect import unprotect
from messenger.ua import pipeline
from messenger.ua.commit import IncomingCommits
from messenger.ua.events import (
    CapabilityLearned,
    CertificateLearned,
    DeliveryChanged,
    Event,
    MessageReceived,
    MessageRefused,
    MessageStored,
    Notice,
    Response,
    SipTrace,
)
from messenger.ua.store import (
    PEER_HAS_CERTIFICATE,
    MessageStore,
    RawRequest,
    StoreError,
    UnknownMessageError,
)

__all__ = [
    "AccountConfig",
    "Listen",
    "SendResult",
    "UserAgent",
]

logger = logging.getLogger(__name__)

USER_AGENT = "messenger/0.1"
#: Seconds before delivery notifications are tried again for a peer that had no route.
NO_ROUTE_RETRY = 30.0
SMIME_CAPABILITY = "smime"
SIGNS_CAPABILITY = "signs"
ALLOW = ("MESSAGE", "OPTIONS")
#: Content larger than this never goes in a MESSAGE: it is carried over an MSRP session.
PAGER_MAX_CONTENT = 64 * 1024
TOO_LARGE_FOR_UDP = "Too Large For UDP"

#: Signers whose certificate is remembered to encrypt to (never one that is expired,
#: revoked, distrusted, weak or for someone else).
_LEARNABLE = frozenset(
    {
        Authenticity.VERIFIED,
        Authenticity.VERIFIED_PINNED,
        Authenticity.REVOCATION_UNKNOWN,
        Authenticity.UNVERIFIED_NEW,
        Authenticity.KEY_CHANGED,
    }
)


@dataclass(frozen=True)
class Listen:
    """One listening address: ``udp:127.0.0.1:5070``, ``tcp:[::1]:0``, ``tls:host:5061``."""

    transport: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        transport, sep, rest = text.partition(":")
        transport = transport.lower()
        if not sep or transport not in ("udp", "tcp", "tls"):
            raise ValueError(
                f"{text!r} is not a listen address: write TRANSPORT:HOST:PORT with TRANSPORT "
                "udp, tcp or tls (for example udp:127.0.0.1:5070)"
            )
        host, port = _host_port(rest, text)
        return cls(transport, host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def _host_port(text: str, whole: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{whole!r} needs HOST:PORT with a port from 0 to 65535")
    return host, int(port_text)


@dataclass
class AccountConfig:
    """What one account needs; see the module docstring for routing."""

    aor: str
    identity: Identity
    profile: Path
    listens: list[Listen]
    registrar: str | None = None
    proxy: str | None = None
    username: str | None = None
    password: str | None = None
    contacts: dict[str, str] = field(default_factory=dict)
    trust_anchors: list[x509.Certificate] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    tls_trust: list[x509.Certificate] = field(default_factory=list)
    sign: bool = True
    encrypt: bool = True
    require_signatures: bool = False
    replay_window: timedelta = timedelta(minutes=10)
    register_expires: int = 600
    msrp_relay: str | None = None
    downloads: Path | None = None
    #: certificate and key a TLS listener presents (needed only to listen on TLS)
    tls_certificate: x509.Certificate | None = None
    tls_chain: list[x509.Certificate] = field(default_factory=list)
    tls_key: object | None = None
    display_name: str | None = None
    #: send the stored pending outgoing messages again once started (after REGISTER)
    resend_pending: bool = True


@dataclass(frozen=True)
class SendResult:
    message_id: str
    status: int
    reason_phrase: str
    delivered: bool
    explanation: str
    encrypted: bool
    signed: bool

    def to_json(self) -> dict:
        return {
            "message_id": self.message_id,
            "status": self.status,
            "reason_phrase": self.reason_phrase,
            "delivered": self.delivered,
            "explanation": self.explanation,
            "encrypted": self.encrypted,
            "signed": self.signed,
        }


@dataclass
class _Outcome:
    """The final answer to a request we sent (response None: timeout or transport error)."""

    response: SipResponse | None
    status: int
    phrase: str
    problem: str = ""
    #: the request that got this answer (the last attempt); None when nothing was sent
    request: SipRequest | None = None


def _outside_parts(parts: tuple[MimeEntity, ...]) -> list[tuple[str, bytes]]:
    """The unprotected sibling parts as (content type, content) pairs to store."""
    found: list[tuple[str, bytes]] = []
    for part in parts:
        try:
            content = part.decoded_body()
        except SmimeError:
            content = bytes(part.body)
        found.append((str(part.content_type), content))
    return found


def _without_root(identity: Identity) -> Identity:
    chain = tuple(c for c in identity.chain if c.issuer != c.subject)
    if len(chain) == len(identity.chain):
        return identity
    return dataclasses.replace(identity, chain=chain)


class UserAgent:
    """A SIP user agent for one account (see the module docstring)."""

    def __init__(
        self, config: AccountConfig, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.config = config
        self._clock = clock or (lambda: datetime.now(UTC))
        self.aor = parse_aor(config.aor)
        self.identity = config.identity
        # What goes into our signatures: the certificate and its intermediates; the root
        # is left out (a receiver validates against its own anchors), which keeps requests
        # under the UDP size limit more often.
        self._signer = _without_root(config.identity)
        self.store: MessageStore = MessageStore.open(Path(config.profile))
        self.trust: TrustStore = self._load_trust()
        self.addresses: dict[str, tuple[str, int]] = {}
        self._subscribers: list[Callable[[Event], None]] = []
        self._pending: dict[TransactionKey, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._method_handlers: dict[str, Callable[[RequestReceived], None]] = {}
        self._sip_listeners: list[Callable[[SipEvent], None]] = []
        self._peer_certs: dict[str, x509.Certificate | None] = {}
        self._capabilities: dict[tuple[str, str], bool | None] = {}
        self._learned: dict[str, x509.Certificate | None] = {}
        self._no_route: dict[str, float] = {}  # peer -> when to try notifying it again
        # ids of outgoing messages being delivered now (never sent twice at once)
        self._in_flight: set[str] = set()
        # the bytes of the message the transport is handing over (see `_on_trace`)
        self._last_in: bytes | None = None
        # received messages are committed by a writer of their own (group commit)
        self._commits = IncomingCommits(MessageStore(self.store.path))
        self._own_sha256 = certificate_sha256(self.identity.certificate)
        self._from_tag = new_tag()
        self.registration = None
        self.transport = SipTransport(
            on_event=self._on_sip_event,
            on_trace=self._on_trace,
            client_tls=self._client_tls(),
            server_tls=self._server_tls(),
        )
        self._started = False
        self._stopped = False
        from messenger.ua.sessions import SessionManager

        #: session mode: INVITE/SDP and MSRP sessions (files, large messages)
        self.sessions = SessionManager(self)

    # -- configuration pieces ------------------------------------------------------------

    def _load_trust(self) -> TrustStore:
        data = self.store.load_trust()
        trust = CachingTrustStore() if data is None else CachingTrustStore.from_json(data)
        for anchor in self.config.trust_anchors:
            trust.add_anchor(anchor)
        for crl in self.config.crls:
            trust.add_crl(crl)
        return trust

    def _save_trust(self) -> None:
        self.store.save_trust(self.trust.to_json())

    def _client_tls(self) -> ssl.SSLContext:
        return client_tls_context(list(self.config.tls_trust) or list(self.config.trust_anchors))

    def _server_tls(self) -> ssl.SSLContext | None:
        cert, key = self.config.tls_certificate, self.config.tls_key
        if cert is None or key is None:
            return None
        return server_tls_context(cert, key, self.config.tls_chain)

    # -- events --------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` with every event; returns the function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Give ``event`` to every subscriber, in order; one that fails is logged and does
        not stop the others (nor the agent)."""
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                logger.exception("an event subscriber failed on %s", event.kind)

    def now(self) -> datetime:
        return self._clock()

    def _notice(self, level: str, text: str, peer: str | None = None) -> None:
        self.emit(Notice(self.now(), level=level, text=text, peer=peer))

    def _on_trace(self, trace: Trace) -> None:
        if trace.direction == "in":
            # The transport reports the bytes, then hands the events they caused over
            # before reading on: a request's handler finds here the bytes it came in.
            self._last_in = trace.data
        if not self._subscribers:
            return
        end = trace.data.find(b"\r\n")
        summary = trace.data[: end if end >= 0 else 120].decode("utf-8", "replace")
        self.emit(
            SipTrace(
                self.now(),
                direction=trace.direction,
                transport=trace.peer.transport,
                remote=f"{trace.peer.host}:{trace.peer.port}",
                summary=summary,
                raw=trace.data,
            )
        )

    # -- life ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every listener, then REGISTER when a registrar is configured."""
        if self._started:
            return
        self._started = True
        if not self.config.listens:
            raise ValueError("an agent needs at least one listen address")
        try:
            for listen in self.config.listens:
                bound = await self._bind(listen)
                self.addresses[listen.transport] = bound
        except SipTransportError:
            await self.transport.close()
            raise
        if self.config.registrar:
            from messenger.ua.registration import Registration

            self.registration = Registration(self)
            await self.registration.start()
        if self.config.resend_pending:
            self._spawn(self._resend_at_start())

    async def _resend_at_start(self) -> None:
        """What a previous run left pending goes out again, once (outcomes are events)."""
        try:
            await self.resend_pending()
        except StoreError as exc:
            self._notice("error", f"the pending messages could not be sent again: {exc}")

    async def _bind(self, listen: Listen) -> tuple[str, int]:
        """Bind one listener. Port 0 next to a listener already bound on the same host
        tries that port first: UDP and TCP on one port is what peers expect when they
        move a large request from UDP to TCP."""
        if listen.port == 0:
            for host, port in self.addresses.values():
                if host == listen.host:
                    with contextlib.suppress(SipTransportError):
                        return await self.transport.listen(listen.transport, host, port)
        return await self.transport.listen(listen.transport, listen.host, listen.port)

    async def stop(self) -> None:
        """Un-REGISTER (Expires 0), close the sockets and the store."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sessions.stop(), 10)
        if self.registration is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.registration.stop(), 5)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self.transport.close()
        for future in self._pending.values():
            if not future.done():
                future.cancel()
        self._pending.clear()
        await self._commits.idle()
        self._commits.close()
        self._commits.store.close()
        self.store.close()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def receive_bytes(self, data: bytes, *, transport: str, remote: tuple[str, int]) -> None:
        """Feed one raw SIP message through the incoming path, as if it had arrived over
        ``transport`` from ``remote`` (answers go back there)."""
        self.transport.inject(data, Peer(transport, remote[0], remote[1]))
        await self._commits.idle()

    def register_method(self, method: str, handler: Callable[[RequestReceived], None]) -> None:
        """Let another part of the agent answer requests of ``method`` (e.g. INVITE): the
        handler gets the `RequestReceived` event and answers with `respond`. For INVITE
        server transactions set ``agent.transport.layer.serve_invites = True`` first."""
        self._method_handlers[method.upper()] = handler

    # -- routing -------------------------------------------------------------------------

    def route(self, to: str, transport: str | None = None) -> tuple[Peer, bool]:
        """Where a request for ``to`` goes, and whether its transport was fixed explicitly."""
        if transport is not None and transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"unknown transport {transport!r} (udp, tcp or tls)")
        if self.config.proxy:
            return self._uri_peer(self.config.proxy, transport)
        for aor, contact in self.config.contacts.items():
            if uri_equal(aor, to):
                return self._contact_peer(contact, transport)
        return self._uri_peer(to, transport)

    @staticmethod
    def _uri_peer(text: str, transport: str | None) -> tuple[Peer, bool]:
        uri = SipUri.parse(text)
        fixed = uri.transport
        chosen = transport or fixed or ("tls" if uri.scheme == "sips" else "udp")
        port = uri.port or (5061 if chosen == "tls" else 5060)
        return Peer(chosen, uri.host_address, port), (transport or fixed) is not None

    @staticmethod
    def _contact_peer(contact: str, transport: str | None) -> tuple[Peer, bool]:
        head, sep, rest = contact.partition(":")
        if head.lower() in ("udp", "tcp", "tls") and sep:
            host, port = _host_port(rest, contact)
            return Peer(transport or head.lower(), host, port), True
        if contact.lower().startswith(("sip:", "sips:")):
            return UserAgent._uri_peer(contact, transport)
        host, port = _host_port(contact, contact)
        return Peer(transport or "udp", host, port), transport is not None

    # -- requests ------------------------------------------------------------------------

    def _via(self, peer: Peer) -> str:
        host, port = self.transport.local_address(peer)
        host = f"[{host}]" if ":" in host else host
        return f"SIP/2.0/{peer.transport.upper()} {host}:{port};branch={new_branch()};rport"

    def contact_uri(self, transport: str | None = None, towards: str = "127.0.0.1") -> str:
        """Our Contact: the preferred listener (TCP or TLS first, they carry large
        messages; UDP otherwise), or the one of ``transport``; a wildcard listener is
        named by the interface that leads to ``towards``."""
        order = [transport] if transport else ["tls", "tcp", "udp"]
        for name in order:
            if name in self.addresses:
                host, port = self.addresses[name]
                host = advertised_host(host, towards)
                host = f"[{host}]" if ":" in host else host
                user = SipUri.parse(self.aor).user
                user_part = f"{user}@" if user else ""
                if name == "tls":
                    return f"sips:{user_part}{host}:{port}"
                suffix = "" if name == "udp" else f";transport={name}"
                return f"sip:{user_part}{host}:{port}{suffix}"
        raise SipTransportError(f"no {transport or 'listening'} address for a Contact")

    def build_request(
        self,
        method: str,
        request_uri: str,
        peer: Peer,
        *,
        to: str,
        call_id: str | None = None,
        cseq: int = 1,
        from_tag: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> SipRequest:
        """A request with the mandatory headers of RFC 3261 section 8.1.1."""
        own = Address(self.aor, self.config.display_name).with_tag(from_tag or new_tag())
        h = Headers()
        h.add("Via", self._via(peer))
        h.add("Max-Forwards", "70")
        h.add("From", str(own))
        h.add("To", str(Address(parse_aor(to))))
        h.add("Call-ID", call_id or new_call_id())
        h.add("CSeq", f"{cseq} {method}")
        if method != "MESSAGE":  # every byte of a MESSAGE counts against the UDP limit
            h.add("User-Agent", USER_AGENT)
        for name, value in headers or []:
            h.add(name, value)
        return SipRequest(method, request_uri, h, body)

    async def request(self, request: SipRequest, peer: Peer) -> _Outcome:
        """Send ``request`` in a client transaction and wait for its final response."""
        future = asyncio.get_running_loop().create_future()
        try:
            key = await self.transport.send_request(request, peer)
        except (SipTransportError, SipError) as exc:
            return _Outcome(None, 503, "Service Unavailable", str(exc))
        self._pending[key] = future
        try:
            outcome = await future
        finally:
            self._pending.pop(key, None)
        outcome.request = request
        return outcome

    async def request_with_auth(
        self,
        make: Callable[[int, list[tuple[str, str]]], SipRequest],
        peer: Peer,
    ) -> _Outcome:
        """Send the request ``make(cseq, auth_headers)`` builds; answer 401/407 with digest
        credentials (MD5 or SHA-256) and send it again, at most twice."""
        cseq = 1
        auth: list[tuple[str, str]] = []
        request = make(cseq, auth)
        outcome = await self.request(request, peer)
        for _ in range(2):
            response = outcome.response
            if response is None or response.status not in (401, 407):
                return outcome
            header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
            try:
                challenges = parse_challenges(
                    response.headers.get_all(header), proxy=response.status == 407
                )
            except SipError as exc:
                outcome.problem = f"the {response.status} challenge cannot be read: {exc}"
                return outcome
            challenge = select_challenge(challenges)
            if challenge is None:
                outcome.problem = (
                    f"the {response.status} challenge asks for an algorithm this agent does "
                    "not support (MD5, SHA-256 and SHA-512-256 are)"
                )
                return outcome
            if self.config.password is None:
                outcome.problem = (
                    f"{response.status} {response.reason}: the server asks for a password "
                    "and none is configured"
                )
                return outcome
            username = self.config.username or SipUri.parse(self.aor).user or ""
            value = build_authorization(
                challenge,
                username=username,
                password=self.config.password,
                method=request.method,
                uri=request.uri,
                body=request.body,
            )
            auth = [(n, v) for n, v in auth if n != challenge.authorization_header] + [
                (challenge.authorization_header, value)
            ]
            cseq += 1
            request = make(cseq, auth)
            outcome = await self.request(request, peer)
        if outcome.response is not None and outcome.response.status in (401, 407):
            outcome.problem = (
                f"{outcome.response.status} {outcome.response.reason}: the credentials for "
                f"{self.config.username or self.aor} were refused; check the password"
            )
        return outcome

    # -- SIP events ----------------------------------------------------------------------

    def add_sip_listener(self, callback: Callable[[SipEvent], None]) -> Callable[[], None]:
        """Also call ``callback`` with every event of the SIP transaction layer (before
        the agent handles it): provisional responses, INVITE transactions, and the like.
        Returns the function that removes it."""
        self._sip_listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._sip_listeners.remove(callback)

        return remove

    def _on_sip_event(self, event: SipEvent) -> None:
        for listener in self._sip_listeners:
            listener(event)
        if isinstance(event, ResponseReceived):
            if event.response.status >= 200:
                future = self._pending.get(event.key)
                if future is not None and not future.done():
                    future.set_result(
                        _Outcome(event.response, event.response.status, event.response.reason)
                    )
        elif isinstance(event, RequestReceived):
            try:
                self._on_request(event)
            except Exception as exc:  # a bug must not leave the sender without an answer
                with contextlib.suppress(Exception):
                    self.respond(event, 500, "Server Internal Error")
                self._notice(
                    "error",
                    f"a {event.request.method} request could not be handled "
                    f"({type(exc).__name__}: {exc}); it was answered 500",
                )
        elif isinstance(event, TransactionTimeout):
            future = self._pending.get(event.key)
            if future is not None and not future.done():
                future.set_result(
                    _Outcome(None, 408, "Request Timeout", "no answer came within 32 seconds")
                )
        elif isinstance(event, TransportFailed):
            future = self._pending.get(event.key)
            if future is not None and not future.done():
                future.set_result(
                    _Outcome(None, 503, "Service Unavailable", "the transport failed")
                )
        elif isinstance(event, MessageDiscarded):
            self.emit(
                MessageRefused(
                    self.now(),
                    sender=str(event.remote),
                    status=400 if event.answered else 0,
                    reason=f"a malformed SIP message was discarded: {event.reason}",
                )
            )

    def respond(
        self,
        event: RequestReceived,
        status: int,
        phrase: str | None = None,
        headers: list[tuple[str, str]] | tuple = (),
        body: bytes = b"",
    ) -> None:
        """Answer an incoming request (statelessly when it has no transaction)."""
        response = event.request.make_response(status, phrase, list(headers), body)
        if event.key is None:
            self.transport.send_stateless(response, event.remote)  # type: ignore[arg-type]
        else:
            self.transport.send_response(event.key, response)

    def _on_request(self, event: RequestReceived) -> None:
        method = event.request.method
        handler = self._method_handlers.get(method)
        if handler is not None:
            handler(event)
            return
        if method == "ACK":
            return
        required = event.request.headers.get_all("Require")
        if required:  # no extension is supported here (RFC 3261 section 8.2.2.3)
            self.respond(event, 420, headers=[("Unsupported", ", ".join(required))])
            return
        if method == "MESSAGE":
            self._on_message(event)
        elif method == "OPTIONS":
            self.respond(
                event, 200, headers=[("Accept", pipeline.ACCEPT_HEADER), ("Allow", self._allow())]
            )
        else:
            self.respond(event, 405, headers=[("Allow", self._allow())])

    _answer = respond  # the name the session-mode code calls

    def _allow(self) -> str:
        return ", ".join(dict.fromkeys([*ALLOW, *self._method_handlers]))

    # -- receiving -----------------------------------------------------------------------

    def _wire_bytes(self, request: SipRequest) -> bytes:
        """The bytes ``request`` arrived in (as the transport reported them), or the
        request written out again when they are not at hand."""
        raw, self._last_in = self._last_in, None
        if raw is not None and raw.startswith(request.method.encode("ascii") + b" "):
            return raw
        return request.to_bytes()

    def _on_message(self, event: RequestReceived) -> None:
        request = event.request
        raw_request = self._wire_bytes(request)
        now = self.now()
        try:
            sender = parse_aor(request.from_address.uri)
        except SipError as exc:
            self.respond(event, 400, "Bad From")
            self.emit(MessageRefused(now, sender="", status=400, reason=f"unreadable From: {exc}"))
            return
        try:
            opened = pipeline.open_body(
                request,
                sender=sender,
                local_aor=self.aor,
                identity=self.identity,
                trust=self.trust,
                at=now,
                known_certificate=self.peer_certificate(sender),
                replay_window=self.config.replay_window,
                seen=self._seen,
            )
        except pipeline.Refusal as refusal:
            headers = list(refusal.headers)
            self.respond(event, refusal.status, refusal.phrase, headers, refusal.body)
            self.emit(
                MessageRefused(
                    now,
                    sender=sender,
                    status=refusal.status,
                    reason=refusal.words,
                    report=refusal.report.to_json() if refusal.report is not None else None,
                )
            )
            return
        report = opened.report
        self._learn_from(sender, opened, now)
        if (
            opened.content_type is not None
            and opened.content_type.split(";")[0].strip().lower() == IMDN_CONTENT_TYPE
        ):
            self._on_imdn(event, sender, opened, now)
            return
        report_json = report.to_json()
        row = {
            "peer": sender,
            "local": self.aor,
            "message_id": opened.message_id,
            "content_type": opened.content_type,
            "content": opened.content,
            "report": report_json,
            "at": now,
            "raw": pipeline.body_entity(request).to_bytes(),
            "raw_request": raw_request,
        }
        if opened.outside:
            row["outside"] = _outside_parts(opened.outside)

        def committed(rowid: int | None, error: StoreError | None) -> None:
            if error is not None:
                # Not committed, so not acknowledged either: the sender may try again.
                self.respond(event, 500, "Server Internal Error")
                self._notice(
                    "error", f"a message from {sender} could not be stored: {error}", sender
                )
                return
            self.respond(event, 200)
            self._received(sender, opened, report_json, rowid or 0, now)

        self._commits.add(row, committed)

    def _received(
        self, sender: str, opened: pipeline.Opened, report_json: dict, rowid: int, now: datetime
    ) -> None:
        """After the commit and the 200: tell the faces, note what the sender does, and
        send the delivery notification it asked for."""
        report = opened.report
        self.emit(
            MessageReceived(
                now,
                rowid=rowid,
                message_id=opened.message_id,
                sender=sender,
                recipient=self.aor,
                content_type=opened.content_type,
                content=opened.content,
                report=report_json,
            )
        )
        signs = self._capability(sender, SIGNS_CAPABILITY)
        if (
            self.config.require_signatures
            and report.authenticity is Authenticity.UNSIGNED
            and signs is True
        ):
            self._notice(
                "warning",
                f"{sender} signs its messages, but this one is unsigned: anyone could have "
                "written it. Treat it as coming from an unknown sender.",
                sender,
            )
        if report.authenticity.signature_valid and signs is None:
            self._set_capability(sender, SIGNS_CAPABILITY, True, now, "signed a message")
        if (
            opened.cpim is not None
            and self._no_route.get(sender, 0.0) < time.monotonic()
            and imdn_requested(opened.cpim, "delivery", "delivered")
        ):
            self._spawn(
                self._send_imdn(sender, opened.cpim, "delivery", "delivered", opened.encrypted)
            )

    def _capability(self, peer: str, name: str) -> bool | None:
        key = (peer, name)
        if key not in self._capabilities:
            self._capabilities[key] = self.store.capability(peer, name)
        return self._capabilities[key]

    def _set_capability(self, peer: str, name: str, value: bool, at: datetime, reason: str) -> None:
        self.store.set_capability(peer, name, value, at=at, reason=reason)
        self._capabilities[(peer, name)] = value

    def _seen(self, peer: str, message_id: str) -> bool:
        """The replay check: already stored, or waiting for its commit."""
        return self._commits.pending(peer, message_id) or self.store.has_message_id(
            peer, message_id
        )

    def _last_learned(self, peer: str) -> x509.Certificate | None:
        if peer not in self._learned:
            self._learned[peer] = self.trust.learned(peer)
        return self._learned[peer]

    def _learn_from(self, sender: str, opened: pipeline.Opened, now: datetime) -> None:
        """Remember the signer's certificate (for encrypting to it) and whether the sender
        has ours. Learning pins nothing: trust comes from the user or a trusted CA."""
        report = opened.report
        certificate = opened.signer_certificate
        if (
            certificate is not None
            and report.sender_match
            and report.authenticity in _LEARNABLE
            and self._last_learned(sender) != certificate
        ):
            pinned = self.trust.pinned(sender)
            self.trust.learn(sender, certificate, now=now)
            self.store.learn_certificate(sender, certificate.public_bytes(Encoding.DER), at=now)
            self._save_trust()
            self._learned[sender] = certificate
            # what we encrypt to: the pinned certificate while there is one (a changed key
            # waits for the user's decision), else the one just learned
            self._peer_certs.pop(sender, None)
            if pinned != certificate:
                self.emit(
                    CertificateLearned(
                        now,
                        peer=sender,
                        sha256=certificate_sha256(certificate),
                        changed=pinned is not None,
                    )
                )
        if opened.encrypted and not self._capability(sender, PEER_HAS_CERTIFICATE):
            # They encrypted to us: they hold our certificate (RFC 8591 section 7.1).
            self._set_capability(
                sender, PEER_HAS_CERTIFICATE, True, now, "encrypted a message to our certificate"
            )

    def _on_imdn(
        self, event: RequestReceived, sender: str, opened: pipeline.Opened, now: datetime
    ) -> None:
        try:
            assert opened.cpim is not None
            notification = imdn_of(opened.cpim)
        except (ImError, AssertionError) as exc:
            self.respond(event, 400, "Bad IMDN")
            self.emit(
                MessageRefused(now, sender=sender, status=400, reason=f"unreadable IMDN: {exc}")
            )
            return
        state = {
            ("delivery", "delivered"): "delivered",
            ("display", "displayed"): "displayed",
        }.get((notification.kind, notification.status), "failed")
        try:
            original = self.store.message(notification.message_id)
            if original is None or original.direction != "out":
                raise UnknownMessageError(notification.message_id)
            if not uri_equal(original.peer, sender):
                self.respond(event, 403, "Not The Recipient")
                self.emit(
                    MessageRefused(
                        now,
                        sender=sender,
                        status=403,
                        reason=f"{sender} sent a notification about a message sent to "
                        f"{original.peer}",
                    )
                )
                return
            self.store.set_delivery(
                notification.message_id,
                state,
                at=now,
                reason=f"IMDN {notification.kind} {notification.status}",
            )
        except UnknownMessageError:
            self.respond(event, 200)  # nothing to update; a late or foreign notification
            return
        except StoreError as exc:
            self.respond(event, 500, "Server Internal Error")
            self._notice("error", f"a notification could not be stored: {exc}", sender)
            return
        self.respond(event, 200)
        current = self.store.message(notification.message_id)
        self.emit(
            DeliveryChanged(
                now,
                message_id=notification.message_id,
                peer=sender,
                state=current.delivery if current is not None else state,
                reason=f"{notification.kind} notification: {notification.status} "
                f"({opened.report.authenticity})",
            )
        )

    async def _send_imdn(
        self, peer: str, original: CpimMessage, kind: str, status: str, encrypted: bool
    ) -> None:
        try:  # no notification is built (signed, encrypted) for a peer we cannot reach
            await self.transport.resolve(self.route(peer)[0])
        except (SipError, ValueError, SipTransportError) as exc:
            # said once; the next notifications for this peer wait until the route may work
            self._no_route[peer] = time.monotonic() + NO_ROUTE_RETRY
            self._emit_response(
                peer,
                None,
                _Outcome(None, 0, "Not Sent"),
                None,
                f"{kind} notification not sent: no route to {peer}: {exc}",
            )
            return
        now = self.now()
        try:
            cpim = build_imdn_cpim(
                original,
                kind=kind,  # type: ignore[arg-type]
                status=status,
                when=now,
                message_id=new_message_id(),
                from_uri=f"<{self.aor}>",
            )
        except ImError as exc:
            self._notice("warning", f"no {kind} notification for {peer}: {exc}", peer)
            return
        recipient = self.peer_certificate(peer) if encrypted else None
        outcome = await self._send_cpim(peer, cpim.to_bytes(), sign=True, recipient=recipient)
        problem = "" if 200 <= outcome.status < 300 else self._explain(peer, outcome)
        if outcome.phrase == TOO_LARGE_FOR_UDP:
            # the next ones would be as large: none is built (signed, encrypted) for a while
            self._no_route[peer] = time.monotonic() + NO_ROUTE_RETRY
            problem += f"; no delivery notification goes to {peer} for {NO_ROUTE_RETRY:.0f} s"
        self._emit_response(
            peer,
            cpim.message_id,
            outcome,
            outcome.response,
            f"{kind} notification: {problem}" if problem else "",
        )

    async def mark_displayed(self, peer: str, message_ids: list[str]) -> None:
        """Send display notifications for received messages that asked for them."""
        for message_id in message_ids:
            stored = self.store.message(message_id)
            if stored is None or stored.direction != "in":
                continue
            raw = self.store.raw(stored.rowid)
            original = self._original_cpim(peer, raw)
            if original is None or not imdn_requested(original, "display", "displayed"):
                continue
            encrypted = (stored.report or {}).get("confidentiality") == "encrypted"
            await self._send_imdn(peer, original, "display", "displayed", encrypted)
        self.store.mark_read(peer, at=self.now())

    def _original_cpim(self, peer: str, raw: bytes | None) -> CpimMessage | None:
        """The CPIM of a stored incoming message (its body entity, opened again)."""
        if raw is None:
            return None
        try:
            entity = MimeEntity.parse(raw)
            if entity.content_type.mime_type == pipeline.CPIM_TYPE:
                return parse_cpim(entity.body)
            result = unprotect(
                entity, identity=self.identity, trust=self.trust, sender=peer, at=self.now()
            )
            content = result.content
            return (
                parse_cpim(content)
                if content and result.content_type == pipeline.CPIM_TYPE
                else None
            )
        except (SmimeError, ImError):
            return None

    # -- sending -------------------------------------------------------------------------

    def raw_request(self, rowid: int) -> RawRequest | None:
        """The request that carried the stored message with this row id: the SIP request
        received, or the last one sent; None when none was kept (a message that went
        over an MSRP session, or one stored before requests were kept)."""
        return self.store.raw_request(rowid)

    def find_certificate(self, peer: str | None, sha256: str) -> x509.Certificate | None:
        """The certificate with this SHA-256 among those known for ``peer`` (its learned
        history, the one to encrypt to, the pinned one), the trust anchors and our own
        chain; None when none matches. Faces use it to open what a report names."""
        sha256 = sha256.replace(":", "").lower()
        candidates: list[x509.Certificate] = []
        if peer:
            for _at, der in self.store.certificate_history(peer):
                try:
                    candidates.append(x509.load_der_x509_certificate(der))
                except ValueError:
                    continue
            for cert in (self.peer_certificate(peer), self.trust.pinned(peer)):
                if cert is not None:
                    candidates.append(cert)
        candidates.extend(self.trust.anchors)
        candidates.extend((self.identity.certificate, *self.identity.chain))
        return next((c for c in candidates if certificate_sha256(c) == sha256), None)

    def peer_certificate(self, peer: str) -> x509.Certificate | None:
        """The certificate to encrypt to for ``peer``: pinned, else learned."""
        if peer in self._peer_certs:
            return self._peer_certs[peer]
        if parse_aor(peer) != peer:
            return self.peer_certificate(parse_aor(peer))
        certificate = self.trust.pinned(peer) or self.trust.learned(peer)
        if certificate is None:
            der = self.store.certificate(peer)
            if der is not None:
                certificate = x509.load_der_x509_certificate(der)
        self._peer_certs[peer] = certificate
        return certificate

    def set_peer_certificate(self, peer: str, certificate: x509.Certificate) -> None:
        """Use ``certificate`` to encrypt to ``peer`` (given by the user, e.g. a file):
        remembered as learned, not pinned; the signature of the peer's messages is still
        judged by the trust store."""
        aor = parse_aor(peer)
        now = self.now()
        self.trust.learn(aor, certificate, now=now)
        self.store.learn_certificate(aor, certificate.public_bytes(Encoding.DER), at=now)
        self._save_trust()
        self._learned[aor] = certificate
        self._peer_certs[aor] = certificate

    def decide_trust(self, peer: str, certificate: x509.Certificate, decision: str) -> None:
        """Record the user's decision about ``certificate`` for ``peer``: ``trust`` pins it,
        ``distrust`` refuses it. Stored with its time; emits a Notice."""
        now = self.now()
        aor = parse_aor(peer)
        if decision == "trust":
            self.trust.pin(aor, certificate, now=now, note="the user compared and trusted it")
            words = f"You trust this certificate for {aor}; it is pinned."
        elif decision == "distrust":
            self.trust.distrust(aor, certificate, now=now, note="the user refused it")
            words = f"You refused this certificate for {aor}."
        else:
            raise ValueError(f"decision must be 'trust' or 'distrust', not {decision!r}")
        self._save_trust()
        self._peer_certs.pop(aor, None)
        self.store.log_event(
            "trust-decision",
            {"peer": aor, "sha256": certificate_sha256(certificate), "decision": decision},
            at=now,
        )
        self._notice("info", words, aor)

    async def send_text(
        self,
        to: str,
        text: str,
        *,
        sign: bool | None = None,
        encrypt: bool | None = None,
        transport: str | None = None,
        content_type: str = "text/plain;charset=utf-8",
        session: bool = False,
    ) -> SendResult:
        """Store, protect and send one message; see the module docstring. With ``session``
        (or when it does not fit a MESSAGE) it goes over an MSRP session instead."""
        peer_aor = parse_aor(to)
        now = self.now()
        message_id = new_message_id()
        content = text.encode("utf-8")
        self.store.add_outgoing(
            peer=peer_aor,
            local=self.aor,
            message_id=message_id,
            content_type=content_type,
            content=content,
            at=now,
        )
        self.emit(MessageStored(at=now, peer=peer_aor, message_id=message_id))
        sign = self.config.sign if sign is None else sign
        want_encrypt = self.config.encrypt if encrypt is None else encrypt
        notes: list[str] = []
        recipient = self.peer_certificate(peer_aor) if want_encrypt else None
        if want_encrypt and recipient is None and encrypt:
            notes.append(
                f"not encrypted: no certificate of {peer_aor} is known yet (it is learned "
                "from a signed message or a 493 answer)"
            )
        if self._capability(peer_aor, SMIME_CAPABILITY) is False and (sign or recipient):
            notes.append(f"{peer_aor} answered 415 before: it may refuse protected messages again")
        self._in_flight.add(message_id)
        try:
            result = await self._deliver(
                peer_aor,
                message_id,
                content,
                content_type,
                now,
                sign,
                recipient,
                transport,
                session=session,
            )
        finally:
            self._in_flight.discard(message_id)
        if notes and result.delivered:
            result = SendResult(**{**result.to_json(), "explanation": "; ".join(notes)})
        elif notes:
            result = SendResult(
                **{**result.to_json(), "explanation": "; ".join([result.explanation, *notes])}
            )
        return result

    async def resend_pending(self) -> list[SendResult]:
        """Send again the outgoing messages still pending: stored before a process ended
        without their final answer. Each keeps its message id (a receiver that got it
        already refuses the copy as a replay, and the message counts as delivered). The
        messages of one peer go in the order they were written; peers do not wait for
        each other. A message being delivered at the moment is left to that delivery."""
        by_peer: dict[str, list] = {}
        for stored in self.store.pending_outgoing():
            if stored.transport != "sip" or stored.message_id is None:
                continue
            if stored.message_id in self._in_flight or not uri_equal(stored.local, self.aor):
                continue
            self._in_flight.add(stored.message_id)
            by_peer.setdefault(stored.peer, []).append(stored)

        async def one_peer(messages: list) -> list[SendResult]:
            results = []
            for stored in messages:
                recipient = self.peer_certificate(stored.peer) if self.config.encrypt else None
                results.append(
                    await self._deliver(
                        stored.peer,
                        stored.message_id,
                        stored.content or b"",
                        stored.content_type or "text/plain;charset=utf-8",
                        self.now(),
                        self.config.sign,
                        recipient,
                        None,
                        again=True,
                    )
                )
            return results

        claimed = [stored.message_id for messages in by_peer.values() for stored in messages]
        tasks = [asyncio.ensure_future(one_peer(messages)) for messages in by_peer.values()]
        try:
            done = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            self._in_flight.difference_update(claimed)
        return [result for results in done for result in results]

    async def _over_session(
        self,
        peer: str,
        message_id: str,
        content: bytes,
        content_type: str,
        sign: bool,
        recipient: x509.Certificate | None,
    ) -> _Outcome:
        status, phrase, problem = await self.sessions.deliver(
            peer, message_id, content, content_type, sign=sign, recipient=recipient
        )
        return _Outcome(None, status, phrase, problem)

    # -- session mode (messenger.ua.sessions) ----------------------------------------------

    async def send_file(
        self,
        to: str,
        path: str | Path,
        *,
        sign: bool | None = None,
        encrypt: bool | None = None,
        transfer_id: str | None = None,
    ) -> SendResult:
        """Send a file over an MSRP session with ``to`` (set up on demand): protected whole
        (its name inside the protection), then chunked. Never raises for network trouble.
        ``sign``/``encrypt`` apply to this file alone (None: the account's policy);
        ``transfer_id`` (default: a new one) is its message id and transfer id."""
        return await self.sessions.send_file(
            to, path, transfer_id=transfer_id, sign=sign, encrypt=encrypt
        )

    def set_msrp_relay(self, relay: str | None) -> None:
        """Route the sessions started from now on through ``relay`` (an MSRP URI; None:
        directly). ValueError in words when it is not a relay URI."""
        from messenger.ua.profile import parse_msrp_relay

        uri = parse_msrp_relay(relay) if relay else None
        self.config.msrp_relay = str(uri) if uri is not None else None
        self.sessions.relay = uri

    async def start_session(self, to: str, *, transport: str | None = None):
        """Open (or reuse) an MSRP session with ``to``; `SessionSetupError` says why not."""
        return await self.sessions.start_session(to, transport=transport)

    def cancel_transfer(self, transfer_id: str) -> bool:
        """Cancel a running file transfer, either way: one being sent is aborted with ``#``
        on the wire; one still arriving is discarded, and its sender is told to send no
        more of it (MSRP 413). False when no such transfer is running."""
        return self.sessions.cancel_transfer(transfer_id)

    def _cpim(
        self, peer: str, content: bytes, content_type: str, at: datetime, message_id: str
    ) -> bytes:
        return CpimMessage.build(
            self.aor,
            [peer],
            content,
            content_type,
            when=at,
            message_id=message_id,
            disposition=("positive-delivery", "display"),
        ).to_bytes()

    async def _deliver(
        self,
        peer: str,
        message_id: str,
        content: bytes,
        content_type: str,
        at: datetime,
        sign: bool,
        recipient: x509.Certificate | None,
        transport: str | None,
        *,
        resent: bool = False,
        session: bool = False,
        again: bool = False,
    ) -> SendResult:
        """Send one stored message and record its outcome; ``resent`` after a 493, and
        ``again`` for a message a previous run left pending."""
        cpim = self._cpim(peer, content, content_type, at, message_id)
        if session or len(cpim) > PAGER_MAX_CONTENT:
            outcome = await self._over_session(
                peer, message_id, content, content_type, sign, recipient
            )
        else:
            outcome = await self._send_cpim(
                peer, cpim, sign=sign, recipient=recipient, transport=transport
            )
            if outcome.phrase == TOO_LARGE_FOR_UDP:  # only UDP reaches the peer: a session
                too_large = outcome
                outcome = await self._over_session(
                    peer, message_id, content, content_type, sign, recipient
                )
                if not 200 <= outcome.status < 300:  # say both: the size, then the session
                    outcome.problem = (
                        f"{too_large.problem}; an MSRP session could not carry it either: "
                        f"{outcome.problem or outcome.phrase}"
                    )
        status = outcome.status
        response = outcome.response
        now = self.now()
        encrypted = recipient is not None
        # the request as it went out, kept with the message (None: nothing was sent)
        sent = outcome.request.to_bytes() if outcome.request is not None else None
        explanation = ""
        state = "failed"
        if 200 <= status < 300:
            state = "delivered" if status == 200 else "sent"
        elif status == 415:
            state = "refused"
            accept = response.headers.get("Accept") if response is not None else None
            reason = (
                f"{peer} cannot take S/MIME-protected messages (415 Unsupported Media Type"
                + (f"; it accepts {accept}" if accept else "")
                + "). Nothing was sent unprotected: to send anyway, turn signing and "
                "encryption off for this message, knowing that anyone on the path can read "
                "and change it."
            )
            explanation = reason
            self._set_capability(peer, SMIME_CAPABILITY, False, now, reason)
            self.emit(
                CapabilityLearned(
                    now, peer=peer, capability=SMIME_CAPABILITY, value=False, reason=reason
                )
            )
            self._notice("warning", reason, peer)
        elif status == 493 and response is not None and not resent:
            certificate, problem = self._certificate_from_493(peer, response, now)
            if certificate is not None:
                self.store.set_delivery(
                    message_id,
                    "pending",
                    at=now,
                    status=493,
                    reason="re-sending encrypted to the certificate of the 493",
                    raw_request=sent,
                )
                self._emit_response(peer, message_id, outcome, response, "re-sending encrypted")
                return await self._deliver(
                    peer,
                    message_id,
                    content,
                    content_type,
                    at,
                    sign,
                    certificate,
                    transport,
                    resent=True,
                    again=again,
                )
            explanation = problem
        elif again and status == 403 and outcome.phrase == pipeline.REPLAYED_PHRASE:
            # the copy is refused because the peer stored the original: it was delivered
            state = "delivered"
            explanation = (
                f"{peer} already had this message (its answer was lost when this program "
                "stopped); the copy sent again was refused as a replay"
            )
        else:
            explanation = self._explain(peer, outcome)
        if status == 493 and not explanation:
            explanation = (
                f"{peer} could not decrypt the message even after it was encrypted to the "
                "certificate it sent; it was not delivered"
            )
        try:
            self.store.set_delivery(
                message_id,
                state,
                at=now,
                status=status or None,
                reason=explanation,
                raw_request=sent,
            )
        except StoreError as exc:
            self._notice("error", f"the delivery state could not be stored: {exc}", peer)
        self._emit_response(peer, message_id, outcome, response, explanation)
        self.emit(
            DeliveryChanged(
                now,
                message_id=message_id,
                peer=peer,
                state=state,
                status=status or None,
                reason=explanation,
            )
        )
        return SendResult(
            message_id=message_id,
            status=status,
            reason_phrase=outcome.phrase,
            delivered=200 <= status < 300,
            explanation=explanation,
            encrypted=encrypted,
            signed=sign,
        )

    def _emit_response(
        self,
        peer: str,
        message_id: str | None,
        outcome: _Outcome,
        response: SipResponse | None,
        explanation: str,
    ) -> None:
        self.emit(
            Response(
                self.now(),
                method="MESSAGE",
                status=outcome.status,
                reason_phrase=outcome.phrase,
                to=peer,
                message_id=message_id,
                call_id=response.headers.get("Call-ID", "") if response is not None else "",
                explanation=explanation,
            )
        )

    def _explain(self, peer: str, outcome: _Outcome) -> str:
        status = outcome.status
        if 200 <= status < 300:
            return ""
        if outcome.problem:
            return outcome.problem
        words = {
            403: "the server or the peer refused the message",
            404: f"{peer} is not known or not registered at the moment",
            408: f"no answer from {peer}",
            480: f"{peer} is not available at the moment",
            486: f"{peer} is busy",
            493: f"{peer} could not decrypt the message",
            503: "the service is unavailable",
        }
        return f"{status} {outcome.phrase}: " + words.get(status, "the message was not delivered")

    def _certificate_from_493(
        self, peer: str, response: SipResponse, now: datetime
    ) -> tuple[x509.Certificate | None, str]:
        """The certificate of a 493's certs-only body, validated for ``peer``."""
        if not response.body:
            return None, (
                f"{peer} could not decrypt the message (493) and sent no certificate to "
                "encrypt to; it was not delivered"
            )
        try:
            result = unprotect(
                pipeline.body_entity(response),  # type: ignore[arg-type]
                identity=None,
                trust=self.trust,
                at=now,
            )
        except SmimeError as exc:
            return None, f"the certificate in the 493 from {peer} cannot be read: {exc}"
        best: x509.Certificate | None = None
        problem = f"the 493 from {peer} carries no certificate"
        for der in result.report.certificates:
            certificate = x509.load_der_x509_certificate(der)
            verdict = self.trust.evaluate(certificate, sender=peer, at=now, usage="encryption")
            if verdict.authenticity in (
                Authenticity.VERIFIED,
                Authenticity.VERIFIED_PINNED,
                Authenticity.UNVERIFIED_NEW,
                Authenticity.REVOCATION_UNKNOWN,
            ) and not any(
                c.name == "key-usage" and str(c.outcome) == "fail" for c in verdict.checks
            ):
                best = certificate
                break
            problem = (
                f"the certificate in the 493 from {peer} was not used: "
                f"{verdict.authenticity}: {verdict.reason}"
            )
        if best is None:
            return None, problem
        known = self.peer_certificate(peer)
        if known != best:
            self.trust.learn(peer, best, now=now)
            self.store.learn_certificate(peer, best.public_bytes(Encoding.DER), at=now)
            self._save_trust()
            self._learned[peer] = best
            self._peer_certs[peer] = best
            pinned = self.trust.pinned(peer)
            self.emit(
                CertificateLearned(
                    now,
                    peer=peer,
                    sha256=certificate_sha256(best),
                    changed=pinned is not None and pinned != best,
                )
            )
        return best, ""

    async def _send_cpim(
        self,
        peer: str,
        cpim: bytes,
        *,
        sign: bool,
        recipient: x509.Certificate | None,
        transport: str | None = None,
    ) -> _Outcome:
        """Protect ``cpim`` and send it in a MESSAGE to ``peer`` (routed first: nothing is
        signed or encrypted for a peer that cannot be reached)."""
        try:
            target, fixed = self.route(peer, transport)
            target = await self.transport.resolve(target)
        except (SipError, ValueError, SipTransportError) as exc:
            return _Outcome(None, 0, "Not Sent", f"no route to {peer}: {exc}")
        at = self.now()
        include = not self._capability(peer, PEER_HAS_CERTIFICATE)
        try:
            content_headers, body = pipeline.protect_body(
                cpim,
                identity=self._signer if sign else None,
                recipient=recipient,
                include_certificate=include,
                at=at,
            )
        except SmimeError as exc:
            return _Outcome(None, 0, "Not Sent", f"the message could not be protected: {exc}")
        call_id = new_call_id()
        from_tag = new_tag()
        request_uri = parse_aor(peer)

        def make(cseq: int, auth: list[tuple[str, str]], where: Peer) -> SipRequest:
            return self.build_request(
                "MESSAGE",
                request_uri,
                where,
                to=peer,
                call_id=call_id,
                cseq=cseq,
                from_tag=from_tag,
                headers=[*auth, *content_headers],
                body=body,
            )

        first: list[SipRequest] = []  # the request measured for UDP is the one sent
        if target.transport == "udp":
            measured = make(1, [], target)
            size = len(measured.to_bytes())
            if size > UDP_MAX_REQUEST:
                if fixed:
                    return _Outcome(
                        None,
                        0,
                        TOO_LARGE_FOR_UDP,
                        f"the MESSAGE is {size} bytes, more than the {UDP_MAX_REQUEST} bytes "
                        f"allowed over UDP, and {peer} is reachable only over UDP here; "
                        "configure a TCP or TLS address for it (or send a shorter message)",
                    )
                target = Peer("tcp", target.host, target.port)
            else:
                first.append(measured)
        try:
            await self.transport.connect(target)
        except SipTransportError as exc:
            return _Outcome(None, 503, "Service Unavailable", str(exc))

        def attempt(cseq: int, auth: list[tuple[str, str]]) -> SipRequest:
            if first and cseq == 1 and not auth:
                return first.pop()
            return make(cseq, auth, target)

        return await self.request_with_auth(attempt, target)
