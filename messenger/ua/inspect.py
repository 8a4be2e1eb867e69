"""Decoding one SIP message for a person debugging interop: the SIP envelope, the body's
S/MIME structure, the security report, the certificates carried, the CPIM wrapper, any
IMDN and the innermost content (`messenger inspect` renders it)."""

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
from messenger.smime.inspect import describe
from messenger.smime.mime import MimeEntity
from messenger.smime.protect import unprotect

__all__ = ["inspect_sip"]

_BODY_HEADERS = ("Content-Transfer-Encoding", "Content-Disposition", "Content-Encoding")


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
