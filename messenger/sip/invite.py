"""INVITE transactions (RFC 3261 sections 17.1.1 and 17.2.1, with the Accepted state of
RFC 6026), the ACK a client transaction sends for a non-2xx final response (17.1.1.3) and
the CANCEL of a pending INVITE (section 9).

Sans-IO, in the same shape as the non-INVITE transactions of
`messenger.sip.transaction`: a transaction is created with its request, the transport
reliability and ``now``; it is fed responses, requests and timer ticks with ``now``; it
hands back `messages_to_send`, `next_timer` (an absolute time) and `events`.

Timers (T1, T2 and T4 from `TimerConfig`):

=====  ======  ====================================================================
A      client  INVITE retransmission, T1 doubling without cap (unreliable only)
B      client  64*T1: no response at all -> `TransactionTimeout`
D      client  32 s (0 on reliable): absorbs retransmitted non-2xx finals
M      client  64*T1 in Accepted (RFC 6026): 2xx retransmissions go to the TU
G      server  non-2xx final retransmission, T1 doubling up to T2 (unreliable only)
H      server  64*T1 waiting for the ACK of a non-2xx final -> `TransactionTimeout`
I      server  T4 (0 on reliable) in Confirmed: absorbs ACK retransmissions
L      server  64*T1 in Accepted (RFC 6026); an unacknowledged 2xx -> `AckTimeout`
=====  ======  ====================================================================

The 2xx retransmission that RFC 3261 section 13.3.1.4 gives to the UAS core (T1 doubling
up to T2, until the ACK arrives) is done by the server transaction in Accepted, on every
transport, as the section asks (a later hop may be UDP). Most users drive these classes
through `messenger.sip.transaction.TransactionLayer`, which routes ACKs for 2xx (they
carry a new branch) to the transaction by dialog identifiers.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from .errors import SipParseError, SipTransactionError
from .events import ResponseReceived, SipEvent, TransactionTerminated, TransactionTimeout
from .headers import CSeq, Headers
from .ids import new_tag
from .message import SipRequest, SipResponse
from .transaction import (
    TimerConfig,
    TransactionKey,
    _Transaction,
    checked_client_key,
    client_key,
    server_key,
)

__all__ = [
    "TIMER_D",
    "AckTimeout",
    "InviteCancelled",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "InviteState",
    "build_ack",
    "build_cancel",
]

#: Timer D on unreliable transports: "at least 32 seconds" (RFC 3261 table 4).
TIMER_D = 32.0


class InviteState(enum.Enum):
    """States of the INVITE client (figure 5) and server (figure 7) transactions, with
    the Accepted state RFC 6026 adds to both."""

    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


@dataclass(frozen=True)
class InviteCancelled(SipEvent):
    """A CANCEL ended a pending INVITE: ``key`` is the INVITE server transaction, which
    has already answered 487 (Request Terminated); the CANCEL got its 200. The user agent
    stops ringing and forgets the offer."""

    key: TransactionKey
    cancel: SipRequest
    remote: object


@dataclass(frozen=True)
class AckTimeout(SipEvent):
    """No ACK came for the 2xx the INVITE server transaction ``key`` sent, within 64*T1.
    The dialog is confirmed but the session should be ended with a BYE (RFC 3261
    section 13.3.1.4)."""

    key: TransactionKey
    response: SipResponse


def _copy_routes(request: SipRequest, out: Headers) -> None:
    for route in request.headers.get_all("Route"):
        out.add("Route", route)


def build_ack(request: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK for a 3xx-6xx final ``response`` to INVITE ``request`` (section 17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number and top Via (so the same branch) as the
    INVITE, To from the response (with its tag), the INVITE's Route header fields, and no
    body. A 2xx is acknowledged by the dialog instead (`messenger.sip.dialog`).
    """
    if request.method != "INVITE":
        raise SipTransactionError(f"only an INVITE is acknowledged, not {request.method}")
    if response.status < 300:
        raise SipTransactionError("the ACK for a 2xx belongs to the dialog, not the transaction")
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    headers.add("Max-Forwards", request.headers.get("Max-Forwards") or "70")
    headers.add("From", request.headers.get("From") or "")
    headers.add("To", response.headers.get("To") or request.headers.get("To") or "")
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", str(CSeq(request.cseq.seq, "ACK")))
    _copy_routes(request, headers)
    return SipRequest("ACK", request.uri, headers)


def build_cancel(request: SipRequest) -> SipRequest:
    """The CANCEL of a pending ``request`` (section 9.1).

    Same Request-URI, Call-ID, To, From and CSeq number as the request, method CANCEL,
    a single Via equal to the request's top Via (same branch, so the CANCEL matches the
    INVITE's server transaction), and the request's Route header fields.
    """
    if request.method in ("ACK", "CANCEL"):
        raise SipTransactionError(f"{request.method} cannot be cancelled")
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    headers.add("Max-Forwards", request.headers.get("Max-Forwards") or "70")
    for name in ("From", "To", "Call-ID"):
        headers.add(name, request.headers.get(name) or "")
    headers.add("CSeq", str(CSeq(request.cseq.seq, "CANCEL")))
    _copy_routes(request, headers)
    return SipRequest("CANCEL", request.uri, headers)


class _InviteTransaction(_Transaction):
    """The shared base with INVITE states instead of the non-INVITE ones."""

    state: InviteState  # type: ignore[assignment]

    @property
    def terminated(self) -> bool:
        """Whether the transaction is over (it can be forgotten once drained)."""
        return self.state is InviteState.TERMINATED

    def _terminate(self) -> None:
        self.state = InviteState.TERMINATED
        self._deadlines.clear()
        self._events.append(TransactionTerminated(self.key))


class InviteClientTransaction(_InviteTransaction):
    """INVITE client transaction (RFC 3261 section 17.1.1, figure 5; RFC 6026).

    The INVITE is queued on creation. On an unreliable transport timer A retransmits it
    at T1, 2*T1, 4*T1 ... until a response arrives; timer B (64*T1) ends a transaction
    that got no response with `TransactionTimeout`. A provisional response stops both.
    A 3xx-6xx final is acknowledged here (`build_ack`) and every retransmission of it is
    acknowledged again during timer D. A 2xx moves to Accepted for 64*T1 (timer M): the
    2xx and its retransmissions (and 2xx from other forks) are handed to the TU, which
    sends the ACK through its dialog.

    Example::

        tx = InviteClientTransaction(invite, reliable=False, now=0.0)
        send(tx.messages_to_send())          # the INVITE
        tx.handle_timer(0.5)                 # timer A: the INVITE again
        tx.receive_response(ringing, now=0.7)
        tx.receive_response(busy, now=2.0)   # 486: the ACK is queued
        send(tx.messages_to_send())
        tx.events()  # [ResponseReceived(180), ResponseReceived(486)]

    ``request_cancel`` gives the CANCEL to send (section 9.1), at once when a provisional
    response came, otherwise as soon as one comes (`take_cancel`).
    """

    def __init__(
        self,
        request: SipRequest,
        *,
        reliable: bool,
        now: float,
        timers: TimerConfig | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise SipTransactionError(f"{request.method} needs a non-INVITE transaction")
        super().__init__(checked_client_key(request), reliable, timers or TimerConfig())
        self.state = InviteState.CALLING
        self.request = request
        self._wire = request.to_bytes()
        self._ack: bytes | None = None
        self._interval = self.timers.t1
        self._cancel_wanted = False
        self._cancel_issued = False
        self._cancel_ready: SipRequest | None = None
        self._outbox.append(self._wire)
        if not reliable:
            self._deadlines["A"] = now + self._interval
        self._deadlines["B"] = now + 64 * self.timers.t1

    def matches(self, response: SipResponse) -> bool:
        """Section 17.1.3: same top Via branch and CSeq method INVITE."""
        try:
            return client_key(response) == self.key
        except SipParseError:
            return False

    def receive_response(self, response: SipResponse, now: float) -> None:
        """Feed a response that matched this transaction."""
        status = response.status
        if self.state in (InviteState.CALLING, InviteState.PROCEEDING):
            self._events.append(ResponseReceived(self.key, response))
            if status < 200:
                self.state = InviteState.PROCEEDING
                self._deadlines.pop("A", None)
                self._deadlines.pop("B", None)
                if self._cancel_wanted and not self._cancel_issued:
                    self._cancel_issued = True
                    self._cancel_ready = build_cancel(self.request)
                    self._deadlines["cancel"] = now + 64 * self.timers.t1
                return
            self._deadlines.clear()
            if status < 300:
                self.state = InviteState.ACCEPTED
                self._deadlines["M"] = now + 64 * self.timers.t1
                return
            self._ack = build_ack(self.request, response).to_bytes()
            self._outbox.append(self._ack)
            self.state = InviteState.COMPLETED
            if self.reliable:
                self._terminate()
            else:
                self._deadlines["D"] = now + TIMER_D
        elif self.state is InviteState.ACCEPTED:
            if 200 <= status < 300:
                self._events.append(ResponseReceived(self.key, response))
        elif self.state is InviteState.COMPLETED and status >= 300 and self._ack is not None:
            self._outbox.append(self._ack)

    def request_cancel(self, now: float) -> SipRequest | None:
        """Ask to cancel the INVITE (section 9.1).

        Returns the CANCEL to send in its own non-INVITE client transaction when a
        provisional response has arrived. In Calling the CANCEL must wait: None is
        returned and `take_cancel` hands it over once a provisional response comes.
        After a final response there is nothing left to cancel: None. If no final
        response comes within 64*T1 of the CANCEL, the transaction ends with
        `TransactionTimeout`.
        """
        if self.state is InviteState.PROCEEDING:
            if self._cancel_wanted:
                return None
            self._cancel_wanted = self._cancel_issued = True
            self._deadlines["cancel"] = now + 64 * self.timers.t1
            return build_cancel(self.request)
        if self.state is InviteState.CALLING:
            self._cancel_wanted = True
        return None

    def take_cancel(self) -> SipRequest | None:
        """The CANCEL that became sendable when a provisional response arrived (once)."""
        out, self._cancel_ready = self._cancel_ready, None
        return out

    def _fire(self, name: str, now: float) -> None:
        if name == "A":
            self._outbox.append(self._wire)
            self._interval *= 2
            self._deadlines["A"] = now + self._interval
        elif name in ("B", "cancel"):
            self._events.append(TransactionTimeout(self.key))
            self._terminate()
        elif name in ("D", "M"):
            self._terminate()


class InviteServerTransaction(_InviteTransaction):
    """INVITE server transaction (RFC 3261 section 17.2.1, figure 7; RFC 6026).

    Created with the INVITE (which the TU receives separately); it answers ``100 Trying``
    at once unless ``send_trying=False``. A retransmitted INVITE is answered with the last
    response sent. A 3xx-6xx final is retransmitted by timer G (unreliable transports)
    until the ACK arrives (Confirmed, then timer I) or timer H gives up with
    `TransactionTimeout`. A 2xx moves to Accepted: the 2xx is retransmitted at T1,
    2*T1 ... T2 until `receive_request` gets its ACK; after 64*T1 (timer L) the
    transaction ends, with `AckTimeout` when no ACK came.

    Example::

        tx = InviteServerTransaction(invite, reliable=False, now=0.0)
        send(tx.messages_to_send())                            # 100 Trying
        tx.send_response(invite.make_response(180, to_tag=t), now=0.1)
        tx.send_response(invite.make_response(200, to_tag=t, body=sdp), now=3.0)
        tx.handle_timer(3.5)                                   # the 200 again
        tx.receive_request(ack, now=3.6)  # True: the TU gets this ACK of the 2xx
    """

    def __init__(
        self,
        request: SipRequest,
        *,
        reliable: bool,
        now: float,
        timers: TimerConfig | None = None,
        send_trying: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise SipTransactionError(f"{request.method} needs a non-INVITE transaction")
        super().__init__(server_key(request), reliable, timers or TimerConfig())
        self.state = InviteState.PROCEEDING
        self.request = request
        self.to_tag: str | None = request.to_address.tag
        self.final_response: SipResponse | None = None
        self.acknowledged = False
        self._rng = rng
        self._last_response: bytes | None = None
        self._interval = self.timers.t1
        if send_trying:
            self._send(request.make_response(100))

    def _send(self, response: SipResponse) -> None:
        self._last_response = response.to_bytes()
        self._outbox.append(self._last_response)

    def receive_request(self, request: SipRequest, now: float) -> bool:
        """Feed a retransmitted INVITE or an ACK that matched this transaction.

        Returns True only for the ACK of a 2xx (state Accepted): the TU must see that one
        (it may carry the SDP answer); everything else is absorbed here.
        """
        if request.method == "ACK":
            if self.state is InviteState.COMPLETED:
                self.acknowledged = True
                self.state = InviteState.CONFIRMED
                self._deadlines.pop("G", None)
                self._deadlines.pop("H", None)
                if self.reliable:
                    self._terminate()
                else:
                    self._deadlines["I"] = now + self.timers.t4
            elif self.state is InviteState.ACCEPTED:
                self.acknowledged = True
                self._deadlines.pop("G", None)
                return True
            return False
        in_progress = self.state in (InviteState.PROCEEDING, InviteState.COMPLETED)
        if in_progress and self._last_response is not None:
            self._outbox.append(self._last_response)
        return False

    def send_response(self, response: SipResponse, now: float) -> None:
        """Send a response from the TU. Only one final response is sent: later ones
        are dropped, as section 17.2.1 requires."""
        if self.state is not InviteState.PROCEEDING:
            return
        tag = response.to_address.tag
        if tag is not None and response.status > 100:
            self.to_tag = tag
        self._send(response)
        if response.status < 200:
            return
        self.final_response = response
        self._interval = self.timers.t1
        if response.status < 300:
            self.state = InviteState.ACCEPTED
            self._deadlines["G"] = now + self._interval
            self._deadlines["L"] = now + 64 * self.timers.t1
            return
        self.state = InviteState.COMPLETED
        if not self.reliable:
            self._deadlines["G"] = now + self._interval
        self._deadlines["H"] = now + 64 * self.timers.t1

    def cancel(self, now: float) -> bool:
        """A matching CANCEL arrived (section 9.2): answer 487 to the INVITE if no final
        response went out yet. Returns whether the INVITE was terminated by it."""
        if self.state is not InviteState.PROCEEDING:
            return False
        self.send_response(self.request.make_response(487, to_tag=self.local_tag()), now)
        return True

    def local_tag(self) -> str:
        """The To tag of this transaction's responses (drawn once if none was sent yet),
        which the 200 to a CANCEL reuses (section 9.2)."""
        if self.to_tag is None:
            self.to_tag = new_tag(self._rng)
        return self.to_tag

    def _fire(self, name: str, now: float) -> None:
        if name == "G" and self._last_response is not None:
            self._outbox.append(self._last_response)
            self._interval = min(2 * self._interval, self.timers.t2)
            self._deadlines["G"] = now + self._interval
        elif name == "H":
            self._events.append(TransactionTimeout(self.key))
            self._terminate()
        elif name == "I":
            self._terminate()
        elif name == "L":
            if not self.acknowledged and self.final_response is not None:
                self._events.append(AckTimeout(self.key, self.final_response))
            self._terminate()
