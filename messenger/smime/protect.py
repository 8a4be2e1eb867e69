"""The safe door of the S/MIME core: `protect()` and `unprotect()`.

`protect` turns content into a MIME entity ready to be a SIP or MSRP body (RFC 8591
section 4: sign, then encrypt). `unprotect` takes any entity we may receive, peels every
layer it finds, and returns the innermost content with the `SecurityReport` of what
protected it. Nothing here raises for bad cryptography: that is a report state. Input we
cannot read at all raises `MalformedError`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from messenger.pki.identity import Identity
from messenger.pki.trust import TrustStore
from messenger.pki.verdict import (
    Authenticity,
    CertificateSummary,
    Check,
    Outcome,
    Revocation,
)
from messenger.smime import cms
from messenger.smime.errors import (
    MalformedError,
    NoRecipientKeyError,
    ProtectError,
    SmimeError,
    TamperedError,
    UnsupportedError,
    WeakAlgorithmError,
)
from messenger.smime.mime import (
    MAX_DEPTH,
    ContentType,
    MimeEntity,
    build_multipart,
    canonical_text,
    header_length,
    split_entity,
    split_multipart,
)
from messenger.smime.policy import DEFAULT_POLICY, Policy
from messenger.smime.recipients import facts
from messenger.smime.report import Algorithm, Confidentiality, SecurityReport

PKCS7_MIME = "application/pkcs7-mime"
PKCS7_SIGNATURE = "application/pkcs7-signature"
_PKCS7_MIME_TYPES = {PKCS7_MIME, "application/x-pkcs7-mime"}
_PKCS7_SIGNATURE_TYPES = {PKCS7_SIGNATURE, "application/x-pkcs7-signature"}

#: The smime-type label we write for each CMS content type (RFC 8551 3.2.2).
SMIME_TYPE = {
    "signed_data": "signed-data",
    "enveloped_data": "enveloped-data",
    "authenticated_enveloped_data": "authEnveloped-data",
}
#: How each layer is named in the report (and so on screen).
LAYER_NAME = {
    "signed_data": "signed-data",
    "enveloped_data": "enveloped-data",
    "authenticated_enveloped_data": "authEnveloped-data",
}

#: Media types a receiver of ours accepts as S/MIME (for Accept and a=accept-types).
SMIME_ACCEPT_TYPES = (PKCS7_MIME, PKCS7_SIGNATURE, "multipart/signed")


def _pkcs7_headers(kind: str) -> tuple[tuple[str, str], ...]:
    ctype = ContentType(PKCS7_MIME, (("smime-type", SMIME_TYPE[kind]), ("name", "smime.p7m")))
    return (
        ("Content-Type", str(ctype)),
        ("Content-Disposition", 'attachment; filename="smime.p7m"'),
        ("Content-Transfer-Encoding", "binary"),
    )


#: The header section of each application/pkcs7-mime entity we write, built once.
_PKCS7_HEADERS = {kind: _pkcs7_headers(kind) for kind in SMIME_TYPE}
_PKCS7_HEAD = {
    kind: MimeEntity(headers, b"").head_bytes() for kind, headers in _PKCS7_HEADERS.items()
}
#: The header section of a signed-data entity inside an envelope, in the compact form:
#: only the Content-Type with its smime-type (RFC 8551 3.2.2). RFC 8551 3.2.1 asks for the
#: name parameter and a Content-Disposition filename (SHOULD) for compatibility with
#: older, S/MIME-unaware readers; an inner layer only ever reaches an agent that has just
#: decrypted the outer one, so they serve nothing there (the outer entity keeps them). No
#: Content-Transfer-Encoding: the content of a CMS structure is octets, and binary,
#: 8bit and 7bit all decode as the identity, so the default reads the same.
_COMPACT_SIGNED_HEAD = MimeEntity(
    (("Content-Type", str(ContentType(PKCS7_MIME, (("smime-type", "signed-data"),)))),), b""
).head_bytes()


def inner_entity(
    content: bytes | bytearray | memoryview,
    content_type: str,
    headers: Sequence[tuple[str, str]] = (),
) -> MimeEntity:
    """The entity that gets signed: Content-Type, blank line, content (text in CRLF form)."""
    return MimeEntity.build(content_type, _inner_body(content, content_type), headers)


def _inner_body(
    content: bytes | bytearray | memoryview, content_type: str
) -> bytes | bytearray | memoryview:
    if content_type.lower().startswith("text/"):
        return canonical_text(bytes(content))
    return content


@functools.lru_cache(maxsize=64)
def _content_entity(
    content_type: str, headers: tuple[tuple[str, str], ...]
) -> tuple[MimeEntity, bytes]:
    """The (bodiless) entity of the content that gets protected and its header section
    as bytes (the same few recur)."""
    entity = MimeEntity.build(content_type, b"", headers)
    return entity, entity.head_bytes()


def protect(
    content: bytes | bytearray | memoryview,
    *,
    content_type: str = "text/plain",
    content_headers: Sequence[tuple[str, str]] = (),
    signer: Identity | None = None,
    recipients: Sequence[x509.Certificate] = (),
    include_certificates: bool = True,
    multipart_signed: bool = False,
    cipher: str | None = None,
    signing_time: datetime,
    policy: Policy = DEFAULT_POLICY,
    random_bytes: Callable[[int], bytes] = os.urandom,
    compact: bool | None = None,
) -> MimeEntity:
    """Sign (when `signer` is given), then encrypt to every recipient (when any).

    Signing makes `application/pkcs7-mime; smime-type=signed-data` with encapsulated
    content, or `multipart/signed` with a detached signature when asked. Encryption makes
    AuthEnvelopedData with AES-128-GCM, or EnvelopedData with AES-CBC only when `cipher`
    names a CBC mode explicitly. With neither, the plain inner entity is returned.

    `content` may be any bytes-like object: when it is signed or encrypted it is read
    where it lies (never copied, except text, which is put in canonical form).

    `compact` (by default: whenever `include_certificates` is False, that is once the
    peer is known to hold our certificate) writes the smallest form every receiver still
    reads, so that a signed and encrypted pager-mode MESSAGE fits UDP: signer and
    recipients named by subject key identifier, signingCertificateV2 by hash only, no
    SMIMECapabilities (the peer has them from first contact), and a signed entity inside
    an envelope with only its Content-Type (see `cms.sign_parts`).
    """
    if compact is None:
        compact = not include_certificates
    if signer is None and not recipients:
        return inner_entity(content, content_type, content_headers)
    body = _inner_body(content, content_type)
    del content
    try:
        entity, head = _content_entity(content_type, tuple(content_headers))
    except TypeError:  # headers that cannot be a dictionary key: not remembered
        entity, head = _content_entity.__wrapped__(content_type, tuple(content_headers))
    # Each layer is kept as the pieces whose concatenation is its bytes (a header section,
    # the content, the DER around it): a large content is hashed and encrypted where it
    # lies and copied once, into the outermost structure.
    parts: list[bytes | memoryview]
    if signer is not None and multipart_signed:
        entity = MimeEntity(entity.headers, bytes(body))
        entity = _sign_multipart(
            entity, signer, include_certificates, signing_time, policy, compact
        )
        if not recipients:
            return entity
        parts = [entity.head_bytes(), entity.body]
    elif signer is not None:
        der_parts = cms.sign_parts(
            (head, body),
            key=signer.signing_key,
            certificate=signer.certificate,
            chain=signer.chain,
            include_certificates=include_certificates,
            signing_time=signing_time,
            digest=policy.digest,
            rsa_pss=policy.rsa_pss,
            compact=compact,
        )
        del entity
        if not recipients:
            return MimeEntity(_PKCS7_HEADERS["signed_data"], b"".join(der_parts))
        head = _COMPACT_SIGNED_HEAD if compact else _PKCS7_HEAD["signed_data"]
        parts = [head, *der_parts]
        del der_parts
    else:
        parts = [head, body]
    del body
    cipher = cipher or policy.content_cipher
    try:
        der = cms.encrypt_parts(
            parts, recipients, cipher=cipher, random_bytes=random_bytes, compact=compact
        )
    except SmimeError:
        raise
    except ValueError as exc:
        raise ProtectError(f"cannot encrypt: {exc}") from None
    kind = "authenticated_enveloped_data" if cipher.endswith("-gcm") else "enveloped_data"
    return MimeEntity(_PKCS7_HEADERS[kind], der)


def _sign_multipart(
    entity: MimeEntity,
    signer: Identity,
    include_certificates: bool,
    signing_time: datetime,
    policy: Policy,
    compact: bool = False,
) -> MimeEntity:
    """multipart/signed: `entity` as the first part, a detached SignedData the second."""
    signed_bytes = entity.to_bytes()
    der = cms.sign(
        signed_bytes,
        key=signer.signing_key,
        certificate=signer.certificate,
        chain=signer.chain,
        include_certificates=include_certificates,
        detached=True,
        signing_time=signing_time,
        digest=policy.digest,
        rsa_pss=policy.rsa_pss,
        compact=compact,
    )
    signature = MimeEntity.build(
        ContentType(PKCS7_SIGNATURE, (("name", "smime.p7s"),)),
        der,
        (
            ("Content-Transfer-Encoding", "binary"),
            ("Content-Disposition", 'attachment; filename="smime.p7s"'),
        ),
    ).to_bytes()
    micalg = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}[policy.digest]
    return build_multipart(
        "signed",
        [signed_bytes, signature],
        (("protocol", PKCS7_SIGNATURE), ("micalg", micalg)),
    )


def certs_only_entity(certificates: Sequence[x509.Certificate]) -> MimeEntity:
    """A `certs-only` entity (RFC 8551 3.8), as carried by a 493 Undecipherable."""
    ctype = ContentType(PKCS7_MIME, (("smime-type", "certs-only"), ("name", "smime.p7c")))
    return MimeEntity.build(
        ctype,
        cms.certs_only(certificates),
        (
            ("Content-Disposition", 'attachment; filename="smime.p7c"'),
            ("Content-Transfer-Encoding", "binary"),
        ),
    )


# -- receiving ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Unprotected:
    """What `unprotect` found: the innermost entity (None when it could not be recovered),
    the report, and any unprotected sibling parts that must be drawn outside the frame."""

    entity: MimeEntity | None
    report: SecurityReport
    outside: tuple[MimeEntity, ...] = ()

    @property
    def content(self) -> bytes | None:
        return self.entity.decoded_body() if self.entity is not None else None

    @property
    def content_type(self) -> str | None:
        return self.entity.content_type.mime_type if self.entity is not None else None


@dataclass
class _Walk:
    """Mutable state while peeling layers; frozen into a SecurityReport at the end."""

    layers: list[str] = field(default_factory=list)
    algorithms: list[Algorithm] = field(default_factory=list)
    recipients: tuple[str, ...] = ()
    certificates: list[x509.Certificate] = field(default_factory=list)
    confidentiality: Confidentiality = Confidentiality.PLAINTEXT
    encrypted_seen: bool = False
    signers: list[tuple[cms.SignerResult, bool]] = field(default_factory=list)
    outside: list[MimeEntity] = field(default_factory=list)
    failure: str = ""
    #: An envelope refused because the policy rejects one of its algorithms.
    weak_envelope: bool = False


def unprotect(
    entity: MimeEntity,
    *,
    identity: Identity | None = None,
    trust: TrustStore | None = None,
    sender: str | None = None,
    at: datetime,
    extra_certificates: Sequence[x509.Certificate] = (),
    policy: Policy = DEFAULT_POLICY,
) -> Unprotected:
    """Peel every S/MIME layer of `entity` and judge what protected it.

    `identity` supplies the decryption keys; `trust` judges signers; `sender` is the SIP
    (or CPIM) identity the message claims to come from; `at` is the time of receipt.
    `extra_certificates` are certificates known out of band (for signatures made without
    the certificate, RFC 8591 section 7.1). Raises MalformedError only when the input is
    not a readable MIME/CMS structure at all.
    """
    walk = _Walk()
    keys = identity.decryption_keys() if identity is not None else []
    # Handed down in a box, so that no frame here keeps the received bytes alive once a
    # layer has been decrypted (a large message is then never held three times over).
    box = [entity]
    del entity
    inner = _peel(box, walk, keys, list(extra_certificates), policy, 0)
    report = _report(walk, inner, trust or TrustStore(), sender, at, policy)
    return Unprotected(inner, report, tuple(walk.outside))


def _peel(
    box: list[MimeEntity],
    walk: _Walk,
    keys: list,
    extra: list[x509.Certificate],
    policy: Policy,
    depth: int,
) -> MimeEntity | None:
    """Peel the entity handed over in `box`. Its body may be a memoryview (a layer
    inside a decrypted or verified structure): it is copied to bytes only when it is not
    itself CMS in binary form, so only the innermost content is ever copied."""
    entity = box.pop()
    if depth > MAX_DEPTH:
        raise MalformedError(f"S/MIME layers nested deeper than {MAX_DEPTH}")
    ctype = entity.content_type
    if ctype.mime_type in _PKCS7_MIME_TYPES or _is_p7m_octets(entity, ctype):
        if isinstance(entity.body, memoryview) and not _binary(entity):
            entity = MimeEntity(entity.headers, bytes(entity.body))
        der_box = [entity.decoded_body()]
        del entity
        return _peel_cms(der_box, walk, keys, extra, policy, depth)
    if isinstance(entity.body, memoryview):
        entity = MimeEntity(entity.headers, bytes(entity.body))
    if ctype.mime_type == "multipart/signed":
        return _peel_multipart_signed(entity, walk, keys, extra, policy, depth)
    if ctype.mime_type.startswith("multipart/"):
        parts = [MimeEntity.parse(p) for p in split_multipart(entity)]
        protected = [p for p in parts if _is_protected(p, depth + 1)]
        if not protected:
            return entity
        # The protected part may sit anywhere in the tree (RFC 8591 9.1); its siblings are
        # not protected.
        walk.outside.extend(p for p in parts if p is not protected[0])
        return _peel([protected[0]], walk, keys, extra, policy, depth + 1)
    return entity


def _binary(entity: MimeEntity) -> bool:
    return entity.transfer_encoding in ("binary", "8bit", "7bit")


def _head_length(data: bytes) -> int:
    """For cms.decrypt(split_head=...): the length of a MIME header section at the start
    of a large plaintext (or 0: no header section to split off)."""
    return max(header_length(data), 0)


def _is_p7m_octets(entity: MimeEntity, ctype: ContentType) -> bool:
    if ctype.mime_type != "application/octet-stream":
        return False
    name = ctype.param("name") or ""
    disposition = entity.header("Content-Disposition") or ""
    return name.lower().endswith(".p7m") or ".p7m" in disposition.lower()


def _is_protected(entity: MimeEntity, depth: int = 0) -> bool:
    """Is `entity` an S/MIME part, or a multipart with one somewhere below it?"""
    try:
        ctype = entity.content_type
        if (
            ctype.mime_type in _PKCS7_MIME_TYPES
            or ctype.mime_type == "multipart/signed"
            or _is_p7m_octets(entity, ctype)
        ):
            return True
        if not ctype.mime_type.startswith("multipart/") or depth >= MAX_DEPTH:
            return False
        return any(_is_protected(MimeEntity.parse(p), depth + 1) for p in split_multipart(entity))
    except MalformedError:
        return False


def _peel_cms(
    box: list[bytes | memoryview],
    walk: _Walk,
    keys: list,
    extra: list[x509.Certificate],
    policy: Policy,
    depth: int,
) -> MimeEntity | None:
    der = box.pop()
    if len(der) > policy.max_input:
        raise MalformedError(
            f"CMS input of {len(der)} bytes is over the limit of {policy.max_input} bytes"
        )
    # The CMS OID decides, never the smime-type label. Only the outer header is read here;
    # verify_signed and decrypt validate everything they use from the same bytes.
    kind = cms.content_type_of(der)
    if kind in ("enveloped_data", "authenticated_enveloped_data"):
        walk.layers.append(LAYER_NAME[kind])
        walk.encrypted_seen = True
        try:
            result = cms.decrypt(der, keys, policy=policy, split_head=_head_length)
        except NoRecipientKeyError as exc:
            walk.recipients = cms.describe_recipients(der)
            walk.confidentiality = Confidentiality.UNDECIPHERABLE
            walk.failure = str(exc)
            return None
        except TamperedError as exc:
            walk.recipients = cms.describe_recipients(der)
            walk.confidentiality = Confidentiality.TAMPERED
            walk.failure = str(exc)
            return None
        except WeakAlgorithmError as exc:
            walk.recipients = cms.describe_recipients(der)
            walk.confidentiality = Confidentiality.UNDECIPHERABLE
            walk.weak_envelope = True
            walk.failure = f"refused by the algorithm policy: {exc}"
            return None
        walk.recipients = result.recipients
        walk.algorithms.extend(result.algorithms)
        walk.confidentiality = (
            Confidentiality.ENCRYPTED if result.authenticated else Confidentiality.ENCRYPTED_LEGACY
        )
        del der  # the ciphertext is not needed any more (large messages)
        box, ect, head = [result.content], result.econtent_type, result.head
        del result  # the content now lives in `box` only: freed once parsed (large messages)
        return _peel_content(box, ect, walk, keys, extra, policy, depth, head)
    if kind == "signed_data":
        result = cms.verify_signed(der, extra_certificates=extra, policy=policy, content_view=True)
        walk.certificates.extend(result.certificates)
        if result.certs_only:
            walk.layers.append("certs-only")
            return None
        walk.layers.append(LAYER_NAME[kind])
        for signer in result.signers:
            walk.signers.append((signer, walk.encrypted_seen))
            walk.algorithms.extend(signer.algorithms)
        if not result.signers:
            walk.failure = "signed-data without a signer"
        box, ect = [result.content], result.econtent_type
        del result  # the content now lives in `box` only: freed once parsed (large messages)
        return _peel_content(box, ect, walk, keys, extra, policy, depth)
    if kind == "data":
        box = [cms.data_content(der)]
        return _peel_content(box, "data", walk, keys, extra, policy, depth)
    raise UnsupportedError(f"CMS content type {kind} is not an S/MIME layer we read")


def _peel_content(
    box: list[bytes | memoryview],
    econtent_type: str,
    walk: _Walk,
    keys: list,
    extra: list[x509.Certificate],
    policy: Policy,
    depth: int,
    head: bytes = b"",
) -> MimeEntity | None:
    """Read the content of a layer, handed over in `box` so that no caller frame keeps it
    alive once it is parsed: a large message is held at most twice at any time. `head` is
    a MIME header section the decryption already split off the content."""
    content = box.pop()
    is_data = econtent_type in ("data", "1.2.840.113549.1.7.1")
    if head:
        headers: tuple[tuple[str, str], ...] | None = None
        if is_data:
            try:
                headers = split_entity(head)[0]
            except MalformedError:
                pass
        if headers is not None:
            return _peel([MimeEntity(headers, content)], walk, keys, extra, policy, depth + 1)
        content = head + content  # not a MIME header after all: read the whole
    if not is_data:
        # A bare CMS structure inside (some senders skip the MIME wrapper between layers).
        return _peel_cms([content], walk, keys, extra, policy, depth + 1)
    try:
        headers, body = split_entity(content)
    except MalformedError:
        # Content that is not a MIME entity: a nested bare CMS, or opaque octets.
        if content[:1] == b"\x30":
            try:
                return _peel_cms([content], walk, keys, extra, policy, depth + 1)
            except MalformedError:
                pass
        return MimeEntity.build("application/octet-stream", content)
    del content
    return _peel([MimeEntity(headers, body)], walk, keys, extra, policy, depth + 1)


def _peel_multipart_signed(
    entity: MimeEntity,
    walk: _Walk,
    keys: list,
    extra: list[x509.Certificate],
    policy: Policy,
    depth: int,
) -> MimeEntity | None:
    parts = split_multipart(entity)
    if len(parts) != 2:
        raise MalformedError(f"multipart/signed has {len(parts)} parts, not 2")
    signed_bytes, signature_part = parts
    signature = MimeEntity.parse(signature_part)
    if signature.content_type.mime_type not in _PKCS7_SIGNATURE_TYPES:
        raise MalformedError(
            f"multipart/signed second part is {signature.content_type.mime_type}, "
            "not application/pkcs7-signature"
        )
    walk.layers.append("multipart/signed")
    der = signature.decoded_body()
    if cms.content_type_of(der) != "signed_data":
        raise MalformedError("multipart/signed signature is not CMS SignedData")
    result = cms.verify_signed(
        der, detached_content=signed_bytes, extra_certificates=extra, policy=policy
    )
    walk.certificates.extend(result.certificates)
    for signer in result.signers:
        walk.signers.append((signer, walk.encrypted_seen))
        walk.algorithms.extend(signer.algorithms)
    if not result.signers:
        walk.failure = "multipart/signed without a signer"
    return _peel([MimeEntity.parse(signed_bytes)], walk, keys, extra, policy, depth + 1)


def _report(
    walk: _Walk,
    inner: MimeEntity | None,
    trust: TrustStore,
    sender: str | None,
    at: datetime,
    policy: Policy,
) -> SecurityReport:
    fields: dict[str, Any] = {
        "confidentiality": walk.confidentiality,
        "authenticity": Authenticity.UNSIGNED,
        "layers": tuple(walk.layers),
        "algorithms": tuple(dict.fromkeys(walk.algorithms)),
        "sender": sender,
        "content_type": inner.content_type.mime_type if inner is not None else None,
        "recipients": walk.recipients,
        "certificates": tuple(dict.fromkeys(facts(c).der for c in walk.certificates)),
    }
    if walk.weak_envelope:
        # 3DES, RC2, the SHA-1 ECDH KDF...: nothing of it is shown, and it is said why.
        return SecurityReport(
            **{**fields, "authenticity": Authenticity.WEAK_ALGORITHM},
            reason=(
                "Encrypted with an algorithm the policy rejects as weak: it is not opened "
                f"({walk.failure})."
            ),
            checks=(Check("algorithm", Outcome.FAIL, walk.failure),),
        )
    if inner is None and walk.confidentiality in (
        Confidentiality.UNDECIPHERABLE,
        Confidentiality.TAMPERED,
    ):
        reason = {
            Confidentiality.UNDECIPHERABLE: (
                "Encrypted, but not to any key you hold: it cannot be read here."
            ),
            Confidentiality.TAMPERED: (
                "Encrypted, but the integrity check failed: the message was altered "
                "in transit and nothing of it is shown."
            ),
        }[walk.confidentiality]
        return SecurityReport(**fields, reason=f"{reason} ({walk.failure})")
    if not walk.signers:
        words = "No signature: nothing shows who wrote this message."
        if walk.failure:
            words = f"{words} ({walk.failure})"
        if walk.confidentiality is Confidentiality.ENCRYPTED:
            words = (
                "Encrypted to you but not signed: anyone who has your certificate "
                "could have written it."
            )
        return SecurityReport(
            **fields,
            reason=words,
            checks=(Check("signature", Outcome.FAIL, "the message carries no signature"),),
        )
    # The first invalid signature decides; otherwise the first signer is the author.
    bad = next((s for s in walk.signers if not s[0].valid), None)
    signer, inside = bad or walk.signers[0]
    fields["signer"] = CertificateSummary.of(signer.certificate) if signer.certificate else None
    fields["signing_time"] = signer.signing_time
    fields["signature_inside_encryption"] = inside
    if not signer.valid:
        state = Authenticity.WEAK_ALGORITHM if signer.weak else Authenticity.BAD_SIGNATURE
        words = (
            "Signed with an algorithm the policy rejects"
            if signer.weak
            else "The signature does not hold: the content may have been altered"
        )
        fields["authenticity"] = state
        return SecurityReport(
            **fields,
            reason=f"{words} ({signer.reason}).",
            checks=(Check("signature", Outcome.FAIL, signer.reason),),
        )
    assert signer.certificate is not None
    own = signer.certificate
    others = [c for c in walk.certificates if c is not own and c != own]
    verdict = trust.evaluate(
        signer.certificate,
        intermediates=others,
        sender=sender,
        at=at,
        signing_time=signer.signing_time,
        min_rsa_bits=policy.min_rsa_bits,
    )
    fields["authenticity"] = verdict.authenticity
    return SecurityReport(
        **fields,
        sender_match=verdict.sender_match,
        chain=verdict.chain,
        revocation=verdict.revocation,
        checks=(_signature_pass(signer.reason), *verdict.checks),
        reason=verdict.reason,
    )


@functools.lru_cache(maxsize=64)
def _signature_pass(reason: str) -> Check:
    return Check("signature", Outcome.PASS, reason)


__all__ = [
    "PKCS7_MIME",
    "PKCS7_SIGNATURE",
    "SMIME_ACCEPT_TYPES",
    "Revocation",
    "Unprotected",
    "certs_only_entity",
    "inner_entity",
    "protect",
    "unprotect",
]
