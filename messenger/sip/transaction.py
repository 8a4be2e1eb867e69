"""Non-INVITE SIP transactions (RFC 3261 sections 17.1.2 and 17.2.2) with timers E, F, J
and K, transaction matching (sections 17.1.3 and 17.2.3) and the `TransactionLayer` that
owns many transactions (the INVITE ones of `messenger.sip.invite` too).

Sans-IO, in the shape of aioquic: a transaction is created with its request, the transport
reliability and ``now``; it is fed responses, requests and timer ticks with ``now``; it is
asked for `messages_to_send`, `next_timer` (an absolute time) and `events`. Retransmissions
happen only on unreliable transports. Timers that RFC 3261 sets to zero on reliable
transports (J, K) terminate the transaction at once.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import SipError, SipParseError, SipTransactionError
from .events import (
    MessageDiscarded,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    UnmatchedResponse,
)
from .ids import BRANCH_MAGIC_COOKIE, new_branch
from .message import SipRequest, SipResponse, best_effort_response_400, parse_message

if TYPE_CHECKING:
    from .invite import InviteClientTransaction, InviteServerTransaction

__all__ = [
    "ClientTransaction",
    "Outgoing",
    "ServerTransaction",
    "TimerConfig",
    "TransactionKey",
    "TransactionLayer",
    "TransactionState",
    "client_key",
    "new_branch",
    "server_key",
]


@dataclass(frozen=True)
class TimerConfig:
    """RFC 3261 timer values in seconds (section 17.1.1.1 and table 4)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timer_f(self) -> float:
        """Non-INVITE client transaction timeout: 64*T1."""
        return 64 * self.t1

    @property
    def timer_j(self) -> float:
        """Wait time for non-INVITE request retransmissions at the server: 64*T1."""
        return 64 * self.t1


class TransactionState(enum.Enum):
    """States of the non-INVITE client and server transactions (figures 6 and 8)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


@dataclass(frozen=True)
class TransactionKey:
    """What identifies a transaction: top Via branch and CSeq/request method, plus the top
    Via sent-by for server transactions (None for client ones)."""

    branch: str
    method: str
    sent_by: tuple[str, int | None] | None = None


def _plain(key: TransactionKey) -> tuple[str, str, tuple[str, int | None] | None]:
    """``key`` as a plain tuple (which the cycle collector stops tracking)."""
    return (key.branch, key.method, key.sent_by)


def client_key(message: SipRequest | SipResponse) -> TransactionKey:
    """Section 17.1.3: the key of the client transaction a request creates or a response
    belongs to (top Via branch + CSeq method). Raises `SipParseError` if unreadable."""
    branch = message.top_via.branch
    if not branch:
        raise SipParseError("top Via has no branch")
    return TransactionKey(branch, message.cseq.method)


def server_key(request: SipRequest) -> TransactionKey:
    """Section 17.2.3: the key of the server transaction a request belongs to.

    With an RFC 3261 branch: branch, top Via sent-by and method (ACK counts as INVITE).
    Without the magic cookie (RFC 2543 peers), a key made of Request-URI, From tag,
    Call-ID, CSeq number and the top Via.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch and branch.startswith(BRANCH_MAGIC_COOKIE):
        return TransactionKey(branch, method, via.sent_by)
    legacy = "\x00".join(
        (
            "rfc2543",
            request.uri,
            request.from_address.tag or "",
            request.call_id,
            str(request.cseq.seq),
            str(via),
        )
    )
    return TransactionKey(legacy, method, via.sent_by)


def checked_client_key(request: SipRequest) -> TransactionKey:
    """The key of a request we are about to send, which must be fit for a transaction:
    an RFC 3261 branch (magic cookie) and a CSeq method equal to the request method."""
    key = client_key(request)
    if not key.branch.startswith(BRANCH_MAGIC_COOKIE):
        raise SipTransactionError(f"branch {key.branch!r} lacks the z9hG4bK magic cookie")
    if key.method != request.method:
        raise SipTransactionError("CSeq method differs from the request method")
    return key


class _Transaction(ABC):
    """Timers, outbox and events shared by both transaction kinds."""

    def __init__(self, key: TransactionKey, reliable: bool, timers: TimerConfig) -> None:
        self.key = key
        self.reliable = reliable
        self.timers = timers
        self.state = TransactionState.TRYING
        self._deadlines: dict[str, float] = {}
        self._outbox: list[bytes] = []
        self._events: list[SipEvent] = []

    @property
    def terminated(self) -> bool:
        """Whether the transaction is over (it can be forgotten once drained)."""
        return self.state is TransactionState.TERMINATED

    def messages_to_send(self) -> list[bytes]:
        """Serialized messages to hand to the transport now (drains the outbox)."""
        out, self._outbox = self._outbox, []
        return out

    def next_timer(self) -> float | None:
        """The absolute time at which `handle_timer` must be called, or None."""
        return min(self._deadlines.values(), default=None)

    def events(self) -> list[SipEvent]:
        """Events for the transaction user (drains them)."""
        out, self._events = self._events, []
        return out

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first."""
        while self._deadlines:
            name, deadline = min(self._deadlines.items(), key=lambda item: item[1])
            if deadline > now:
                return
            del self._deadlines[name]
            self._fire(name, now)

    def handle_transport_error(self, now: float) -> None:
        """The transport could not send: inform the TU and terminate (sections 17.1.4,
        17.2.4)."""
        if self.terminated:
            return
        self._events.append(TransportFailed(self.key))
        self._terminate()

    @abstractmethod
    def _fire(self, name: str, now: float) -> None:
        """Handle timer ``name`` (E, F, J or K) firing at ``now``."""

    def _terminate(self) -> None:
        self.state = TransactionState.TERMINATED
        self._deadlines.clear()
        self._events.append(TransactionTerminated(self.key))


class ClientTransaction(_Transaction):
    """Non-INVITE client transaction (RFC 3261 section 17.1.2, figure 6).

    The request is queued for sending on creation. On an unreliable transport it is
    retransmitted by timer E: T1, 2*T1, ... capped at T2 (always T2 once a provisional
    response arrived). Timer F (64*T1) ends the wait with `TransactionTimeout`. After a
    final response the transaction absorbs retransmissions for T4 (timer K), or ends at
    once on a reliable transport.
    """

    def __init__(
        self,
        request: SipRequest,
        *,
        reliable: bool,
        now: float,
        timers: TimerConfig | None = None,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise SipTransactionError(f"{request.method} needs no non-INVITE transaction")
        super().__init__(checked_client_key(request), reliable, timers or TimerConfig())
        self.request = request
        self._wire = request.to_bytes()
        self._interval = self.timers.t1
        self._outbox.append(self._wire)
        if not reliable:
            self._deadlines["E"] = now + self._interval
        self._deadlines["F"] = now + self.timers.timer_f

    def matches(self, response: SipResponse) -> bool:
        """Section 17.1.3: same top Via branch and same CSeq method."""
        try:
            return client_key(response) == self.key
        except SipParseError:
            return False

    def receive_response(self, response: SipResponse, now: float) -> None:
        """Feed a response that matched this transaction."""
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            return  # Completed absorbs retransmitted finals; Terminated ignores all
        self._events.append(ResponseReceived(self.key, response))
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
            return
        self._deadlines.pop("E", None)
        self._deadlines.pop("F", None)
        self.state = TransactionState.COMPLETED
        if self.reliable:
            self._terminate()
        else:
            self._deadlines["K"] = now + self.timers.t4

    def _fire(self, name: str, now: float) -> None:
        if name == "E":
            self._outbox.append(self._wire)
            if self.state is TransactionState.PROCEEDING:
                self._interval = self.timers.t2
            else:
                self._interval = min(2 * self._interval, self.timers.t2)
            self._deadlines["E"] = now + self._interval
        elif name == "F":
            self._events.append(TransactionTimeout(self.key))
            self._terminate()
        elif name == "K":
            self._terminate()


class ServerTransaction(_Transaction):
    """Non-INVITE server transaction (RFC 3261 section 17.2.2, figure 8).

    Created with the request (which the TU receives separately). Retransmitted requests
    are answered with the last response sent (none while Trying). After a final response
    the transaction waits 64*T1 (timer J) for retransmissions, or ends at once on a
    reliable transport.
    """

    def __init__(
        self,
        request: SipRequest,
        *,
        reliable: bool,
        now: float,
        timers: TimerConfig | None = None,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise SipTransactionError(f"{request.method} needs no non-INVITE transaction")
        super().__init__(server_key(request), reliable, timers or TimerConfig())
        self.request = request
        self._last_response: bytes | None = None

    def receive_request(self, request: SipRequest, now: float) -> None:
        """Feed a retransmission of the request: re-send the last response, if any."""
        # Trying has no response yet (nothing to re-send); Terminated is over.
        if self._last_response is not None and not self.terminated:
            self._outbox.append(self._last_response)

    def send_response(self, response: SipResponse, now: float) -> None:
        """Send a response from the TU. Final responses after the first are discarded,
        as section 17.2.2 requires."""
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            return
        self._last_response = response.to_bytes()
        self._outbox.append(self._last_response)
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
            return
        self.state = TransactionState.COMPLETED
        if self.reliable:
            self._terminate()
        else:
            self._deadlines["J"] = now + self.timers.timer_j

    def _fire(self, name: str, now: float) -> None:
        if name == "J":
            self._terminate()


# -- the layer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """Bytes for the transport and where they go (the ``remote`` given with the request)."""

    data: bytes
    remote: object


@dataclass
class _Entry:
    transaction: (
        ClientTransaction | ServerTransaction | InviteClientTransaction | InviteServerTransaction
    )
    remote: object


def _ack_index(
    request: SipRequest, to_tag: str | None
) -> tuple[str, int, str | None, str | None] | None:
    """What ties an ACK for a 2xx (new branch) to its INVITE: Call-ID, CSeq number, From
    tag and To tag (section 13.3.1.4 matches the ACK by dialog)."""
    try:
        return (request.call_id, request.cseq.seq, request.from_address.tag, to_tag)
    except SipError:
        return None


@dataclass
class TransactionLayer:
    """Owns the client and server transactions of one UA and routes messages to them.

    Requests that match no server transaction start one (except ACK, which has none) and
    come out as `RequestReceived`; responses that match no client transaction come out as
    `UnmatchedResponse`. Terminated transactions are dropped.

    An INVITE given to `send_request` gets an `InviteClientTransaction`; `cancel` sends
    the CANCEL of a pending one (section 9.1). Incoming INVITEs get an
    `InviteServerTransaction` when ``serve_invites`` is set: the layer answers 100 Trying,
    retransmits final responses, hands the ACK of a 2xx to the TU (`RequestReceived` with
    ``key=None``, matched to its INVITE by dialog identifiers to stop the 2xx
    retransmissions), and answers a CANCEL itself: 200 to the CANCEL, 487 to the INVITE,
    and `InviteCancelled` for the TU (481 to a CANCEL that matches nothing). Without
    ``serve_invites`` (an agent that takes no sessions) an incoming INVITE is reported with
    ``key=None``, to be answered with `send_stateless` (for example 501).

    Example::

        layer = TransactionLayer(serve_invites=True)
        key = layer.send_request(invite, remote=peer, reliable=False, now=now)
        layer.cancel(key, now)               # the user gave up before an answer
        layer.receive_data(datagram, remote=peer, reliable=False, now=now)
        for out in layer.messages_to_send(): transport.send(out.data, out.remote)
        for event in layer.events(): ...     # ResponseReceived, RequestReceived, ...
        wake_at = layer.next_timer()         # then layer.handle_timer(now)
    """

    timers: TimerConfig = field(default_factory=TimerConfig)
    serve_invites: bool = False
    _clients: dict[TransactionKey, _Entry] = field(default_factory=dict, init=False)
    _servers: dict[TransactionKey, _Entry] = field(default_factory=dict, init=False)
    _outbox: list[Outgoing] = field(default_factory=list, init=False)
    _events: list[SipEvent] = field(default_factory=list, init=False)
    _acks: dict[tuple[str, int, str | None, str | None], TransactionKey] = field(
        default_factory=dict, init=False
    )
    #: (deadline, tie-breaker, is-server, key) of every transaction with a timer armed
    #: (is-server None: Timer J of a completed entry, keyed by its plain tuple),
    #: so that the earliest deadline and the due timers are found without walking every
    #: live transaction (thousands under load: Timer J keeps each one for 32 s). Entries
    #: go stale when a transaction terminates or its deadline moves; they are checked
    #: against the transaction when they reach the top.
    _timer_heap: list[tuple[float, int, bool | None, tuple]] = field(
        default_factory=list, init=False
    )
    _timer_seq: itertools.count = field(default_factory=itertools.count, init=False)
    #: Non-INVITE server transactions over UDP that sent their final response and wait
    #: out Timer J absorbing retransmissions: (key as a plain tuple) -> (final response
    #: bytes, remote, Timer J deadline). Plain tuples of text, numbers and bytes, which the
    #: cycle collector does not track, in place of live transaction objects: a server
    #: holds one for every request of the last 32 s.
    _completed: dict[tuple, tuple[bytes, object, float]] = field(default_factory=dict, init=False)
    #: One instance of each remote seen, shared by the completed entries.
    _remotes: dict[object, object] = field(default_factory=dict, init=False)

    # -- outgoing --

    def send_request(
        self, request: SipRequest, *, remote: object, reliable: bool, now: float
    ) -> TransactionKey:
        """Start a client transaction for ``request`` (its top Via needs a fresh branch,
        see `new_branch`); returns its key. An INVITE gets an INVITE transaction; an ACK
        has none (send it with `send_stateless`)."""
        tx: ClientTransaction | InviteClientTransaction
        if request.method == "INVITE":
            from .invite import InviteClientTransaction

            tx = InviteClientTransaction(request, reliable=reliable, now=now, timers=self.timers)
        else:
            tx = ClientTransaction(request, reliable=reliable, now=now, timers=self.timers)
        if tx.key in self._clients:
            raise SipTransactionError(f"a client transaction {tx.key} already exists")
        entry = _Entry(tx, remote)
        self._clients[tx.key] = entry
        self._collect(self._clients, entry)
        return tx.key

    def send_response(self, key: TransactionKey, response: SipResponse, now: float) -> None:
        """Answer the request of server transaction ``key``."""
        entry = self._servers.get(key)
        if entry is None:
            if _plain(key) in self._completed:
                return  # a second final response: discarded (section 17.2.2)
            raise SipTransactionError(f"no server transaction {key}")
        tx = entry.transaction
        assert not isinstance(tx, ClientTransaction) and hasattr(tx, "send_response")
        tx.send_response(response, now)
        if tx.key.method == "INVITE" and 200 <= response.status < 300:
            try:
                to_tag = response.to_address.tag
            except SipError:
                to_tag = None
            index = _ack_index(tx.request, to_tag)
            if index is not None:
                self._acks[index] = tx.key
        self._collect(self._servers, entry)

    def cancel(self, key: TransactionKey, now: float) -> TransactionKey | None:
        """Cancel the pending INVITE of client transaction ``key`` (section 9.1).

        The CANCEL goes out in its own client transaction at once when a provisional
        response has arrived, or as soon as one arrives. Returns the key the CANCEL
        transaction has (or will have), or None when there is nothing to cancel (no such
        INVITE, or its final response already came).
        """
        from .invite import InviteClientTransaction, InviteState

        entry = self._clients.get(key)
        if entry is None or not isinstance(entry.transaction, InviteClientTransaction):
            return None
        tx = entry.transaction
        if tx.state not in (InviteState.CALLING, InviteState.PROCEEDING):
            return None
        cancel = tx.request_cancel(now)
        self._collect(self._clients, entry)
        if cancel is not None:
            self._send_cancel(cancel, entry, now)
        return TransactionKey(key.branch, "CANCEL")

    def _send_cancel(self, cancel: SipRequest, entry: _Entry, now: float) -> None:
        if TransactionKey(entry.transaction.key.branch, "CANCEL") in self._clients:
            return
        self.send_request(cancel, remote=entry.remote, reliable=entry.transaction.reliable, now=now)

    def send_stateless(self, message: SipRequest | SipResponse | bytes, remote: object) -> None:
        """Queue a message outside any transaction (for example a 400 or a 501)."""
        data = message if isinstance(message, bytes) else message.to_bytes()
        self._outbox.append(Outgoing(data, remote))

    # -- incoming --

    def receive_data(self, data: bytes, *, remote: object, reliable: bool, now: float) -> None:
        """Parse one message (a datagram or a framed stream message) and route it.

        Malformed requests are answered with 400 when possible (`MessageDiscarded`).
        """
        try:
            message = parse_message(data)
        except SipParseError as exc:
            answer = best_effort_response_400(data)
            if answer is not None:
                self.send_stateless(answer, remote)
            self._events.append(MessageDiscarded(str(exc), remote, answer is not None))
            return
        self.receive(message, remote=remote, reliable=reliable, now=now)

    def receive(
        self, message: SipRequest | SipResponse, *, remote: object, reliable: bool, now: float
    ) -> None:
        """Route a parsed message to its transaction, or report it."""
        if isinstance(message, SipResponse):
            self._receive_response(message, remote, now)
        else:
            self._receive_request(message, remote, reliable, now)

    def _receive_response(self, response: SipResponse, remote: object, now: float) -> None:
        try:
            key = client_key(response)
        except SipError:
            key = None
        entry = self._clients.get(key) if key is not None else None
        if entry is None:
            self._events.append(UnmatchedResponse(response, remote))
            return
        tx = entry.transaction
        assert not isinstance(tx, ServerTransaction) and hasattr(tx, "receive_response")
        tx.receive_response(response, now)
        self._collect(self._clients, entry)
        take_cancel = getattr(tx, "take_cancel", None)
        cancel = take_cancel() if take_cancel is not None else None
        if cancel is not None:
            self._send_cancel(cancel, entry, now)

    def _receive_request(
        self, request: SipRequest, remote: object, reliable: bool, now: float
    ) -> None:
        try:
            key = server_key(request)
        except SipError as exc:
            self._events.append(MessageDiscarded(str(exc), remote, False))
            return
        completed = self._completed.get(_plain(key))
        if completed is not None:  # a retransmission: the final response again
            self._outbox.append(Outgoing(completed[0], completed[1]))
            return
        entry = self._servers.get(key)
        if entry is not None:
            tx = entry.transaction
            assert not isinstance(tx, ClientTransaction) and hasattr(tx, "receive_request")
            passed = tx.receive_request(request, now)
            self._collect(self._servers, entry)
            if passed:
                self._events.append(RequestReceived(None, request, remote))
            return
        if request.method == "ACK":
            self._receive_ack_of_2xx(request, remote, now)
            return
        if request.method == "INVITE" and self.serve_invites:
            from .invite import InviteServerTransaction

            invite_tx = InviteServerTransaction(
                request, reliable=reliable, now=now, timers=self.timers
            )
            invite_entry = _Entry(invite_tx, remote)
            self._servers[key] = invite_entry
            self._collect(self._servers, invite_entry)
            self._events.append(RequestReceived(key, request, remote))
            return
        if request.method == "INVITE":
            self._events.append(RequestReceived(None, request, remote))
            return
        tx = ServerTransaction(request, reliable=reliable, now=now, timers=self.timers)
        self._servers[key] = _Entry(tx, remote)
        if request.method == "CANCEL" and self.serve_invites:
            self._receive_cancel(key, request, remote, now)
            return
        self._events.append(RequestReceived(key, request, remote))

    def _receive_ack_of_2xx(self, ack: SipRequest, remote: object, now: float) -> None:
        try:
            to_tag = ack.to_address.tag
        except SipError:
            to_tag = None
        index = _ack_index(ack, to_tag)
        invite_key = self._acks.get(index) if index is not None else None
        entry = self._servers.get(invite_key) if invite_key is not None else None
        if entry is not None:
            passed = entry.transaction.receive_request(ack, now)
            self._collect(self._servers, entry)
            if not passed:
                return
        self._events.append(RequestReceived(None, ack, remote))

    def _receive_cancel(
        self, key: TransactionKey, cancel: SipRequest, remote: object, now: float
    ) -> None:
        """Section 9.2: 200 to a CANCEL that matches an INVITE (and 487 to that INVITE
        while it is pending), 481 otherwise."""
        from .invite import InviteCancelled, InviteServerTransaction

        invite_key = TransactionKey(key.branch, "INVITE", key.sent_by)
        invite_entry = self._servers.get(invite_key)
        invite_tx = invite_entry.transaction if invite_entry is not None else None
        if not isinstance(invite_tx, InviteServerTransaction) or invite_entry is None:
            self.send_response(key, cancel.make_response(481), now)
            return
        self.send_response(key, cancel.make_response(200, to_tag=invite_tx.local_tag()), now)
        if invite_tx.cancel(now):
            self._collect(self._servers, invite_entry)
            self._events.append(InviteCancelled(invite_key, cancel, remote))

    # -- timers and transport errors --

    def next_timer(self) -> float | None:
        """The earliest absolute time any transaction needs `handle_timer`, or None."""
        heap = self._timer_heap
        while heap:
            deadline, _, server, key = heap[0]
            if server is None:
                completed = self._completed.get(key)
                if completed is not None and completed[2] == deadline:
                    return deadline
                heapq.heappop(heap)  # stale
                continue
            entry = (self._servers if server else self._clients).get(key)
            current = None if entry is None else entry.transaction.next_timer()
            if current == deadline:
                return deadline
            heapq.heappop(heap)  # stale
            if current is not None:
                heapq.heappush(heap, (current, next(self._timer_seq), server, key))
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (each transaction once)."""
        heap = self._timer_heap
        due: dict[tuple[bool, TransactionKey], None] = {}
        while heap and heap[0][0] <= now:
            deadline, _, server, key = heapq.heappop(heap)
            if server is None:  # Timer J of a completed server transaction
                completed = self._completed.get(key)
                if completed is not None and completed[2] == deadline:
                    del self._completed[key]
                    self._events.append(TransactionTerminated(TransactionKey(*key)))
                continue
            due[(server, key)] = None
        for server, key in due:
            table = self._servers if server else self._clients
            entry = table.get(key)
            if entry is None:
                continue
            deadline = entry.transaction.next_timer()
            if deadline is not None and deadline <= now:
                entry.transaction.handle_timer(now)
                self._collect(table, entry)
            elif deadline is not None:  # moved later: keep it queued
                heapq.heappush(heap, (deadline, next(self._timer_seq), server, key))

    def handle_transport_error(self, key: TransactionKey, now: float) -> None:
        """The transport failed to send for transaction ``key``."""
        if self._completed.pop(_plain(key), None) is not None:
            self._events.extend((TransportFailed(key), TransactionTerminated(key)))
        for table in (self._clients, self._servers):
            entry = table.get(key)
            if entry is not None:
                entry.transaction.handle_transport_error(now)
                self._collect(table, entry)

    # -- draining --

    def messages_to_send(self) -> list[Outgoing]:
        """Everything to hand to the transport now (drains)."""
        out, self._outbox = self._outbox, []
        return out

    def events(self) -> list[SipEvent]:
        """Events for the UA core (drains)."""
        out, self._events = self._events, []
        return out

    def transaction(
        self, key: TransactionKey
    ) -> (
        ClientTransaction
        | ServerTransaction
        | InviteClientTransaction
        | InviteServerTransaction
        | None
    ):
        """The live transaction with ``key`` (client ones first), or None.

        A non-INVITE server transaction over UDP stops being live once its final response
        is sent: until Timer J the layer keeps only that response, to answer
        retransmissions."""
        entry = self._clients.get(key) or self._servers.get(key)
        return None if entry is None else entry.transaction

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers) + len(self._completed)

    def _collect(self, table: dict[TransactionKey, _Entry], entry: _Entry) -> None:
        tx = entry.transaction
        self._outbox.extend(Outgoing(data, entry.remote) for data in tx.messages_to_send())
        self._events.extend(tx.events())
        if type(tx) is ServerTransaction and tx.state is TransactionState.COMPLETED:
            # only Timer J is left: keep the final response, not the transaction
            response = tx._last_response
            deadline = tx.next_timer()
            if response is not None and deadline is not None:
                key = _plain(tx.key)
                remote = entry.remote
                try:
                    remote = self._remotes.setdefault(remote, remote)
                except TypeError:  # an unhashable remote is kept as is
                    pass
                if len(self._remotes) > 4096:
                    self._remotes.clear()
                self._completed[key] = (response, remote, deadline)
                heapq.heappush(self._timer_heap, (deadline, next(self._timer_seq), None, key))
                table.pop(tx.key, None)
                return
        if not tx.terminated:
            deadline = tx.next_timer()
            if deadline is not None:
                server = table is self._servers
                heapq.heappush(self._timer_heap, (deadline, next(self._timer_seq), server, tx.key))
        if tx.terminated:
            table.pop(tx.key, None)
            if tx.key.method == "INVITE" and self._acks and table is self._servers:
                self._acks = {k: v for k, v in self._acks.items() if v != tx.key}
