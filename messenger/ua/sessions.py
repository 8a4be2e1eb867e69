"""Session mode of the user agent: MSRP sessions set up with INVITE and SDP.

The `SessionManager` belongs to one `messenger.ua.agent.UserAgent`. It sets sessions up
and takes them down; what travels inside a session (protected messages and files) is the
business of `messenger.ua.session.ChatSession`.

Outgoing (`start_session`): an SDP offer (RFC 4975 section 8: ``m=message`` TCP/MSRP or
TCP/TLS/MSRP, ``a=setup:actpass``, the S/MIME types in ``a=accept-types``) goes in an
INVITE along the same route as pager-mode messages (the outbound proxy, or the peer's
configured or AoR address). The 2xx is acknowledged once the MSRP side is ready for the
peer's connection, so the peer may connect as soon as it sees the ACK. A ringing limit
cancels an INVITE nobody answers (CANCEL, then 487).

Incoming: an INVITE with an acceptable offer rings (180) and is answered 200 with our SDP
answer; a refused offer gets 488 with a Warning that says why, a body that is not SDP
415. When the ACK comes, the active side (RFC 6135: the answerer, unless the offer came
through a relay) connects and sends first. ``auto_answer`` off keeps incoming sessions
ringing until `accept` or until the ringing limit answers 480.

BYE ends a session from either side; a session whose MSRP connection broke is ended with
a BYE when it is next needed.

Relays (RFC 4976): with ``msrp_relay`` the agent connects to its relay and AUTHs before
the SDP goes out, so the relay's Use-Path stands first in our ``a=path``; every session
of the agent then goes through it. When the offer names a relay of the peer, we answer
``a=setup:passive`` so that the relay can reach us.

Messages that do not fit pager mode come here too: `deliver` carries a message over a
session with the same peer (opened on demand) when a MESSAGE would be too large.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from messenger.im.cpim import new_message_id
from messenger.msrp.errors import MsrpError
from messenger.msrp.uri import MsrpUri
from messenger.net.msrp_transport import MsrpListener, MsrpTransportError
from messenger.net.sip_transport import Peer, SipTransportError, advertised_host
from messenger.sip.dialog import Dialog, build_invite, dialog_id_of_request
from messenger.sip.errors import SipError
from messenger.sip.events import RequestReceived, ResponseReceived, SipEvent
from messenger.sip.headers import Via
from messenger.sip.ids import new_tag
from messenger.sip.invite import AckTimeout, InviteCancelled
from messenger.sip.message import SipRequest, SipResponse
from messenger.sip.sdp import (
    MsrpMedia,
    NegotiatedSession,
    SdpError,
    SdpNegotiationError,
    SessionDescription,
    make_answer,
    make_offer,
    msrp_media,
    negotiate,
)
from messenger.sip.transaction import TransactionKey, client_key
from messenger.sip.uri import parse_aor
from messenger.ua.events import DeliveryChanged, MessageStored, Notice, Response
from messenger.ua.files import FILE_REFERENCE_TYPE, file_reference
from messenger.ua.profile import parse_msrp_relay
from messenger.ua.session import ChatSession, TransferResult, new_local_uri

if TYPE_CHECKING:
    from messenger.ua.agent import SendResult, UserAgent

__all__ = [
    "ALLOW_WITH_SESSIONS",
    "SessionManager",
    "SessionSetupError",
    "SipSession",
]

#: How long an outgoing INVITE may ring before it is cancelled (seconds).
DEFAULT_RING_LIMIT = 60.0
#: How long the MSRP connection may take to come up once the SDP is agreed (seconds).
MSRP_CONNECT_TIMEOUT = 15.0
_BYE_TIMEOUT = 5.0
_SDP = "application/sdp"
#: What an agent that takes sessions answers to OPTIONS and puts in Allow.
ALLOW_WITH_SESSIONS = "INVITE, ACK, BYE, CANCEL, MESSAGE, OPTIONS"


class _RelayUnusable(Exception):
    """Our MSRP relay refused or could not be reached (the words are in the message)."""


class SessionSetupError(Exception):
    """A session could not be set up: ``status`` is the SIP status that refused it (0 when
    no answer came or nothing could be sent), the text says why and what to do."""

    def __init__(self, message: str, *, status: int = 0, phrase: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.phrase = phrase


@dataclass(eq=False)
class SipSession:
    """One session with one peer: its INVITE dialog and its MSRP side.

    ``state``: ``calling`` (our INVITE is out), ``ringing`` (an INVITE came in, not yet
    answered), ``connecting`` (SDP agreed, MSRP coming up), ``established``, ``ended``
    (``reason`` says why).
    """

    call_id: str
    peer: str
    direction: str  # "out" or "in"
    state: str = "calling"
    reason: str = ""
    chat: ChatSession | None = None
    dialog: Dialog | None = None
    negotiated: NegotiatedSession | None = None
    invite: SipRequest | None = None
    server_key: TransactionKey | None = None
    remote: Peer | None = None
    _ack: SipRequest | None = None
    _ack_peer: Peer | None = None
    _ring_timer: asyncio.TimerHandle | None = None
    _answered: asyncio.Future[None] | None = field(default=None, repr=False)

    @property
    def open(self) -> bool:
        """Whether messages can be sent over the session now."""
        return self.state == "established" and self.chat is not None and self.chat.state == "open"


def _record_route(request: SipRequest) -> list[tuple[str, str]]:
    """The Record-Route a UAS copies into the responses that make a dialog (RFC 3261
    section 12.1.1), so in-dialog requests keep going through the proxies."""
    return [("Record-Route", value) for value in request.headers.get_all("Record-Route")]


def _warning_text(response: SipResponse) -> str:
    """The text of a ``Warning: 399 agent "text"`` header, or ""."""
    value = response.headers.get("Warning") or ""
    first, _, rest = value.partition('"')
    if not rest or not first.strip():
        return ""
    return rest.rsplit('"', 1)[0].replace('\\"', '"').replace("\\\\", "\\")


class SessionManager:
    """The sessions of one agent (see the module docstring)."""

    def __init__(self, agent: UserAgent) -> None:
        self.agent = agent
        self.auto_answer = True
        self.ring_limit = DEFAULT_RING_LIMIT
        self.msrp_tls = False  # offer TCP/TLS/MSRP even when SIP does not go over TLS
        self.relay: MsrpUri | None = None
        #: media types our MSRP side takes (None: the S/MIME types, CPIM and plain text)
        self.accept_types: tuple[str, ...] | None = None
        if agent.config.msrp_relay:
            self.relay = parse_msrp_relay(agent.config.msrp_relay)
        self._sessions: dict[str, SipSession] = {}  # by Call-ID
        self._by_server_key: dict[TransactionKey, SipSession] = {}
        self._listeners: dict[bool, MsrpListener] = {}
        self._listener_lock = asyncio.Lock()
        self._opening: dict[str, asyncio.Future[SipSession]] = {}
        self._stopped = False
        agent.transport.layer.serve_invites = True
        agent.add_sip_listener(self.observe)
        for method in ("INVITE", "ACK", "BYE"):
            agent.register_method(method, self._on_request)

    # -- what others see ---------------------------------------------------------------------

    def sessions(self) -> list[SipSession]:
        """The sessions not yet ended."""
        return [s for s in self._sessions.values() if s.state != "ended"]

    def session_with(self, peer: str) -> SipSession | None:
        """An open session with ``peer``, if there is one."""
        aor = parse_aor(peer)
        for session in self._sessions.values():
            if session.peer == aor and session.open:
                return session
        return None

    def _emit_notice(self, level: str, text: str, peer: str | None) -> None:
        self.agent.emit(Notice(self.agent.now(), level=level, text=text, peer=peer))

    # -- MSRP listeners ----------------------------------------------------------------------

    async def _listener(self, tls: bool) -> MsrpListener:
        async with self._listener_lock:
            listener = self._listeners.get(tls)
            if listener is not None:
                return listener
            context = self.agent.transport.server_tls if tls else None
            if tls and context is None:
                raise SessionSetupError(
                    "MSRP over TLS needs a TLS certificate for this account (none is "
                    "configured); use TCP or configure a TLS certificate and key"
                )
            hosts = [h for h, _ in self.agent.addresses.values()] or ["127.0.0.1"]
            listener = await MsrpListener.start(hosts[0], 0, ssl=context)
            self._listeners[tls] = listener
            return listener

    async def _path_through_relay(
        self, session: SipSession, local_uri: MsrpUri, listener: MsrpListener
    ) -> list[MsrpUri]:
        """Our a=path: with a relay (RFC 4976) AUTH first, and its Use-Path goes first.

        The chat that holds the relay connection is left on ``session.chat``.
        """
        if self.relay is None:
            return [local_uri]
        chat = self._chat(
            session, local_uri=local_uri, remote_path=(local_uri,), active=True, listener=listener
        )
        session.chat = chat
        try:
            use_path = await chat.connect_relay(MSRP_CONNECT_TIMEOUT)
        except (MsrpTransportError, MsrpError, OSError) as exc:
            raise _RelayUnusable(str(exc)) from None
        return [*use_path, local_uri]

    async def _local_uri(
        self, tls: bool, towards: str, *, passive: bool = True
    ) -> tuple[MsrpUri, MsrpListener]:
        """A fresh MSRP URI of ours (``msrps`` when ``tls``) and the listener behind it.
        Through a relay, or when we will be the side that connects, nobody connects to
        us, so a plain listener does."""
        listener = await self._listener(tls and passive and self.relay is None)
        host, port = listener.address
        return new_local_uri(advertised_host(host, towards), port, secure=tls), listener

    def _chat(
        self,
        session: SipSession,
        *,
        local_uri: MsrpUri,
        remote_path: tuple[MsrpUri, ...],
        active: bool,
        listener: MsrpListener,
    ) -> ChatSession:
        agent = self.agent
        config = agent.config
        return ChatSession(
            local_aor=agent.aor,
            peer_aor=session.peer,
            identity=agent.identity,
            trust=agent.trust,
            local_uri=local_uri,
            remote_path=remote_path,
            active=active,
            emit=agent.emit,
            peer_certificate=agent.peer_certificate(session.peer),
            listener=listener,
            relay=self.relay,
            ssl=agent.transport.client_tls,
            sign=config.sign,
            encrypt=config.encrypt,
            downloads=config.downloads,
            store=agent.store,
            clock=agent.now,
            **({"accept_types": self.accept_types} if self.accept_types is not None else {}),
        )

    # -- outgoing sessions -------------------------------------------------------------------

    async def start_session(
        self,
        to: str,
        *,
        transport: str | None = None,
        tls: bool | None = None,
        ring_limit: float | None = None,
        reuse: bool = True,
    ) -> SipSession:
        """An open session with ``to``: an existing one (``reuse``), or a new one set up
        with INVITE. Raises `SessionSetupError` with words when it cannot be set up."""
        if self._stopped:
            raise SessionSetupError("the agent is stopping: no new sessions")
        peer = parse_aor(to)
        for broken in self.sessions():
            if broken.peer == peer and broken.state == "established" and not broken.open:
                # its MSRP connection is gone: end the dialog too, then start afresh
                why = broken.chat.close_reason if broken.chat is not None else ""
                await self.end_session(broken, f"its MSRP connection ended ({why})")
        if reuse:
            existing = self.session_with(peer)
            if existing is not None:
                return existing
            pending = self._opening.get(peer)
            if pending is not None:
                return await asyncio.shield(pending)
        future: asyncio.Future[SipSession] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._opening[peer] = future
        try:
            session = await self._invite(peer, transport, tls, ring_limit)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(session)
            return session
        finally:
            if self._opening.get(peer) is future:
                del self._opening[peer]

    async def _invite(
        self, peer: str, transport: str | None, tls: bool | None, ring_limit: float | None
    ) -> SipSession:
        agent = self.agent
        try:
            target, _ = agent.route(peer, transport)
            target = await agent.transport.resolve(target)
            await agent.transport.connect(target)
        except (SipError, ValueError, SipTransportError) as exc:
            raise SessionSetupError(f"no route to {peer}: {exc}") from None
        use_tls = (self.msrp_tls or target.transport == "tls") if tls is None else tls
        if self.relay is not None:
            use_tls = self.relay.secure  # the first hop is the relay: its scheme decides
        local_uri, listener = await self._local_uri(use_tls, target.host)
        call_id_holder: list[str] = []
        session = SipSession(call_id="", peer=peer, direction="out", remote=target)
        try:
            path = await self._path_through_relay(session, local_uri, listener)
        except _RelayUnusable as exc:
            if session.chat is not None:
                await session.chat.close()
            raise SessionSetupError(f"the MSRP relay {self.relay} cannot be used: {exc}") from None
        offer = make_offer(path=[str(u) for u in path], tls=use_tls)
        body = offer.to_bytes()
        try:
            contact = agent.contact_uri(target.transport)
        except SipTransportError:
            contact = agent.contact_uri()

        def make(cseq: int, auth: list[tuple[str, str]]) -> SipRequest:
            via = Via.parse(agent._via(target))
            headers = [
                *auth,
                ("User-Agent", "messenger/0.1"),
                ("Allow", ALLOW_WITH_SESSIONS),
            ]
            invite = build_invite(
                from_uri=agent.aor,
                to_uri=peer,
                contact=contact,
                via=via,
                body=body,
                headers=headers,
                cseq=cseq,
                call_id=call_id_holder[0] if call_id_holder else None,
                from_display_name=agent.config.display_name,
            )
            if call_id_holder:
                # a re-sent INVITE (credentials) keeps the From tag of the first one
                first = session.invite
                assert first is not None
                invite.headers.set("From", first.headers.get("From") or "")
            else:
                call_id_holder.append(invite.call_id)
                session.call_id = invite.call_id
                self._sessions[invite.call_id] = session
            session.invite = invite
            return invite

        limit = self.ring_limit if ring_limit is None else ring_limit
        loop = asyncio.get_running_loop()
        cancelled = False

        def ring_out() -> None:
            nonlocal cancelled
            if session.invite is not None and session.state == "calling":
                cancelled = True
                agent.transport.cancel(client_key(session.invite))

        session._ring_timer = loop.call_later(limit, ring_out)
        try:
            outcome = await agent.request_with_auth(make, target)
        finally:
            session._ring_timer.cancel()
        response = outcome.response
        if response is None or not 200 <= response.status < 300:
            reason = self._refusal_words(peer, outcome, cancelled, limit)
            await self._end_quietly(session, reason)
            self._report_response(session, outcome.status, outcome.phrase, reason)
            raise SessionSetupError(reason, status=outcome.status, phrase=outcome.phrase)
        return await self._accepted(session, response, offer, local_uri, listener)

    def _refusal_words(self, peer: str, outcome, cancelled: bool, limit: float) -> str:
        status = outcome.status
        response = outcome.response
        if cancelled and status in (487, 408, 0):
            return (
                f"{peer} did not answer within {limit:g} s; the invitation was cancelled. "
                "Try again later"
            )
        if response is None:
            return outcome.problem or f"no answer from {peer} to the session invitation"
        warning = _warning_text(response)
        if status == 488 or status == 606:
            return f"{peer} refused the session ({status} {response.reason})" + (
                f": {warning}" if warning else ""
            )
        if status in (405, 501):
            return (
                f"{peer} does not take sessions ({status} {response.reason}): it cannot "
                "receive files or large messages; send short messages instead"
            )
        if status == 415:
            return f"{peer} does not understand the session description (415)"
        if status in (480, 486, 600, 603):
            return f"{peer} is not available for a session ({status} {response.reason})"
        if status == 487:
            return "the invitation was cancelled"
        words = outcome.problem or f"{status} {response.reason}"
        return f"the session with {peer} could not be set up: {words}"

    async def _accepted(
        self,
        session: SipSession,
        response: SipResponse,
        offer: SessionDescription,
        local_uri: MsrpUri,
        listener: MsrpListener,
    ) -> SipSession:
        """Our INVITE got its 2xx: dialog, MSRP ready for the peer, then ACK."""
        peer = session.peer
        invite = session.invite
        assert invite is not None
        try:
            session.dialog = Dialog.from_uac(invite, response)
        except SipError as exc:
            reason = f"the answer of {peer} cannot start a session: {exc}"
            await self._send_ack_and_bye(session, response)
            raise SessionSetupError(reason, status=response.status) from None
        problem = ""
        try:
            if response.headers.get("Content-Type", "").split(";")[0].strip().lower() != _SDP:
                raise SdpNegotiationError("the 2xx carries no SDP answer")
            answer = SessionDescription.parse(response.body)
            negotiated = negotiate(offer, answer)
            remote_path = tuple(MsrpUri.parse(u) for u in negotiated.remote_path)
        except (SdpError, MsrpError) as exc:
            problem = f"the session description of {peer} is unusable: {exc}"
        if problem:
            await self._send_ack_and_bye(session, response)
            await self._end_quietly(session, problem)
            raise SessionSetupError(problem, status=488, phrase="Not Acceptable Here")
        session.negotiated = negotiated
        session.state = "connecting"
        active = negotiated.active or self.relay is not None
        chat = session.chat
        if chat is None:
            chat = self._chat(
                session,
                local_uri=local_uri,
                remote_path=remote_path,
                active=active,
                listener=listener,
            )
            session.chat = chat
        else:
            chat.set_remote_path(remote_path)
        opening = asyncio.ensure_future(chat.open(MSRP_CONNECT_TIMEOUT))
        await asyncio.sleep(0)  # a passive side now expects the peer's connection
        await self._send_ack(session, response)
        try:
            await opening
        except (MsrpTransportError, MsrpError, OSError) as exc:
            reason = f"the MSRP connection with {peer} did not come up: {exc}"
            await self.end_session(session, reason)
            raise SessionSetupError(reason) from None
        session.state = "established"
        self._emit_notice(
            "info", f"A session with {peer} is open ({self._describe(session)}).", peer
        )
        return session

    def _describe(self, session: SipSession) -> str:
        negotiated = session.negotiated
        proto = "MSRP over TLS" if negotiated is not None and negotiated.tls else "MSRP over TCP"
        if self.relay is not None:
            proto += f" through the relay {self.relay}"
        elif negotiated is not None and len(negotiated.remote_path) > 1:
            proto += " through the peer's relay"
        return proto

    async def _send_ack(self, session: SipSession, response: SipResponse) -> None:
        agent = self.agent
        dialog = session.dialog
        invite = session.invite
        assert dialog is not None and invite is not None
        try:
            peer = await self._next_hop(dialog)
            ack = dialog.create_ack(invite, via=Via.parse(agent._via(peer)))
            session._ack, session._ack_peer = ack, peer
            agent.transport.send_stateless(ack, peer)
        except (SipError, SipTransportError, ValueError) as exc:
            self._emit_notice(
                "warning", f"the ACK to {session.peer} could not be sent: {exc}", session.peer
            )

    async def _send_ack_and_bye(self, session: SipSession, response: SipResponse) -> None:
        """A 2xx we cannot use: acknowledge it, then end the dialog (RFC 3261 13.2.2.4)."""
        if session.dialog is None:
            with contextlib.suppress(SipError):
                session.dialog = Dialog.from_uac(session.invite, response)  # type: ignore[arg-type]
        if session.dialog is None:
            return
        await self._send_ack(session, response)
        await self._bye(session)

    async def _next_hop(self, dialog: Dialog) -> Peer:
        """Where an in-dialog request goes (RFC 3261 12.2.1.1): the first proxy that
        recorded the route, else the peer's Contact."""
        from messenger.ua.agent import UserAgent

        peer, _ = UserAgent._uri_peer(dialog.next_hop, None)
        peer = await self.agent.transport.resolve(peer)
        await self.agent.transport.connect(peer)
        return peer

    def _report_response(self, session: SipSession, status: int, phrase: str, reason: str) -> None:
        if not reason:
            return
        self.agent.emit(
            Response(
                self.agent.now(),
                method="INVITE",
                status=status,
                reason_phrase=phrase,
                to=session.peer,
                call_id=session.call_id,
                explanation=reason,
            )
        )

    # -- ending ------------------------------------------------------------------------------

    async def end_session(self, session: SipSession, reason: str = "ended by the user") -> None:
        """Send BYE (when the dialog is up) and close the MSRP side."""
        if session.state == "ended":
            return
        if session.dialog is not None and session.state in ("connecting", "established"):
            await self._bye(session)
        await self._end_quietly(session, reason)

    async def _bye(self, session: SipSession) -> None:
        dialog = session.dialog
        if dialog is None or dialog.terminated:
            return
        agent = self.agent
        try:
            peer = await self._next_hop(dialog)
            bye = dialog.create_request("BYE", via=Via.parse(agent._via(peer)))
            dialog.terminate()
            outcome = await asyncio.wait_for(agent.request(bye, peer), _BYE_TIMEOUT)
        except (SipError, SipTransportError, ValueError, TimeoutError) as exc:
            self._emit_notice(
                "warning",
                f"the session with {session.peer} closed without an answer to BYE: {exc}",
                session.peer,
            )
            return
        if outcome.status and not 200 <= outcome.status < 300 and outcome.status != 481:
            self._emit_notice(
                "warning",
                f"{session.peer} answered the BYE with {outcome.status} {outcome.phrase}",
                session.peer,
            )

    async def _end_quietly(self, session: SipSession, reason: str) -> None:
        """Forget the session and close its MSRP side (no SIP)."""
        was = session.state
        session.state = "ended"
        session.reason = reason
        if session._ring_timer is not None:
            session._ring_timer.cancel()
        if session.dialog is not None:
            session.dialog.terminate()
        if session.server_key is not None:
            self._by_server_key.pop(session.server_key, None)
        if self._sessions.get(session.call_id) is session:
            del self._sessions[session.call_id]
        if session._answered is not None and not session._answered.done():
            session._answered.set_result(None)
        chat = session.chat
        if chat is not None:
            with contextlib.suppress(MsrpError, OSError):
                await chat.close()
        if was in ("connecting", "established"):
            self._emit_notice(
                "info", f"The session with {session.peer} ended: {reason}.", session.peer
            )

    async def stop(self) -> None:
        """End every session (BYE) and close the MSRP listeners."""
        self._stopped = True
        for session in list(self._sessions.values()):
            if session.state == "ringing" and session.server_key is not None:
                self._answer(session, 480, "Temporarily Unavailable")
            elif session.state == "calling" and session.invite is not None:
                self.agent.transport.cancel(client_key(session.invite))
            with contextlib.suppress(Exception):
                await self.end_session(session, "the agent stopped")
        for listener in list(self._listeners.values()):
            with contextlib.suppress(Exception):
                await listener.close()
        self._listeners.clear()

    # -- SIP events --------------------------------------------------------------------------

    def observe(self, event: SipEvent) -> None:
        """Every SIP event of the agent passes here first (requests come through the
        method handlers instead)."""
        if isinstance(event, ResponseReceived):
            response = event.response
            try:
                if response.cseq.method != "INVITE":
                    return
                session = self._sessions.get(response.call_id)
            except SipError:
                return
            if session is None:
                return
            if 200 <= response.status < 300 and session._ack and session._ack_peer:
                # a retransmitted 2xx: our ACK was lost
                self.agent.transport.send_stateless(session._ack, session._ack_peer)
        elif isinstance(event, InviteCancelled):
            session = self._by_server_key.get(event.key)
            if session is not None:
                self._spawn(self._end_quietly(session, f"{session.peer} cancelled the invitation"))
                self._emit_notice(
                    "info", f"{session.peer} cancelled its session invitation.", session.peer
                )
        elif isinstance(event, AckTimeout):
            session = self._by_server_key.get(event.key)
            if session is not None and session.state != "ended":
                self._spawn(
                    self.end_session(session, f"{session.peer} never acknowledged the session")
                )

    def _spawn(self, coro) -> asyncio.Task:
        return self.agent._spawn(coro)

    def _on_request(self, event: RequestReceived) -> None:
        method = event.request.method
        if method == "INVITE":
            self._on_invite(event)
        elif method == "ACK":
            self._on_ack(event)
        elif method == "BYE":
            self._on_bye(event)

    # -- incoming sessions -------------------------------------------------------------------

    def _answer(
        self,
        session_or_key: SipSession | RequestReceived,
        status: int,
        phrase: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        response: SipResponse | None = None,
    ) -> None:
        transport = self.agent.transport
        if isinstance(session_or_key, SipSession):
            key, request, remote = (
                session_or_key.server_key,
                session_or_key.invite,
                session_or_key.remote,
            )
            tag = session_or_key.dialog.local_tag if session_or_key.dialog else None
        else:
            key, request, remote = session_or_key.key, session_or_key.request, session_or_key.remote
            tag = None
        assert request is not None
        if response is None:
            response = request.make_response(status, phrase, headers or [], body, to_tag=tag)
        if key is None:
            transport.send_stateless(response, remote)  # type: ignore[arg-type]
        else:
            transport.send_response(key, response)

    def _on_invite(self, event: RequestReceived) -> None:
        request = event.request
        if dialog_id_of_request(request) is not None:
            # a re-INVITE in an existing dialog: the session stays as it is
            self._answer(
                event,
                488,
                "Not Acceptable Here",
                [("Warning", '399 messenger "changing a session is not supported"')],
            )
            return
        try:
            peer = parse_aor(request.from_address.uri)
        except SipError as exc:
            self._answer(event, 400, "Bad From")
            self._emit_notice(
                "warning", f"an invitation with an unreadable From was refused: {exc}", None
            )
            return
        if self._stopped or event.key is None:
            self._answer(event, 480, "Temporarily Unavailable")
            return
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not request.body:
            self._refuse_offer(
                event,
                peer,
                SdpNegotiationError(
                    "the INVITE carries no SDP offer (an offer in the ACK is not supported)"
                ),
            )
            return
        if content_type != _SDP:
            self._answer(event, 415, "Unsupported Media Type", [("Accept", _SDP)])
            self._emit_notice(
                "warning",
                f"an invitation from {peer} was refused: its body is {content_type or 'untyped'}, "
                "not a session description (415)",
                peer,
            )
            return
        try:
            offer = SessionDescription.parse(request.body)
        except SdpError as exc:
            self._refuse_offer(event, peer, SdpNegotiationError(f"unreadable SDP: {exc}"))
            return
        session = SipSession(
            call_id=request.call_id,
            peer=peer,
            direction="in",
            state="ringing",
            invite=request,
            server_key=event.key,
            remote=event.remote,  # type: ignore[arg-type]
        )
        session._answered = asyncio.get_running_loop().create_future()
        self._sessions[session.call_id] = session
        self._by_server_key[event.key] = session
        self._spawn(self._answer_invite(session, offer))

    def _refuse_offer(self, event: RequestReceived, peer: str, exc: SdpNegotiationError) -> None:
        response = exc.response_for(event.request, agent="messenger")
        self._answer(event, exc.status, response=response)
        self._emit_notice(
            "warning", f"a session invitation from {peer} was refused (488): {exc}", peer
        )

    async def _answer_invite(self, session: SipSession, offer: SessionDescription) -> None:
        peer = session.peer
        invite = session.invite
        assert invite is not None
        remote = session.remote
        towards = remote.host if remote is not None else "127.0.0.1"
        try:
            offered = MsrpMedia.from_media(msrp_media(offer)[1])
            passive = self._answer_setup(offered) == "passive" and self.relay is None
            if passive and offered.tls and self.agent.transport.server_tls is None:
                raise SdpNegotiationError(
                    "MSRP over TLS through the caller's relay needs a TLS certificate here, "
                    "and none is configured"
                )
            local_uri, listener = await self._local_uri(offered.tls, towards, passive=passive)
        except SdpNegotiationError as exc:
            self._refuse_offer_for(session, exc)
            return
        except (SessionSetupError, MsrpTransportError) as exc:
            self._refuse_offer_for(session, SdpNegotiationError(str(exc)))
            return
        if session.state != "ringing":  # cancelled meanwhile
            return
        to_tag = new_tag()
        ringing = invite.make_response(180, "Ringing", _record_route(invite), to_tag=to_tag)
        session.dialog = (
            Dialog.from_uas(invite, ringing, secure=False)
            if invite.headers.get("Contact")
            else None
        )
        self._answer(session, 180, response=ringing)
        if not self.auto_answer:
            self._emit_notice("info", f"{peer} invites you to a session.", peer)
            loop = asyncio.get_running_loop()
            session._ring_timer = loop.call_later(self.ring_limit, self._ring_out, session)
            assert session._answered is not None
            await session._answered
            if session.state != "ringing":
                return
        await self._accept(session, offer, offered, local_uri, listener, to_tag)

    def _answer_setup(self, offered: MsrpMedia) -> str:
        """Our a=setup for an offer (RFC 6135): active, as RFC 4975 endpoints expect,
        unless the offerer connects (``active``) or sits behind a relay that must reach
        us; with a relay of our own we connect to it whatever we answer."""
        if offered.setup == "active":
            return "passive"
        if offered.setup == "actpass" and len(offered.path) > 1 and self.relay is None:
            return "passive"
        return "active"

    def _refuse_offer_for(self, session: SipSession, exc: SdpNegotiationError) -> None:
        assert session.invite is not None
        tag = session.dialog.local_tag if session.dialog is not None else None
        response = exc.response_for(session.invite, agent="messenger", to_tag=tag)
        self._answer(session, exc.status, response=response)
        self._spawn(self._end_quietly(session, f"refused: {exc}"))
        self._emit_notice(
            "warning",
            f"a session invitation from {session.peer} was refused (488): {exc}",
            session.peer,
        )

    def _ring_out(self, session: SipSession) -> None:
        if session.state != "ringing":
            return
        self._answer(session, 480, "Temporarily Unavailable")
        self._spawn(self._end_quietly(session, "nobody answered"))
        self._emit_notice(
            "info",
            f"The session invitation from {session.peer} was not answered in time.",
            session.peer,
        )

    def accept(self, call_id: str) -> bool:
        """Answer a ringing incoming session (when ``auto_answer`` is off)."""
        session = self._sessions.get(call_id)
        if session is None or session.state != "ringing" or session._answered is None:
            return False
        if session._ring_timer is not None:
            session._ring_timer.cancel()
        if not session._answered.done():
            session._answered.set_result(None)
        return True

    def decline(self, call_id: str) -> bool:
        """Refuse a ringing incoming session with 603 Decline."""
        session = self._sessions.get(call_id)
        if session is None or session.state != "ringing":
            return False
        self._answer(session, 603, "Decline")
        self._spawn(self._end_quietly(session, "declined"))
        return True

    async def _accept(
        self,
        session: SipSession,
        offer: SessionDescription,
        offered: MsrpMedia,
        local_uri: MsrpUri,
        listener: MsrpListener,
        to_tag: str,
    ) -> None:
        agent = self.agent
        peer = session.peer
        invite = session.invite
        assert invite is not None
        try:
            path = await self._path_through_relay(session, local_uri, listener)
        except _RelayUnusable as exc:
            self._refuse_offer_for(
                session, SdpNegotiationError(f"our MSRP relay cannot be used: {exc}")
            )
            return
        chat = session.chat
        if session.state != "ringing":  # cancelled meanwhile
            await self._end_quietly(session, session.reason or "cancelled")
            return
        try:
            setup = self._answer_setup(offered)
            answer, negotiated = make_answer(
                offer,
                path=lambda tls: [str(u) for u in path],
                setup=setup,
                allow_tls=agent.transport.server_tls is not None or setup == "active",
            )
            remote_path = tuple(MsrpUri.parse(u) for u in negotiated.remote_path)
        except (SdpError, MsrpError) as exc:
            error = exc if isinstance(exc, SdpNegotiationError) else SdpNegotiationError(str(exc))
            self._refuse_offer_for(session, error)
            return
        session.negotiated = negotiated
        active = negotiated.active or self.relay is not None
        if chat is None:
            chat = self._chat(
                session,
                local_uri=local_uri,
                remote_path=remote_path,
                active=active,
                listener=listener,
            )
            session.chat = chat
        else:
            chat.set_remote_path(remote_path)
        contact = agent.contact_uri(session.remote.transport if session.remote else None)
        ok = invite.make_response(
            200,
            "OK",
            [
                *_record_route(invite),
                ("Contact", f"<{contact}>"),
                ("Allow", ALLOW_WITH_SESSIONS),
                ("User-Agent", "messenger/0.1"),
                ("Content-Type", _SDP),
            ],
            answer.to_bytes(),
            to_tag=to_tag,
        )
        try:
            session.dialog = Dialog.from_uas(invite, ok, local_contact=f"<{contact}>", secure=False)
        except SipError as exc:
            self._answer(session, 400, "Bad Request", [("Warning", f'399 messenger "{exc}"')])
            await self._end_quietly(session, f"the invitation cannot start a dialog: {exc}")
            return
        session.state = "connecting"
        session._answered = asyncio.get_running_loop().create_future()
        opening: asyncio.Future[None] | None = None
        if not active:
            opening = asyncio.ensure_future(chat.open(MSRP_CONNECT_TIMEOUT))
            await asyncio.sleep(0)  # now expecting the peer's (or its relay's) connection
        self._answer(session, 200, response=ok)
        if opening is None:
            # RFC 6135: the active side connects; it waits for the ACK so that the offerer
            # is surely listening for this session.
            try:
                await asyncio.wait_for(asyncio.shield(session._answered), 32)
            except TimeoutError:
                pass
            if session.state != "connecting":
                return
            opening = asyncio.ensure_future(chat.open(MSRP_CONNECT_TIMEOUT))
        try:
            await opening
        except (MsrpTransportError, MsrpError, OSError) as exc:
            await self.end_session(
                session, f"the MSRP connection with {peer} did not come up: {exc}"
            )
            return
        if session.state != "connecting":
            await chat.close()
            return
        session.state = "established"
        self._emit_notice(
            "info", f"A session with {peer} is open ({self._describe(session)}).", peer
        )

    def _on_ack(self, event: RequestReceived) -> None:
        try:
            session = self._sessions.get(event.request.call_id)
        except SipError:
            return
        if session is None or session.direction != "in" or session.dialog is None:
            return
        with contextlib.suppress(SipError):
            session.dialog.receive_request(event.request)
        if session._answered is not None and not session._answered.done():
            session._answered.set_result(None)

    def _on_bye(self, event: RequestReceived) -> None:
        request = event.request
        try:
            session = self._sessions.get(request.call_id)
        except SipError:
            session = None
        dialog = session.dialog if session is not None else None
        if session is None or dialog is None or not dialog.matches_request(request):
            self.agent.respond(event, 481, "Call/Transaction Does Not Exist")
            return
        try:
            dialog.receive_request(request)
        except SipError as exc:
            status = getattr(exc, "status", 400)
            self.agent.respond(event, status)
            return
        self.agent.respond(event, 200)
        self._spawn(self._end_quietly(session, f"{session.peer} ended it"))

    # -- carrying messages and files ---------------------------------------------------------

    async def deliver(
        self,
        peer: str,
        message_id: str,
        content: bytes,
        content_type: str,
        *,
        sign: bool,
        recipient,
    ) -> tuple[int, str, str]:
        """Carry one message over a session with ``peer`` (opened on demand): the
        (status, phrase, explanation) of its outcome, as for a MESSAGE."""
        try:
            session = await self.start_session(peer)
        except SessionSetupError as exc:
            return exc.status, exc.phrase or "Session Failed", str(exc)
        chat = session.chat
        assert chat is not None
        if recipient is not None:
            chat.peer_certificate = recipient
        try:
            result = await chat.send_content(
                content,
                content_type,
                transfer_id=message_id,
                sign=sign,
                encrypt=recipient is not None,
                recipient=recipient,
            )
        except (MsrpTransportError, MsrpError) as exc:
            return 0, "Not Sent", f"the session with {peer} broke: {exc}"
        return self._outcome(result)

    @staticmethod
    def _outcome(result: TransferResult) -> tuple[int, str, str]:
        if result.delivered:
            return 200, "OK", result.explanation
        if result.stopped:
            return result.status, "Stopped By The Receiver", result.explanation
        phrase = {
            0: "Cancelled" if result.cancelled else "Not Delivered",
            408: "Request Timeout",
            413: "Too Large",
            415: "Unsupported Media Type",
            481: "No Such Session",
        }.get(result.status, "Failed")
        return result.status, phrase, result.explanation

    async def send_file(
        self,
        to: str,
        path: str | Path,
        *,
        transfer_id: str | None = None,
        sign: bool | None = None,
        encrypt: bool | None = None,
    ) -> SendResult:
        """Send a file over a session with ``to``: stored first (its name and size), then
        protected whole and sent in chunks; never raises for network trouble. ``sign`` and
        ``encrypt`` apply to this file alone (None: the account's policy)."""
        from messenger.ua.agent import SendResult

        agent = self.agent
        peer = parse_aor(to)
        path = Path(path)
        message_id = transfer_id or new_message_id()
        now = agent.now()
        sign = agent.config.sign if sign is None else sign
        encrypt = agent.config.encrypt if encrypt is None else encrypt
        if not path.is_file():
            return SendResult(
                message_id,
                0,
                "Not Sent",
                False,
                f"{path} is not a readable file",
                False,
                False,
            )
        agent.store.add_outgoing(
            peer=peer,
            local=agent.aor,
            message_id=message_id,
            content_type=FILE_REFERENCE_TYPE,
            content=file_reference(path),
            at=now,
            transport="msrp",
        )
        agent.emit(MessageStored(at=now, peer=peer, message_id=message_id))
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            session = await self.start_session(peer)
        except SessionSetupError as exc:
            return self._file_result(
                message_id, peer, exc.status, exc.phrase or "Session Failed", str(exc), False, False
            )
        chat = session.chat
        assert chat is not None
        recipient = agent.peer_certificate(peer) if encrypt else None
        if recipient is not None:
            chat.peer_certificate = recipient
        try:
            result = await chat.send_content(
                path.read_bytes,
                content_type,
                filename=path.name,
                size=path.stat().st_size,
                transfer_id=message_id,
                sign=sign,
                encrypt=encrypt,
                recipient=recipient,
            )
        except (MsrpTransportError, MsrpError, OSError) as exc:
            return self._file_result(message_id, peer, 0, "Not Sent", str(exc), False, False)
        status, phrase, explanation = self._outcome(result)
        return self._file_result(
            message_id, peer, status, phrase, explanation, result.encrypted, result.signed
        )

    def _file_result(
        self,
        message_id: str,
        peer: str,
        status: int,
        phrase: str,
        explanation: str,
        encrypted: bool,
        signed: bool,
    ) -> SendResult:
        from messenger.ua.agent import SendResult

        agent = self.agent
        now = agent.now()
        delivered = 200 <= status < 300
        state = "delivered" if delivered else "failed"
        with contextlib.suppress(Exception):
            agent.store.set_delivery(
                message_id, state, at=now, status=status or None, reason=explanation
            )
        agent.emit(
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
            reason_phrase=phrase,
            delivered=delivered,
            explanation=explanation,
            encrypted=encrypted,
            signed=signed,
        )

    def cancel_transfer(self, transfer_id: str) -> bool:
        """Cancel a running transfer: an outgoing one is aborted with ``#``, an incoming one
        is discarded and its sender told to stop (MSRP 413); False when unknown or ended."""
        for session in self._sessions.values():
            chat = session.chat
            if chat is not None and chat.cancel(transfer_id):
                return True
        return False
