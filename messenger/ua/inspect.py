"""Decoding one SIP message for a person debugging interop: the SIP envelope, the body's
S/MIME structure, the security report, the certificates carried, the CPIM wrapper, any
IMDN and the innermost content (`messenger inspect` renders it). `cms_structure` and
`split_sip` give the window the same views as text, so that it never reads CMS itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509

from messenger.im.cpim import parse_cpim
from messenger.im.errors import ImError
from messenger.im.imdn import imdn_of
from messenger.pki.verdict import CertificateSummary
from messenger.sip.errors import SipParseError
from messenger.sip.message import SipRequest, parse_message
from messenger.smime.errors import SmimeError
from messenger.smime.inspect import describe, load_any, render
from messenger.smime.mime import MimeEntity
from messenger.smime.protect import unprotect

__all__ = ["cms_structure", "inspect_sip", "split_sip"]

_BODY_HEADERS = ("Content-Transfer-Encoding", "Content-Disposition", "Content-Encoding")


def split_sip(raw: bytes) -> tuple[str, bytes, str | None]:
    """(head text, body bytes, Content-Type) of a raw SIP message, without parsing it
    further than the blank line and the Content-Type header (so that a message this
    agent could not parse can still be shown)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, _, body = raw.partition(b"\n\n")
    text = head.decode("utf-8", errors="replace")
    ctype = None
    for line in text.splitlines()[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("content-type", "c"):
            ctype = value.strip()
    return text, body, ctype


def cms_structure(body: bytes, content_type: str | None) -> str:
    """The S/MIME structure of a message body as indented text: a MIME entity (when
    ``content_type`` is None), or the bare body of a request with its Content-Type.
    Anything unreadable gives words, never an exception."""
    if not body:
        return "The request has no body."
    data = body
    if content_type and body[:1] != b"\x30":
        data = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    try:
        return render(describe(load_any(data)))
    except (SmimeError, ValueError) as exc:
        return f"The body is not an S/MIME structure that can be shown: {exc}"


def inspect_sip(
    data: bytes,
    *,
    identity=None,
    trust=None,
    at: datetime,
    extra_certificates: Sequence = (),
) -> dict:
    """Decode one SIP request or response into its layers: the SIP envelope, the body's
    S/MIME structure, the security report, carried certificates, the CPIM wrapper and
    the innermost content. Raises `SipParseError` when ``data`` is not a SIP message;
    problems inside the body are listed under ``problems`` instead of raised."""
    msg = parse_message(data)
    sip: dict = {"start_line": msg.start_line(), "headers": [[n, v] for n, v in msg.headers]}
    if isinstance(msg, SipRequest):
        sip.update(kind="request", method=msg.method, uri=msg.uri)
    else:
        sip.update(kind="response", status=msg.status, reason_phrase=msg.reason)
    try:
        sip["call_id"] = msg.call_id
        sip["cseq"] = str(msg.cseq)
        # The party that wrote the body: the sender of a request, the answerer of a response.
        sender = (msg.from_address if isinstance(msg, SipRequest) else msg.to_address).uri
    except SipParseError:
        sender = None
    out: dict = {
        "sip": sip,
        "body": None,
        "structure": None,
        "report": None,
        "certificates": [],
        "cpim": None,
        "imdn": None,
        "content": None,
        "problems": [],
    }
    if not msg.body:
        return out
    ctype = msg.content_type or "application/octet-stream"
    out["body"] = {"content_type": ctype, "size": len(msg.body)}
    extra_headers = [(n, v) for n in _BODY_HEADERS if (v := msg.headers.get(n)) is not None]
    entity = MimeEntity.build(ctype, msg.body, extra_headers)
    try:
        out["structure"] = describe(entity)
    except SmimeError as exc:
        out["problems"].append(f"body structure: {exc}")
    try:
        opened = unprotect(
            entity,
            identity=identity,
            trust=trust,
            sender=sender,
            at=at,
            extra_certificates=extra_certificates,
        )
    except SmimeError as exc:
        out["problems"].append(f"body cannot be opened: {exc}")
        return out
    report = opened.report
    out["report"] = report.to_json()
    for der in report.certificates:
        try:
            summary = CertificateSummary.of(x509.load_der_x509_certificate(der)).to_json()
        except ValueError as exc:
            summary = {"error": f"unreadable certificate: {exc}"}
        out["certificates"].append(summary)
    inner = opened.entity
    if inner is None:
        return out
    try:
        content = inner.decoded_body()
    except SmimeError as exc:
        out["problems"].append(f"content: {exc}")
        return out
    content_type = str(inner.content_type)
    if inner.content_type.mime_type == "message/cpim":
        try:
            cpim = parse_cpim(content)
        except ImError as exc:
            out["problems"].append(f"CPIM wrapper: {exc}")
        else:
            out["cpim"] = {
                "headers": [[n, v] for n, v in cpim.headers],
                "from": cpim.from_uri,
                "to": list(cpim.to_uris),
                "datetime": cpim.datetime.isoformat().replace("+00:00", "Z"),
                "message_id": cpim.message_id,
                "disposition_notification": list(cpim.disposition_notification),
                "content_type": cpim.content_type,
            }
            content, content_type = cpim.body, cpim.content_type or "text/plain"
            if content_type.split(";")[0].strip().lower() == "message/imdn+xml":
                try:
                    note = imdn_of(cpim)
                except ImError as exc:
                    out["problems"].append(f"IMDN: {exc}")
                else:
                    out["imdn"] = {
                        "message_id": note.message_id,
                        "datetime": note.datetime.isoformat().replace("+00:00", "Z"),
                        "kind": note.kind,
                        "status": note.status,
                        "recipient_uri": note.recipient_uri,
                    }
    shown: dict = {"content_type": content_type, "size": len(content)}
    if content_type.split(";")[0].strip().lower().startswith(("text/", "message/imdn")):
        shown["text"] = content.decode("utf-8", errors="replace")
    out["content"] = shown
    return out
