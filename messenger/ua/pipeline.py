"""The two pager-mode pipelines of the user agent, without I/O.

Outgoing: content -> CPIM (From, To, DateTime, NS imdn, imdn.Message-ID,
imdn.Disposition-Notification) -> sign -> encrypt when the peer's certificate is known ->
the SIP body and its content headers (`protect_body`).

Incoming: the body of a MESSAGE -> media type check (415 with Accept) -> `unprotect`
with our identity and trust store -> 493 when it is encrypted to a key we do not hold ->
CPIM -> the checks only the user agent can make (replay and staleness, the CPIM From
against the signer, the CPIM To against us) -> an `Opened` value with the report
(`open_body`). Anything refused comes out as a `Refusal` carrying the response to send.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography import x509

from messenger.im.cpim import CpimMessage, parse_cpim
from messenger.im.errors import ImError
from messenger.pki.identity import Identity
from messenger.pki.trust import TrustStore
from messenger.pki.verdict import Authenticity, Check, Outcome
from messenger.sip.message import SipMessage, SipRequest
from messenger.sip.uri import uri_equal
from messenger.smime.errors import SmimeError
from messenger.smime.mime import ContentType, MimeEntity
from messenger.smime.protect import certs_only_entity, protect, unprotect
from messenger.smime.report import Confidentiality, Replay, SecurityReport

__all__ = [
    "ACCEPT_HEADER",
    "ACCEPT_TYPES",
    "CPIM_TYPE",
    "PROTECTED_TYPES",
    "REPLAYED_PHRASE",
    "Opened",
    "Refusal",
    "body_entity",
    "certs_only_body",
    "open_body",
    "protect_body",
]

CPIM_TYPE = "message/cpim"
PROTECTED_TYPES = frozenset(
    {
        "application/pkcs7-mime",
        "application/x-pkcs7-mime",
        "application/pkcs7-signature",
        "multipart/signed",
    }
)
#: What a MESSAGE body may be (RFC 8591 section 7: listed in Accept, and with 415).
ACCEPT_TYPES = (
    "application/pkcs7-mime",
    "application/pkcs7-signature",
    "multipart/signed",
    "message/cpim",
    "text/plain",
    "message/imdn+xml",
    "multipart/mixed",
)
#: A protected part may sit inside a multipart/mixed (RFC 8591 section 9.1); its siblings
#: are not protected and are kept apart (`Opened.outside`).
MIXED_TYPE = "multipart/mixed"
ACCEPT_HEADER = ", ".join(ACCEPT_TYPES)
#: The reason phrase of the 403 refusing a message already received (same message id).
REPLAYED_PHRASE = "Replayed Message"
_ACCEPTED = frozenset(ACCEPT_TYPES) | {"application/x-pkcs7-mime"}

#: The MIME headers of a protected entity that travel as SIP headers.
_CONTENT_HEADERS = ("Content-Disposition", "Content-Transfer-Encoding")


class Refusal(Exception):
    """An incoming request is answered with an error: ``status`` and ``phrase`` for the
    status line, ``words`` for a person, optional extra headers, body and report."""

    def __init__(
        self,
        status: int,
        phrase: str,
        words: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        report: SecurityReport | None = None,
    ) -> None:
        super().__init__(words)
        self.status = status
        self.phrase = phrase
        self.words = words
        self.headers = tuple(headers)
        self.body = body
        self.report = report


@dataclass(frozen=True)
class Opened:
    """A received MESSAGE body, opened and judged."""

    report: SecurityReport
    content_type: str | None
    content: bytes | None
    cpim: CpimMessage | None = None
    message_id: str | None = None
    signer_certificate: x509.Certificate | None = None
    extra: dict = field(default_factory=dict)
    #: parts that came beside the protected one: no signature of the message covers them
    outside: tuple[MimeEntity, ...] = ()

    @property
    def encrypted(self) -> bool:
        return self.report.confidentiality in (
            Confidentiality.ENCRYPTED,
            Confidentiality.ENCRYPTED_LEGACY,
        )


# -- outgoing -----------------------------------------------------------------------------


def protect_body(
    cpim: bytes,
    *,
    identity: Identity | None,
    recipient: x509.Certificate | None,
    include_certificate: bool,
    at: datetime,
) -> tuple[list[tuple[str, str]], bytes]:
    """The SIP content headers (Content-Type first) and body carrying ``cpim``: signed by
    ``identity`` when given, encrypted to ``recipient`` when given, plain CPIM otherwise."""
    if identity is None and recipient is None:
        return [("Content-Type", CPIM_TYPE)], cpim
    entity = protect(
        cpim,
        content_type=CPIM_TYPE,
        signer=identity,
        recipients=[recipient] if recipient is not None else [],
        include_certificates=include_certificate,
        signing_time=at,
    )
    return _sip_headers(entity), entity.body


def _sip_headers(entity: MimeEntity) -> list[tuple[str, str]]:
    headers = [("Content-Type", entity.header("Content-Type") or "application/octet-stream")]
    for name in _CONTENT_HEADERS:
        value = entity.header(name)
        if value is not None:
            headers.append((name, value))
    return headers


def certs_only_body(identity: Identity) -> tuple[list[tuple[str, str]], bytes]:
    """The content headers and body of a 493: our certificate(s) in a certs-only entity."""
    certificates = [identity.certificate]
    if identity.encryption_certificate not in (None, identity.certificate):
        certificates.append(identity.encryption_certificate)
    entity = certs_only_entity(certificates)
    return _sip_headers(entity), entity.body


# -- incoming -----------------------------------------------------------------------------


def body_entity(request: SipMessage) -> MimeEntity:
    """The MIME entity a SIP request or response carries (its content headers and body)."""
    headers = [
        (name, value)
        for name in _CONTENT_HEADERS
        if (value := request.headers.get(name)) is not None
    ]
    return MimeEntity.build(request.content_type or "text/plain", request.body, headers)


def _mime_type(value: str | None) -> str:
    if value is None:
        return "text/plain"
    try:
        return ContentType.parse(value).mime_type
    except SmimeError:
        raise Refusal(
            400, "Bad Request", f"the Content-Type {value[:60]!r} cannot be read"
        ) from None


def open_body(
    request: SipRequest,
    *,
    sender: str,
    local_aor: str,
    identity: Identity,
    trust: TrustStore,
    at: datetime,
    known_certificate: x509.Certificate | None,
    replay_window: timedelta,
    seen: Callable[[str, str], bool],
) -> Opened:
    """Open and judge the body of a MESSAGE from ``sender`` (the SIP From AoR).

    Raises `Refusal` for 415 (media type), 493 (encrypted to a key we do not hold), 400
    (unreadable body, failed integrity), 403 (replayed or stale).
    """
    mime_type = _mime_type(request.content_type)
    if mime_type not in _ACCEPTED:
        raise Refusal(
            415,
            "Unsupported Media Type",
            f"a message of type {mime_type} arrived; this agent takes {ACCEPT_HEADER}",
            headers=[("Accept", ACCEPT_HEADER)],
        )
    entity = body_entity(request)
    if mime_type in PROTECTED_TYPES or mime_type == MIXED_TYPE:
        try:
            result = unprotect(
                entity,
                identity=identity,
                trust=trust,
                sender=sender,
                at=at,
                extra_certificates=[known_certificate] if known_certificate else (),
            )
        except SmimeError as exc:
            raise Refusal(400, "Bad Request", f"the protected body cannot be read: {exc}") from None
        report = result.report
        if report.confidentiality is Confidentiality.UNDECIPHERABLE:
            headers, body = certs_only_body(identity)
            raise Refusal(
                493,
                "Undecipherable",
                f"{sender} sent a message encrypted to a key this agent does not hold; "
                "our certificate went back with the 493 so the sender can encrypt to it",
                headers=headers,
                body=body,
                report=report,
            )
        if report.confidentiality is Confidentiality.TAMPERED:
            raise Refusal(400, "Integrity Check Failed", report.reason, report=report)
        if "certs-only" in report.layers and result.entity is None:
            raise Refusal(400, "Bad Request", "a certs-only body carries no message", report=report)
        inner_type = result.content_type
        if inner_type in PROTECTED_TYPES:
            # e.g. a bare detached signature: there is no content it could vouch for
            raise Refusal(
                400,
                "Bad Request",
                f"the body is a {inner_type} without the content it protects",
                report=report,
            )
        try:
            content = result.content
        except SmimeError as exc:
            raise Refusal(400, "Bad Request", f"the inner content cannot be read: {exc}") from None
        signer = _signer_certificate(report)
        outside = result.outside
    else:
        report = SecurityReport(
            confidentiality=Confidentiality.PLAINTEXT,
            authenticity=Authenticity.UNSIGNED,
            sender=sender,
            content_type=mime_type,
            reason="No signature: nothing shows who wrote this message.",
            checks=(Check("signature", Outcome.FAIL, "the message carries no signature"),),
        )
        inner_type = mime_type
        content = request.body
        signer = None
        outside = ()

    cpim: CpimMessage | None = None
    message_id: str | None = None
    if inner_type == CPIM_TYPE:
        try:
            cpim = parse_cpim(content or b"")
        except ImError as exc:
            raise Refusal(400, "Bad Request", f"the CPIM wrapper cannot be read: {exc}") from None
        message_id = cpim.message_id
        report = _cpim_checks(report, cpim, sender, local_aor, signer is not None)
        report, refusal = _replay_check(report, cpim, message_id, sender, at, replay_window, seen)
        if refusal is not None:
            raise refusal
        content_type = cpim.content_type or "text/plain"
        content = cpim.body
    else:
        content_type = inner_type
    return Opened(
        report=report,
        content_type=content_type,
        content=content,
        cpim=cpim,
        message_id=message_id,
        signer_certificate=signer,
        outside=outside,
    )


def _signer_certificate(report: SecurityReport) -> x509.Certificate | None:
    if report.signer is None or not report.authenticity.signature_valid:
        return None
    for der in report.certificates:
        if report.signer.sha256 == hashlib.sha256(der).hexdigest():
            return _certificate(der)
    return None


@functools.lru_cache(maxsize=256)
def _certificate(der: bytes) -> x509.Certificate:
    """The certificate of ``der``, loaded once: a signer sends the same one every time."""
    return x509.load_der_x509_certificate(der)


def _cpim_checks(
    report: SecurityReport, cpim: CpimMessage, sender: str, local_aor: str, signed: bool
) -> SecurityReport:
    """Which CPIM headers the signature covers, and whether they agree with SIP."""
    if signed:
        report = replace(report, cpim_covered=("From", "To", "DateTime"))
    else:
        report = replace(report, cpim_covered=())
    try:
        from_ok = _same_uri(cpim.from_uri, sender)
        to_ok = any(_same_uri(uri, local_aor) for uri in cpim.to_uris)
    except (ImError, ValueError):
        from_ok = to_ok = False
    if not from_ok:
        report = report.with_check(
            Check(
                "cpim-from",
                Outcome.FAIL,
                f"the CPIM From {cpim.from_} differs from the SIP sender {sender}",
            )
        )
    if not to_ok:
        report = report.with_check(
            Check(
                "cpim-to",
                Outcome.FAIL,
                f"the message was written to {', '.join(cpim.to)}, not to {local_aor}: "
                "it may have been forwarded by someone else",
            )
        )
    return report


@functools.lru_cache(maxsize=4096)
def _same_uri(a: str, b: str) -> bool:
    """RFC 3261 URI equality, remembered: the same few peers write again and again."""
    return uri_equal(a, b)


def _replay_check(
    report: SecurityReport,
    cpim: CpimMessage,
    message_id: str | None,
    sender: str,
    at: datetime,
    window: timedelta,
    seen: Callable[[str, str], bool],
) -> tuple[SecurityReport, Refusal | None]:
    skew = abs(at - cpim.datetime)
    if skew > window:
        words = (
            f"the message is dated {cpim.datetime.isoformat()}, {_minutes(skew)} away from "
            f"now (the limit is {_minutes(window)}): refused as stale or replayed"
        )
        report = replace(report, replay=Replay.STALE).with_check(
            Check("replay", Outcome.FAIL, words)
        )
        return report, Refusal(403, "Stale Message", words, report=report)
    if message_id is not None and seen(sender, message_id):
        words = f"a message with the id {message_id} from {sender} was already received"
        report = replace(report, replay=Replay.DUPLICATE).with_check(
            Check("replay", Outcome.FAIL, words + ": refused as a replay")
        )
        return report, Refusal(403, REPLAYED_PHRASE, words, report=report)
    report = replace(report, replay=Replay.FRESH).with_check(
        Check("replay", Outcome.PASS, "first time seen, dated within the window")
    )
    return report, None


def _minutes(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min"
