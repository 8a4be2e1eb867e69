"""SignedData: our `sign` output, checked by our `verify_signed` and by asn1crypto."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives import hashes, serialization

from messenger.smime import asn1, cms
from messenger.smime.errors import MalformedError, ProtectError, UnsupportedError
from messenger.smime.policy import DEFAULT_POLICY, Policy


def _der(cert: Any) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _strict_der(data: bytes) -> bool:
    """asn1crypto re-encodes (force) to the same bytes: our writer emits DER."""
    return asn1_cms.ContentInfo.load(data).dump(force=True) == data


SIGNERS = ["ec", "rsa", "ed"]


@pytest.mark.parametrize("who", SIGNERS)
@pytest.mark.parametrize("detached", [False, True])
def test_sign_verify_round_trip(
    pki: Any, who: str, detached: bool, message: bytes, signing_time: dt.datetime
) -> None:
    ident = getattr(pki, who)
    der = cms.sign(
        message, key=ident.key, certificate=ident.cert, signing_time=signing_time, detached=detached
    )
    assert _strict_der(der)
    result = cms.verify_signed(der, detached_content=message if detached else None)
    (signer,) = result.signers
    assert signer.valid and not signer.weak, signer.reason
    assert signer.reason == "signature valid"
    assert signer.certificate == ident.cert
    assert signer.signing_time == signing_time
    assert result.content == message
    assert result.certificates == (ident.cert,)
    assert result.econtent_type == "data"
    assert not result.certs_only


def test_signed_attributes(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    ci = cms.parse_content_info(der)
    sd = ci["content"]
    assert sd["version"].native == "v1"
    assert [a["algorithm"].native for a in sd["digest_algorithms"]] == ["sha256"]
    assert sd["encap_content_info"]["content"].native == message
    si = sd["signer_infos"][0]
    assert si["version"].native == "v1"
    assert si["sid"].name == "issuer_and_serial_number"
    assert si["sid"].chosen["serial_number"].native == pki.ec.cert.serial_number
    assert si["signature_algorithm"]["algorithm"].dotted == "1.2.840.10045.4.3.2"
    assert si["signature_algorithm"]["parameters"].native is None
    attrs = {a["type"].native: a["values"] for a in si["signed_attrs"]}
    assert set(attrs) == {
        "content_type",
        "signing_time",
        "message_digest",
        "smime_capabilities",
        "signing_certificate_v2",
    }
    assert attrs["content_type"][0].native == "data"
    assert attrs["signing_time"][0].name == "utc_time"
    assert attrs["signing_time"][0].native == signing_time
    assert attrs["message_digest"][0].native == hashlib.sha256(message).digest()
    caps = [c["capability_id"].dotted for c in attrs["smime_capabilities"][0]]
    assert caps[:3] == [
        "2.16.840.1.101.3.4.1.6",
        "2.16.840.1.101.3.4.1.46",
        "2.16.840.1.101.3.4.1.2",
    ]
    ess = attrs["signing_certificate_v2"][0]["certs"][0]
    assert ess["cert_hash"].native == hashlib.sha256(_der(pki.ec.cert)).digest()
    assert ess["hash_algorithm"]["algorithm"].native == "sha256"  # the DEFAULT, not encoded
    assert ess["issuer_serial"]["serial"].native == pki.ec.cert.serial_number
    # DER SET OF: the signed attributes are in ascending order of their encodings.
    encodings = [a.dump() for a in si["signed_attrs"]]
    assert encodings == sorted(encodings)


def test_signing_time_after_2049_is_generalized(pki: Any, message: bytes) -> None:
    when = dt.datetime(2051, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    der = cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=when)
    si = cms.parse_content_info(der)["content"]["signer_infos"][0]
    (st,) = [a["values"][0] for a in si["signed_attrs"] if a["type"].native == "signing_time"]
    assert st.name == "generalized_time"
    assert cms.verify_signed(der).signers[0].signing_time == when


def test_rsa_pss_parameters(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = cms.sign(
        message, key=pki.rsa.key, certificate=pki.rsa.cert, signing_time=signing_time, rsa_pss=True
    )
    si = cms.parse_content_info(der)["content"]["signer_infos"][0]
    alg = si["signature_algorithm"]
    assert alg["algorithm"].native == "rsassa_pss"
    params = alg["parameters"]
    assert params["hash_algorithm"]["algorithm"].native == "sha256"
    assert params["mask_gen_algorithm"]["parameters"]["algorithm"].native == "sha256"
    assert params["salt_length"].native == 32
    (signer,) = cms.verify_signed(der).signers
    assert signer.valid
    assert [a.name for a in signer.algorithms] == ["sha256", "RSASSA-PSS"]


def test_rsa_pkcs1_algorithm(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = cms.sign(message, key=pki.rsa.key, certificate=pki.rsa.cert, signing_time=signing_time)
    (signer,) = cms.verify_signed(der).signers
    assert [a.name for a in signer.algorithms] == ["sha256", "sha256WithRSAEncryption"]


def test_ed25519_uses_sha512(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = cms.sign(message, key=pki.ed.key, certificate=pki.ed.cert, signing_time=signing_time)
    si = cms.parse_content_info(der)["content"]["signer_infos"][0]
    assert si["digest_algorithm"]["algorithm"].native == "sha512"
    assert si["signature_algorithm"]["algorithm"].dotted == "1.3.101.112"
    assert si["signature_algorithm"]["parameters"].native is None
    (signer,) = cms.verify_signed(der).signers
    assert [a.name for a in signer.algorithms] == ["sha512", "Ed25519"]


def test_chain_and_no_certificates(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = cms.sign(
        message,
        key=pki.ec.key,
        certificate=pki.ec.cert,
        chain=[pki.ca.cert],
        signing_time=signing_time,
    )
    assert cms.verify_signed(der).certificates == (pki.ec.cert, pki.ca.cert)
    bare = cms.sign(
        message,
        key=pki.ec.key,
        certificate=pki.ec.cert,
        chain=[pki.ca.cert],
        signing_time=signing_time,
        include_certificates=False,
    )
    assert len(bare) < len(der) - 500
    result = cms.verify_signed(bare)
    assert result.certificates == ()
    assert result.signers[0].reason == "signer certificate not found"
    assert cms.verify_signed(bare, extra_certificates=[pki.ca.cert, pki.ec.cert]).signers[0].valid


def test_other_econtent_type(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = cms.sign(
        message,
        key=pki.ec.key,
        certificate=pki.ec.cert,
        signing_time=signing_time,
        econtent_type="1.2.840.113549.1.9.16.1.4",
        smime_capabilities=False,
    )
    sd = cms.parse_content_info(der)["content"]
    assert sd["version"].native == "v3"
    result = cms.verify_signed(der)
    assert result.econtent_type == "1.2.840.113549.1.9.16.1.4"
    assert result.signers[0].valid


def test_tampered_content(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = bytearray(
        cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    )
    at = bytes(der).index(message) + 10
    der[at] ^= 0x01
    result = cms.verify_signed(bytes(der))
    (signer,) = result.signers
    assert not signer.valid and not signer.weak
    assert signer.reason == "message digest does not match the content"
    assert result.content != message


def test_wrong_detached_content(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = cms.sign(
        message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time, detached=True
    )
    (signer,) = cms.verify_signed(der, detached_content=message + b" ").signers
    assert signer.reason == "message digest does not match the content"
    (signer,) = cms.verify_signed(der).signers
    assert not signer.valid
    assert "detached" in signer.reason


def test_tampered_signature(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = bytearray(
        cms.sign(message, key=pki.rsa.key, certificate=pki.rsa.cert, signing_time=signing_time)
    )
    der[-5] ^= 0x40  # inside the RSA signature value, the last field
    (signer,) = cms.verify_signed(bytes(der)).signers
    assert not signer.valid
    assert signer.reason == "signature does not verify"


def test_tampered_signed_attribute(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    st = asn1.encode_time(signing_time)
    later = asn1.encode_time(signing_time + dt.timedelta(days=1))
    assert der.count(st) == 1
    (signer,) = cms.verify_signed(der.replace(st, later)).signers
    assert signer.reason == "signature does not verify"
    assert signer.signing_time == signing_time + dt.timedelta(days=1)


def test_signing_certificate_attribute_must_match(
    pki: Any, message: bytes, signing_time: dt.datetime
) -> None:
    der = cms.sign(
        message,
        key=pki.ec.key,
        certificate=pki.ec.cert,
        signing_time=signing_time,
        include_certificates=False,
    )
    # A certificate with the same issuer, serial and key but other bytes: the ESS hash
    # (RFC 5035) no longer names it, even though the signature verifies with its key.
    from cryptography import x509

    twin = (
        x509.CertificateBuilder()
        .subject_name(pki.ec.cert.subject)
        .issuer_name(pki.ec.cert.issuer)
        .public_key(pki.ec.cert.public_key())
        .serial_number(pki.ec.cert.serial_number)
        .not_valid_before(pki.ec.cert.not_valid_before_utc)
        .not_valid_after(pki.ec.cert.not_valid_after_utc + dt.timedelta(days=1))
        .sign(pki.ca.key, hashes.SHA256())
    )
    (signer,) = cms.verify_signed(der, extra_certificates=[twin]).signers
    assert not signer.valid
    assert signer.reason == (
        "the signing certificate attribute does not match the signer certificate"
    )


def test_weak_rsa_key(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = cms.sign(
        message, key=pki.rsa_weak.key, certificate=pki.rsa_weak.cert, signing_time=signing_time
    )
    (signer,) = cms.verify_signed(der).signers
    assert signer.weak and not signer.valid
    assert signer.reason == "RSA key of 1024 bits rejected by policy (minimum 2048)"
    relaxed = Policy(min_rsa_bits=1024)
    assert cms.verify_signed(der, policy=relaxed).signers[0].valid


def test_sha1_is_weak(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    der = cms.sign(
        message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time, digest="sha1"
    )
    (signer,) = cms.verify_signed(der).signers
    assert signer.weak and not signer.valid
    assert signer.reason == "SHA-1 rejected by policy"
    allow = dataclasses.replace(DEFAULT_POLICY, accepted_digests=frozenset({"sha1", "sha256"}))
    assert cms.verify_signed(der, policy=allow).signers[0].valid


def test_sign_refuses(pki: Any, message: bytes, signing_time: dt.datetime) -> None:
    with pytest.raises(ProtectError):
        cms.sign(message, key=pki.ec.key, certificate=pki.ec2.cert, signing_time=signing_time)
    # A pair once found to belong together says nothing about another pair.
    cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    cms.sign(message, key=pki.ec2.key, certificate=pki.ec2.cert, signing_time=signing_time)
    for key, cert in ((pki.ec.key, pki.ec2.cert), (pki.ec2.key, pki.ec.cert)):
        with pytest.raises(ProtectError, match="does not belong"):
            cms.sign(message, key=key, certificate=cert, signing_time=signing_time)
    with pytest.raises(ProtectError):
        cms.sign(message, key=pki.x.key, certificate=pki.x.cert, signing_time=signing_time)
    with pytest.raises(ProtectError):
        cms.sign(
            message,
            key=pki.ec.key,
            certificate=pki.ec.cert,
            signing_time=signing_time,
            digest="md5",
        )


def test_certs_only(pki: Any) -> None:
    assert _strict_der(cms.certs_only([pki.ec.cert]))
    # Several certificates keep the order given (our own first), as OpenSSL does, rather
    # than DER-sorting the SET: receivers that take the first certificate find ours.
    der = cms.certs_only([pki.ec.cert, pki.ca.cert])
    result = cms.verify_signed(der)
    assert result.certs_only
    assert result.signers == ()
    assert result.content == b""
    assert result.certificates == (pki.ec.cert, pki.ca.cert)
    sd = cms.parse_content_info(der)["content"]
    assert len(sd["signer_infos"]) == 0 and len(sd["digest_algorithms"]) == 0


def test_verify_refuses_other_content(pki: Any, message: bytes) -> None:
    env = cms.encrypt(message, [pki.ec.cert])
    with pytest.raises(UnsupportedError):
        cms.verify_signed(env)
    with pytest.raises(MalformedError):
        cms.verify_signed(b"\x30\x03\x02\x01\x00")
    with pytest.raises(MalformedError):
        cms.verify_signed("not bytes")  # type: ignore[arg-type]


def test_verify_accepts_a_parsed_content_info(
    pki: Any, message: bytes, signing_time: dt.datetime
) -> None:
    der = cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    assert cms.verify_signed(cms.parse_content_info(der)).signers[0].valid
    assert cms.verify_signed(asn1_cms.ContentInfo.load(der)).signers[0].valid


def test_signer_by_subject_key_identifier(
    pki: Any, message: bytes, signing_time: dt.datetime
) -> None:
    """Rewrite our SignerInfo to a v3 with a subjectKeyIdentifier sid (signature over the
    signed attributes stays valid: the sid is not signed)."""
    der = cms.sign(message, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    ci = asn1_cms.ContentInfo.load(der)
    si = ci["content"]["signer_infos"][0]
    from cryptography import x509

    ski = pki.ec.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    si["version"] = "v3"
    si["sid"] = asn1_cms.SignerIdentifier({"subject_key_identifier": ski})
    ci["content"]["version"] = "v3"
    rewritten = ci.dump(force=True)
    (signer,) = cms.verify_signed(rewritten).signers
    assert signer.valid, signer.reason
    assert signer.sid == f"subject key identifier {ski.hex()}"
