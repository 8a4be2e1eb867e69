"""What the user agent tells its faces (the window, `messenger agent`, tests).

Every event is an immutable value with a ``to_json()`` that gives the JSON object the
agent prints, one per line. The window adapts these to Qt signals in one place; it never
looks below the user agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    """Base of every user-agent event."""

    at: datetime
    kind: ClassVar[str] = "event"

    def fields(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "at": _iso(self.at), **self.fields()}


@dataclass(frozen=True)
class Registered(Event):
    """A REGISTER succeeded; the binding lasts ``expires`` seconds."""

    aor: str = ""
    registrar: str = ""
    expires: int = 0
    kind: ClassVar[str] = "registered"

    def fields(self) -> dict[str, Any]:
        return {"aor": self.aor, "registrar": self.registrar, "expires": self.expires}


@dataclass(frozen=True)
class Unregistered(Event):
    aor: str = ""
    registrar: str = ""
    kind: ClassVar[str] = "unregistered"

    def fields(self) -> dict[str, Any]:
        return {"aor": self.aor, "registrar": self.registrar}


@dataclass(frozen=True)
class RegistrationFailed(Event):
    aor: str = ""
    registrar: str = ""
    status: int | None = None
    reason: str = ""  # words for a person: what went wrong and what to do
    kind: ClassVar[str] = "registration-failed"

    def fields(self) -> dict[str, Any]:
        return {
            "aor": self.aor,
            "registrar": self.registrar,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class MessageReceived(Event):
    """A message was received, stored with its report, and answered."""

    rowid: int = 0
    message_id: str | None = None
    sender: str = ""  # the peer's AoR (from the SIP From, or the MSRP session)
    recipient: str = ""
    content_type: str | None = None
    content: bytes | None = None
    report: dict[str, Any] = field(default_factory=dict)
    transport: str = "sip"  # 'sip' (pager mode) or 'msrp' (session mode)
    filename: str | None = None  # a received file, when Content-Disposition named one
    path: str | None = None  # where a received file was written
    kind: ClassVar[str] = "message"

    @property
    def text(self) -> str:
        return (self.content or b"").decode("utf-8", errors="replace")

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rowid": self.rowid,
            "message_id": self.message_id,
            "from": self.sender,
            "to": self.recipient,
            "content_type": self.content_type,
            "transport": self.transport,
            "report": self.report,
        }
        if self.filename is not None or self.path is not None:
            out["filename"] = self.filename
            out["path"] = self.path
            out["size"] = len(self.content) if self.content is not None else None
        else:
            out["text"] = self.text
        return out


@dataclass(frozen=True)
class MessageRefused(Event):
    """An incoming request was answered with an error (415, 493, 400, replay, ...)."""

    sender: str = ""
    status: int = 0
    reason: str = ""  # words for a person
    report: dict[str, Any] | None = None
    kind: ClassVar[str] = "refused"

    def fields(self) -> dict[str, Any]:
        return {
            "from": self.sender,
            "status": self.status,
            "reason": self.reason,
            "report": self.report,
        }


@dataclass(frozen=True)
class Response(Event):
    """The final response to a request this agent sent (MESSAGE, REGISTER, INVITE, ...)."""

    method: str = ""
    status: int = 0
    reason_phrase: str = ""
    to: str = ""
    message_id: str | None = None
    call_id: str = ""
    explanation: str = ""  # words for a person when it was not a success
    kind: ClassVar[str] = "response"

    def fields(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "status": self.status,
            "reason_phrase": self.reason_phrase,
            "to": self.to,
            "message_id": self.message_id,
            "call_id": self.call_id,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class DeliveryChanged(Event):
    """An outgoing message moved on: sent, delivered, displayed, failed, refused."""

    message_id: str = ""
    peer: str = ""
    state: str = ""
    status: int | None = None
    reason: str = ""
    kind: ClassVar[str] = "delivery"

    def fields(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "peer": self.peer,
            "state": self.state,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CapabilityLearned(Event):
    """What we learned of a peer, e.g. ``smime`` False after a 415."""

    peer: str = ""
    capability: str = ""
    value: bool = False
    reason: str = ""
    kind: ClassVar[str] = "capability"

    def fields(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "capability": self.capability,
            "value": self.value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CertificateLearned(Event):
    """A peer's certificate was learned (from a signature or a 493 certs-only body)."""

    peer: str = ""
    sha256: str = ""
    changed: bool = False  # differs from the certificate pinned for this peer
    kind: ClassVar[str] = "certificate"

    def fields(self) -> dict[str, Any]:
        return {"peer": self.peer, "sha256": self.sha256, "changed": self.changed}


@dataclass(frozen=True)
class MessageStored(Event):
    """A message or file the user sent is stored, before it goes out: a face shows it
    pending from now on."""

    peer: str = ""
    message_id: str = ""
    kind: ClassVar[str] = "stored"

    def fields(self) -> dict[str, Any]:
        return {"peer": self.peer, "message_id": self.message_id}


@dataclass(frozen=True)
class Notice(Event):
    """Something a person should read: a warning or an error in words, with what to do."""

    level: str = "info"  # info, warning, error
    text: str = ""
    peer: str | None = None
    kind: ClassVar[str] = "notice"

    def fields(self) -> dict[str, Any]:
        return {"level": self.level, "text": self.text, "peer": self.peer}


@dataclass(frozen=True)
class SipTrace(Event):
    """One SIP message that crossed the wire, for the trace panel."""

    direction: str = ""  # 'in' or 'out'
    transport: str = ""  # udp, tcp, tls
    remote: str = ""  # host:port
    summary: str = ""  # the start line
    raw: bytes = b""
    kind: ClassVar[str] = "sip"

    def fields(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "transport": self.transport,
            "remote": self.remote,
            "summary": self.summary,
            "size": len(self.raw),
        }


@dataclass(frozen=True)
class TransferProgress(Event):
    """Progress of a message or file moving over an MSRP session."""

    transfer_id: str = ""
    peer: str = ""
    direction: str = ""  # 'in' or 'out'
    filename: str | None = None
    done: int = 0
    total: int | None = None
    state: str = "running"  # running, complete, aborted, failed
    reason: str = ""
    #: who stopped it part-way: '' (nobody), 'you' (we stopped receiving it) or 'peer'
    #: (the receiver stopped what we sent, MSRP 413)
    stopped_by: str = ""
    kind: ClassVar[str] = "progress"

    def fields(self) -> dict[str, Any]:
        return {
            "transfer_id": self.transfer_id,
            "peer": self.peer,
            "direction": self.direction,
            "filename": self.filename,
            "done": self.done,
            "total": self.total,
            "state": self.state,
            "reason": self.reason,
            "stopped_by": self.stopped_by,
        }
