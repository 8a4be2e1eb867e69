"""RFC 8591 section 10 example messages (shared/vectors/rfc8591) through the CMS layer."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from messenger.smime import cms
from messenger.smime.errors import MalformedError, NoRecipientKeyError

MESSAGE = b"Content-Type: text/plain\r\n\r\nWatson, come here - I want to see you.\r\n"

ALICE_SERIAL = 0xB8793EC0E4C21530
ALICE_RSA_SERIAL = 0x83F50BB70BD5C40E


def _alice(vectors: Path) -> x509.Certificate:
    return x509.load_der_x509_certificate((vectors / "alice-cert.der").read_bytes())


def test_inner_entity_digest() -> None:
    assert len(MESSAGE) == 68
    assert hashlib.sha256(MESSAGE).hexdigest() == (
        "ef778fc940d5e6dc2576f47a599b3126195a9f1a227adaf35fa22c050d8d195a"
    )


def test_fig1_signed_with_certificate(vectors: Path) -> None:
    data = (vectors / "fig1-signed-with-cert.der").read_bytes()
    assert cms.content_type_of(data) == "signed_data"
    result = cms.verify_signed(data)
    assert result.content == MESSAGE
    assert result.econtent_type == "data"
    assert not result.certs_only
    assert [c.serial_number for c in result.certificates] == [ALICE_SERIAL]
    assert result.crls == ()
    (signer,) = result.signers
    assert signer.valid and not signer.weak
    assert signer.reason == "signature valid"
    assert signer.certificate == _alice(vectors)
    assert signer.signing_time == dt.datetime(2019, 1, 26, 6, 13, 54, tzinfo=dt.UTC)
    assert signer.sid == "issuer O=example.com, CN=Alice, serial b8793ec0e4c21530"
    assert [(a.role, a.name, a.oid) for a in signer.algorithms] == [
        ("digest", "sha256", "2.16.840.1.101.3.4.2.1"),
        ("signature", "ecdsa-with-SHA256", "1.2.840.10045.4.3.2"),
    ]


def test_fig1_inside_the_sip_request(vectors: Path) -> None:
    request = (vectors / "fig1-message.sip").read_bytes()
    body = request[423:]
    assert body == (vectors / "fig1-signed-with-cert.der").read_bytes()
    assert cms.verify_signed(body).signers[0].valid


def test_fig2_with_alice_certificate_supplied(vectors: Path) -> None:
    data = (vectors / "fig2-signed-no-cert.der").read_bytes()
    result = cms.verify_signed(data, extra_certificates=[_alice(vectors)])
    assert result.certificates == ()
    (signer,) = result.signers
    assert signer.valid, signer.reason
    assert signer.certificate == _alice(vectors)
    assert result.content == MESSAGE


def test_fig2_without_certificate(vectors: Path) -> None:
    data = (vectors / "fig2-signed-no-cert.der").read_bytes()
    (signer,) = cms.verify_signed(data).signers
    assert not signer.valid and not signer.weak
    assert signer.reason == "signer certificate not found"
    assert signer.certificate is None
    # The signing time is still reported (it is a signed attribute, even if unchecked).
    assert signer.signing_time == dt.datetime(2019, 1, 26, 6, 13, 54, tzinfo=dt.UTC)


def test_fig2_with_the_wrong_certificate(vectors: Path, pki: Any) -> None:
    data = (vectors / "fig2-signed-no-cert.der").read_bytes()
    (signer,) = cms.verify_signed(data, extra_certificates=[pki.ec.cert]).signers
    assert signer.reason == "signer certificate not found"


def test_fig3_structure(vectors: Path) -> None:
    data = (vectors / "fig3-authenveloped.der").read_bytes()
    assert cms.content_type_of(data) == "authenticated_enveloped_data"
    ci = cms.parse_content_info(data)
    assert ci["content_type"].native == "authenticated_enveloped_data"
    aed = ci["content"]
    assert aed["version"].native == "v0"
    eci = aed["auth_encrypted_content_info"]
    alg = eci["content_encryption_algorithm"]
    assert alg["algorithm"].dotted == "2.16.840.1.101.3.4.1.6"
    assert alg["parameters"]["aes_nonce"].native == bytes.fromhex("4d8757222eac5294117f0c12")
    assert alg["parameters"]["aes_icvlen"].native == 16
    assert len(eci["encrypted_content"].native) == 1248
    assert aed["mac"].native == bytes.fromhex("f6ffc6e1aef19cd23d985a921976352d")
    assert cms.content_type_of(ci) == "authenticated_enveloped_data"


def test_fig3_recipients(vectors: Path) -> None:
    data = (vectors / "fig3-authenveloped.der").read_bytes()
    (who,) = cms.describe_recipients(data)
    assert "O=example.com, CN=Alice" in who
    assert f"serial {ALICE_RSA_SERIAL:x}" in who
    assert "rsaEncryption" in who


def test_fig3_not_for_our_keys(vectors: Path, pki: Any) -> None:
    data = (vectors / "fig3-authenveloped.der").read_bytes()
    with pytest.raises(NoRecipientKeyError) as err:
        cms.decrypt(data, [pki.rsa.pair, pki.ec.pair])
    assert "O=example.com, CN=Alice" in str(err.value)
    assert err.value.recipients == cms.describe_recipients(data)  # type: ignore[attr-defined]


def _msrp_body(frame: bytes) -> bytes:
    """The bytes after the blank line up to the CRLF before the end-line."""
    head, _, rest = frame.partition(b"\r\n\r\n")
    tid = head.split(b"\r\n", 1)[0].split(b" ")[1]
    end = rest.rindex(b"\r\n-------" + tid)
    return rest[:end]


def test_fig3_msrp_frame(vectors: Path) -> None:
    body = _msrp_body((vectors / "fig3-chunk.msrp").read_bytes())
    assert body == (vectors / "fig3-authenveloped.der").read_bytes()


def test_fig4_chunks_reassemble_to_fig3(vectors: Path) -> None:
    one = _msrp_body((vectors / "fig4-chunk1.msrp").read_bytes())
    two = _msrp_body((vectors / "fig4-chunk2.msrp").read_bytes())
    assert (len(one), len(two)) == (960, 980)
    whole = one + two
    assert whole == (vectors / "fig3-authenveloped.der").read_bytes()
    assert cms.content_type_of(whole) == "authenticated_enveloped_data"
    # A single chunk is not a complete structure.
    with pytest.raises(MalformedError):
        cms.describe_recipients(one)
