"""A readable dump of S/MIME structure for people debugging interop: layers, algorithms,
recipients, signers and certificates, without any key and without judging trust."""

from __future__ import annotations

import base64
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509

from messenger.smime import cms
from messenger.smime.errors import MalformedError
from messenger.smime.mime import MimeEntity, split_multipart
from messenger.smime.policy import DEFAULT_POLICY

MAX_DEPTH = 8


def load_any(data: bytes) -> MimeEntity:
    """Read a MIME entity, bare DER/BER CMS or PEM CMS into a MIME entity."""
    stripped = data.lstrip()
    if stripped.startswith(b"-----BEGIN"):
        lines = [ln for ln in stripped.splitlines() if ln and not ln.startswith(b"-----")]
        try:
            der = base64.b64decode(b"".join(lines), validate=True)
        except ValueError:
            raise MalformedError("PEM armour does not contain valid base64") from None
        return MimeEntity.build("application/pkcs7-mime", der)
    if data[:1] == b"\x30":
        return MimeEntity.build("application/pkcs7-mime", data)
    return MimeEntity.parse(data)


def describe(entity: MimeEntity, depth: int = 0) -> dict[str, Any]:
    """A tree describing `entity` and every layer reachable without a key."""
    if depth > MAX_DEPTH:
        raise MalformedError("structure nested too deeply")
    ctype = entity.content_type
    node: dict[str, Any] = {"content_type": str(ctype), "size": len(entity.body)}
    if ctype.mime_type in (
        "application/pkcs7-mime",
        "application/x-pkcs7-mime",
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
    ):
        node["cms"] = describe_cms(entity.decoded_body(), depth)
    elif ctype.mime_type.startswith("multipart/"):
        node["parts"] = [describe(MimeEntity.parse(p), depth + 1) for p in split_multipart(entity)]
    return node


def describe_cms(der: bytes, depth: int = 0) -> dict[str, Any]:
    ci = cms.parse_content_info(der, DEFAULT_POLICY)
    kind = cms.content_type_of(ci)
    node: dict[str, Any] = {"type": kind, "oid": ci["content_type"].dotted, "size": len(der)}
    content = ci["content"]
    if kind == "signed_data":
        sd = content
        node["version"] = sd["version"].native
        node["digest_algorithms"] = [a["algorithm"].native for a in sd["digest_algorithms"]]
        node["econtent_type"] = sd["encap_content_info"]["content_type"].native
        econtent = sd["encap_content_info"]["content"]
        node["econtent_size"] = len(econtent.native) if econtent.native is not None else None
        node["certificates"] = [
            _cert(c.chosen)
            for c in (sd["certificates"] or [])
            if isinstance(c.chosen, asn1_x509.Certificate)
        ]
        node["signers"] = [_signer(si) for si in sd["signer_infos"]]
        if econtent.native and depth < MAX_DEPTH:
            node["inner"] = _inner(econtent.native, depth)
    elif kind in ("enveloped_data", "authenticated_enveloped_data"):
        node["version"] = content["version"].native
        node["recipients"] = list(cms.describe_recipients(ci))
        eci = content[
            "auth_encrypted_content_info"
            if kind == "authenticated_enveloped_data"
            else "encrypted_content_info"
        ]
        alg = eci["content_encryption_algorithm"]
        node["content_encryption"] = alg["algorithm"].dotted
        node["content_encryption_name"] = alg["algorithm"].native
        enc = eci["encrypted_content"].native
        node["encrypted_content_size"] = len(enc) if enc is not None else None
        if kind == "authenticated_enveloped_data":
            node["mac_size"] = len(content["mac"].native)
    return node


def _inner(content: bytes, depth: int) -> dict[str, Any]:
    try:
        return describe(MimeEntity.parse(content), depth + 1)
    except MalformedError:
        if content[:1] == b"\x30":
            return describe_cms(content, depth + 1)
        return {"content_type": "(not MIME)", "size": len(content)}


def _cert(cert: asn1_x509.Certificate) -> dict[str, Any]:
    uris: list[str] = []
    for gn in cert.subject_alt_name_value or []:
        if gn.name == "uniform_resource_identifier":
            uris.append(gn.native)
    return {
        "subject": cert.subject.human_friendly,
        "issuer": cert.issuer.human_friendly,
        "serial": format(cert.serial_number, "x"),
        "uris": uris,
        "not_after": cert["tbs_certificate"]["validity"]["not_after"].native.isoformat(),
        "key": cert.public_key.algorithm,
    }


def _signer(si: asn1_cms.SignerInfo) -> dict[str, Any]:
    sid = si["sid"]
    if sid.name == "issuer_and_serial_number":
        who = (
            f"issuer {sid.chosen['issuer'].human_friendly}, "
            f"serial {format(sid.chosen['serial_number'].native, 'x')}"
        )
    else:
        who = f"subjectKeyIdentifier {sid.chosen.native.hex()}"
    attrs = []
    if si["signed_attrs"]:
        attrs = [a["type"].native for a in si["signed_attrs"]]
    return {
        "sid": who,
        "digest_algorithm": si["digest_algorithm"]["algorithm"].native,
        "signature_algorithm": si["signature_algorithm"]["algorithm"].native,
        "signed_attributes": attrs,
    }


def render(node: dict[str, Any], indent: int = 0) -> str:
    """The tree as indented text."""
    pad = "  " * indent
    lines: list[str] = []
    for key, value in node.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.append(render(value, indent + 1))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{key}:")
            for i, item in enumerate(value):
                lines.append(f"{pad}  [{i}]")
                lines.append(render(item, indent + 2))
        else:
            lines.append(f"{pad}{key}: {value}")
    return "\n".join(lines)
