"""SIP dialogs (RFC 3261 section 12, with the INVITE specifics of sections 13 and 15).

A `Dialog` holds what section 12 asks: Call-ID, local and remote tags, local and remote
URIs, local and remote CSeq numbers, the remote target (from Contact), the route set
(from Record-Route) and the secure flag. It is created on the UAC side from the INVITE
and a 1xx-with-tag or 2xx response (`Dialog.from_uac`), on the UAS side from the INVITE
and the response the UAS sends (`Dialog.from_uas`); it builds in-dialog requests (BYE,
re-INVITE, the ACK of a 2xx) with the Request-URI and Route set that loose and strict
routing ask for (section 12.2.1.1), so requests keep going through the proxies that
recorded the route, and it checks incoming in-dialog requests (section 12.2.2).
`DialogTable` finds the dialog of an incoming request or response.

`build_invite` makes the initial INVITE, with a preloaded Route (the outbound proxy or
the Service-Route learned at registration) so that the session takes the same path
through the registrar's proxy as pager-mode messages.

No I/O and no clock; randomness (branches, tags, Call-IDs) comes from ``rng``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .address import Address
from .errors import SipError, SipUriError
from .headers import CSeq, Headers, Via
from .ids import new_branch, new_call_id, new_tag
from .message import SipRequest, SipResponse
from .uri import SipUri

__all__ = [
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogId",
    "DialogState",
    "DialogTable",
    "SipDialogError",
    "build_invite",
    "dialog_id_of_request",
    "dialog_id_of_response",
]

#: Requests whose Contact replaces the remote target (RFC 3261 12.2, RFC 3311, RFC 6665).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class SipDialogError(SipError):
    """A message cannot be used with a dialog; ``status`` is the response a UAS sends
    for such a request (400 for a missing Contact, 500 for an out-of-order CSeq, 481
    for a request that belongs to no dialog)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class DialogState(enum.Enum):
    """Section 12: a dialog is early (after a 1xx with a tag), confirmed (after a 2xx)
    or terminated."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class DialogId:
    """Call-ID, local tag and remote tag: what identifies a dialog at one UA."""

    call_id: str
    local_tag: str
    remote_tag: str | None


def dialog_id_of_request(request: SipRequest) -> DialogId | None:
    """The id of the dialog an incoming request belongs to, as the receiving UA sees it
    (local tag = To tag, remote tag = From tag); None without a To tag (not in a
    dialog) or when the headers are unreadable."""
    try:
        local = request.to_address.tag
        remote = request.from_address.tag
        call_id = request.call_id
    except SipError:
        return None
    return None if local is None else DialogId(call_id, local, remote)


def dialog_id_of_response(response: SipResponse) -> DialogId | None:
    """The id of the dialog a response to one of our requests belongs to (local tag =
    From tag, remote tag = To tag); None without a From tag or when unreadable."""
    try:
        local = response.from_address.tag
        remote = response.to_address.tag
        call_id = response.call_id
    except SipError:
        return None
    return None if local is None else DialogId(call_id, local, remote)


def _address(value: str, what: str) -> Address:
    try:
        return Address.parse(value)
    except SipError as exc:
        raise SipDialogError(f"unreadable {what}: {exc}") from exc


def _contact_uri(message: SipRequest | SipResponse, what: str) -> str | None:
    values = message.headers.get_all("Contact")
    if not values:
        return None
    return _address(values[0], f"Contact of the {what}").uri


def _without_tag(address: Address) -> Address:
    params = tuple((n, v) for n, v in address.params if n.lower() != "tag")
    return Address(address.uri, address.display_name, params)


def _request_uri_from_route(route: Address) -> str:
    """Section 12.2.1.1 (strict routing): the route's URI, without the parameters and
    headers a Request-URI may not carry."""
    try:
        uri = SipUri.parse(route.uri)
    except SipUriError:
        return route.uri
    params = tuple((n, v) for n, v in uri.params if n.lower() not in ("method", "maddr", "ttl"))
    return str(SipUri(uri.scheme, uri.user, uri.password, uri.host, uri.port, params, ()))


def _is_loose(route: Address) -> bool:
    try:
        return SipUri.parse(route.uri).has_param("lr")
    except SipUriError:
        return True  # a non-SIP route cannot be a strict router's Request-URI


@dataclass
class Dialog:
    """One SIP dialog (RFC 3261 section 12).

    UAC side: after sending ``invite`` and receiving ``response`` (a 1xx with a To tag,
    or the 2xx)::

        dialog = Dialog.from_uac(invite, ok)
        ack = dialog.create_ack(invite, via=Via("UDP", "192.0.2.1", 5060))
        send(ack, to=dialog.next_hop)           # outside any transaction
        ...
        bye = dialog.create_request("BYE", via=Via("UDP", "192.0.2.1", 5060))
        layer.send_request(bye, remote=resolve(dialog.next_hop), ...)

    UAS side: when answering ``invite`` with ``ok`` (which carries the local tag)::

        dialog = Dialog.from_uas(invite, ok)
        table.add(dialog)
        ...
        found = table.find_for_request(bye)     # an in-dialog request arrives
        found.receive_request(bye)              # SipDialogError(status=500) if stale

    The route set is a list of Route values (as written in Record-Route, name-addr
    form); ``next_hop`` is where an in-dialog request goes: the first route, else the
    remote target.
    """

    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: Address
    remote_uri: Address
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_seq: int | None = None
    remote_seq: int | None = None
    secure: bool = False
    state: DialogState = DialogState.EARLY
    is_uac: bool = True
    local_contact: str | None = None

    # -- creation ------------------------------------------------------------------------

    @classmethod
    def from_uac(
        cls, request: SipRequest, response: SipResponse, *, local_contact: str | None = None
    ) -> Dialog:
        """Section 12.1.2: the dialog a 1xx (with a To tag) or 2xx response to our
        ``request`` creates. The route set is the response's Record-Route in reverse
        order; the remote target its Contact (a 2xx without Contact is refused)."""
        if not 100 < response.status < 300:
            raise SipDialogError(f"a {response.status} response creates no dialog")
        from_ = _address(request.headers.get("From") or "", "From")
        to = _address(response.headers.get("To") or "", "To of the response")
        if from_.tag is None:
            raise SipDialogError("the request has no From tag")
        if to.tag is None:
            raise SipDialogError("the response has no To tag: no dialog")
        target = _contact_uri(response, "response")
        if target is None:
            if response.status >= 200:
                raise SipDialogError("the 2xx has no Contact: no remote target")
            target = request.uri
        records = response.headers.get_all("Record-Route")
        for value in records:
            _address(value, "Record-Route")
        contact = local_contact
        if contact is None and request.headers.get("Contact"):
            contact = request.headers.get("Contact")
        return cls(
            call_id=request.call_id,
            local_tag=from_.tag,
            remote_tag=to.tag,
            local_uri=_without_tag(from_),
            remote_uri=_without_tag(to),
            remote_target=target,
            route_set=list(reversed(records)),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=request.uri.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            is_uac=True,
            local_contact=contact,
        )

    @classmethod
    def from_uas(
        cls,
        request: SipRequest,
        response: SipResponse,
        *,
        local_contact: str | None = None,
        secure: bool | None = None,
    ) -> Dialog:
        """Section 12.1.1: the dialog the UAS creates when it sends ``response`` (1xx or
        2xx, with the local tag in To) to ``request``. The route set is the request's
        Record-Route in order; the remote target its Contact. ``secure`` defaults to a
        sips Request-URI (pass False when the request did not come over TLS)."""
        if not 100 < response.status < 300:
            raise SipDialogError(f"a {response.status} response creates no dialog")
        from_ = _address(request.headers.get("From") or "", "From")
        to = _address(response.headers.get("To") or "", "To of the response")
        if to.tag is None:
            raise SipDialogError("the response carries no To tag (the local tag)")
        target = _contact_uri(request, "request")
        if target is None:
            raise SipDialogError(f"the {request.method} has no Contact", status=400)
        records = request.headers.get_all("Record-Route")
        for value in records:
            _address(value, "Record-Route")
        if secure is None:
            secure = request.uri.lower().startswith("sips:")
        return cls(
            call_id=request.call_id,
            local_tag=to.tag,
            remote_tag=from_.tag,
            local_uri=_without_tag(to),
            remote_uri=_without_tag(from_),
            remote_target=target,
            route_set=list(records),
            local_seq=None,
            remote_seq=request.cseq.seq,
            secure=secure,
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            is_uac=False,
            local_contact=local_contact or response.headers.get("Contact"),
        )

    # -- identity and matching -----------------------------------------------------------

    @property
    def id(self) -> DialogId:
        """Call-ID, local tag, remote tag."""
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def terminated(self) -> bool:
        """Whether the dialog is over."""
        return self.state is DialogState.TERMINATED

    def matches_request(self, request: SipRequest) -> bool:
        """Whether an incoming ``request`` belongs to this dialog (section 12.2.2)."""
        return dialog_id_of_request(request) == self.id

    def matches_response(self, response: SipResponse) -> bool:
        """Whether a response to one of our requests belongs to this dialog."""
        return dialog_id_of_response(response) == self.id

    @property
    def next_hop(self) -> str:
        """The URI an in-dialog request is sent to: the first route (the proxy that
        recorded the route), or the remote target when the route set is empty."""
        if self.route_set:
            return _address(self.route_set[0], "route").uri
        return self.remote_target

    # -- incoming ------------------------------------------------------------------------

    def receive_request(self, request: SipRequest) -> None:
        """Section 12.2.2: check and apply an incoming in-dialog request.

        Raises `SipDialogError` with status 481 when the request is not of this dialog,
        500 when its CSeq is lower than the last one (out of order). Records the remote
        CSeq, takes a new remote target from a target refresh request's Contact, and
        ends the dialog on BYE. ACK and CANCEL carry the CSeq of the request they belong
        to and are not checked against it.
        """
        if not self.matches_request(request):
            raise SipDialogError("the request belongs to no such dialog", status=481)
        if request.method in ("ACK", "CANCEL"):
            if request.method == "ACK" and self.state is DialogState.EARLY:
                self.state = DialogState.CONFIRMED
            return
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            raise SipDialogError(
                f"CSeq {seq} is lower than {self.remote_seq}: out of order", status=500
            )
        self.remote_seq = seq
        if request.method in TARGET_REFRESH_METHODS:
            target = _contact_uri(request, "request")
            if target is not None:
                self.remote_target = target
        if request.method == "BYE":
            self.state = DialogState.TERMINATED

    def receive_response(self, response: SipResponse) -> None:
        """Apply a response to a request this UA sent in (or to create) the dialog.

        A 2xx to INVITE confirms an early dialog (the UAC recomputes its route set from
        the 2xx, section 13.2.2.4) and refreshes the remote target; a 3xx-6xx to the
        INVITE ends an early dialog; 481 and 408 end the dialog (section 12.2.1.2), and
        so does any final response to BYE.
        """
        status = response.status
        method = response.cseq.method
        if status in (408, 481) or (method == "BYE" and status >= 200):
            self.state = DialogState.TERMINATED
            return
        if method in TARGET_REFRESH_METHODS and 100 < status < 300:
            target = _contact_uri(response, "response")
            if target is not None:
                self.remote_target = target
        if method != "INVITE":
            return
        if 200 <= status < 300 and self.state is DialogState.EARLY:
            if self.is_uac:
                self.route_set = list(reversed(response.headers.get_all("Record-Route")))
            self.state = DialogState.CONFIRMED
        elif status >= 300 and self.state is DialogState.EARLY:
            self.state = DialogState.TERMINATED

    def terminate(self) -> None:
        """End the dialog (after a BYE was sent or received, or a failed session)."""
        self.state = DialogState.TERMINATED

    # -- outgoing ------------------------------------------------------------------------

    def next_cseq(self, rng: random.Random | None = None) -> int:
        """Advance the local CSeq and return it. A UAS dialog has none until its first
        request; it starts from a random value below 2**16 (section 8.1.1.5)."""
        if self.local_seq is None:
            start = (rng or random.SystemRandom()).randrange(1, 2**16)
            self.local_seq = start
            return start
        if self.local_seq + 1 >= 2**31:
            raise SipDialogError("the local CSeq would reach 2**31", status=500)
        self.local_seq += 1
        return self.local_seq

    def create_request(
        self,
        method: str,
        *,
        via: Via,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        rng: random.Random | None = None,
        cseq: int | None = None,
    ) -> SipRequest:
        """Build an in-dialog request (section 12.2.1.1).

        ``via`` is this UA's Via without a branch (a fresh one is added, with ``rport``
        asked). The Request-URI and Route follow the route set: with a loose router
        first (``;lr``), Request-URI = remote target and Route = the route set; with a
        strict router, Request-URI = the first route and the remote target goes last in
        Route. CSeq is the next local number (``cseq`` overrides it, as the ACK of a 2xx
        needs). Target refresh requests (INVITE, UPDATE...) carry ``local_contact``.
        """
        if self.terminated and method not in ("ACK", "BYE"):
            raise SipDialogError(f"the dialog is terminated: no {method} in it")
        seq = cseq if cseq is not None else self.next_cseq(rng)
        branch_via = via.with_param("branch", new_branch(rng))
        if not branch_via.has_param("rport"):
            branch_via = branch_via.with_param("rport", None)
        out = Headers()
        out.add("Via", str(branch_via))
        out.add("Max-Forwards", "70")
        request_uri = self.remote_target
        if self.route_set:
            first = _address(self.route_set[0], "route")
            if _is_loose(first):
                routes = list(self.route_set)
            else:
                request_uri = _request_uri_from_route(first)
                routes = [*self.route_set[1:], f"<{self.remote_target}>"]
            for route in routes:
                out.add("Route", route)
        out.add("From", str(self.local_uri.with_tag(self.local_tag)))
        remote = self.remote_uri
        out.add("To", str(remote if self.remote_tag is None else remote.with_tag(self.remote_tag)))
        out.add("Call-ID", self.call_id)
        out.add("CSeq", str(CSeq(seq, method)))
        if method in TARGET_REFRESH_METHODS and self.local_contact:
            out.add("Contact", self.local_contact)
        for name, value in headers:
            out.add(name, value)
        if content_type is not None:
            out.set("Content-Type", content_type)
        return SipRequest(method, request_uri, out, body)

    def create_ack(
        self,
        invite: SipRequest,
        *,
        via: Via,
        body: bytes = b"",
        content_type: str | None = None,
        rng: random.Random | None = None,
    ) -> SipRequest:
        """The ACK of a 2xx to ``invite`` (section 13.2.2.4): built like any in-dialog
        request, with the INVITE's CSeq number and the INVITE's credentials. Send it
        outside any transaction (``TransactionLayer.send_stateless``) to `next_hop`, and
        again for every retransmission of the 2xx. ``body`` is the SDP answer when the
        offer came in the 2xx."""
        if invite.method != "INVITE":
            raise SipDialogError(f"an ACK answers an INVITE, not {invite.method}")
        credentials = [
            (name, value)
            for name in ("Authorization", "Proxy-Authorization")
            for value in invite.headers.get_all(name)
        ]
        return self.create_request(
            "ACK",
            via=via,
            headers=credentials,
            body=body,
            content_type=content_type,
            rng=rng,
            cseq=invite.cseq.seq,
        )


class DialogTable:
    """The dialogs of one UA, by `DialogId`.

    Example::

        table = DialogTable()
        table.add(Dialog.from_uac(invite, ok))
        dialog = table.find_for_request(incoming_bye)     # None: answer 481
        dialog = table.find_for_response(response)
        table.discard_terminated()
    """

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def add(self, dialog: Dialog) -> None:
        """Keep ``dialog`` (replacing one with the same id)."""
        self._dialogs[dialog.id] = dialog

    def get(self, dialog_id: DialogId) -> Dialog | None:
        """The dialog with ``dialog_id``, or None."""
        return self._dialogs.get(dialog_id)

    def remove(self, dialog: Dialog) -> None:
        """Forget ``dialog`` (no error if unknown)."""
        self._dialogs.pop(dialog.id, None)

    def find_for_request(self, request: SipRequest) -> Dialog | None:
        """The dialog an incoming request belongs to, or None (answer 481 unless the
        request may start a dialog)."""
        dialog_id = dialog_id_of_request(request)
        return None if dialog_id is None else self._dialogs.get(dialog_id)

    def find_for_response(self, response: SipResponse) -> Dialog | None:
        """The dialog a response to our request belongs to, or None."""
        dialog_id = dialog_id_of_response(response)
        return None if dialog_id is None else self._dialogs.get(dialog_id)

    def discard_terminated(self) -> list[Dialog]:
        """Forget the terminated dialogs; return them."""
        gone = [d for d in self._dialogs.values() if d.terminated]
        for dialog in gone:
            del self._dialogs[dialog.id]
        return gone

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))


def build_invite(
    *,
    from_uri: str | SipUri,
    to_uri: str | SipUri,
    contact: str | SipUri,
    via: Via,
    body: bytes = b"",
    content_type: str | None = "application/sdp",
    route: Sequence[str] = (),
    request_uri: str | SipUri | None = None,
    from_display_name: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    cseq: int = 1,
    call_id: str | None = None,
    rng: random.Random | None = None,
) -> SipRequest:
    """An initial INVITE (section 8.1.1) that opens a dialog.

    ``route`` is the preloaded route set (for example the outbound proxy
    ``<sip:proxy.example.com;lr>`` or the Service-Route learned at registration), so the
    INVITE takes the registrar's proxy path; a proxy that adds Record-Route keeps the
    dialog on it. ``via`` is this UA's Via without a branch. A fresh From tag, Call-ID
    and branch come from ``rng``.
    """
    via_out = via.with_param("branch", new_branch(rng))
    if not via_out.has_param("rport"):
        via_out = via_out.with_param("rport", None)
    out = Headers()
    out.add("Via", str(via_out))
    out.add("Max-Forwards", "70")
    for value in route:
        out.add("Route", value)
    out.add("From", str(Address.from_uri(from_uri, from_display_name, (("tag", new_tag(rng)),))))
    out.add("To", str(Address.from_uri(to_uri)))
    try:
        host: str | None = SipUri.parse(str(contact)).host
    except SipUriError:
        host = None
    out.add("Call-ID", call_id or new_call_id(host, rng))
    out.add("CSeq", str(CSeq(cseq, "INVITE")))
    out.add("Contact", str(Address.from_uri(contact)))
    for name, value in headers:
        out.add(name, value)
    if body and content_type is not None:
        out.add("Content-Type", content_type)
    return SipRequest("INVITE", request_uri or to_uri, out, body)
