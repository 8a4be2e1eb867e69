"""Hostile input: arbitrary and mutated bytes into the CMS parsers raise only SmimeError
subclasses, never a bare exception; size limits; and the full validating parse."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.smime import cms
from messenger.smime.errors import MalformedError, SmimeError
from messenger.smime.policy import Policy

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CONTENT = b"Content-Type: text/plain\r\n\r\nfuzz me\r\n"
WHEN = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def samples(pki: Any) -> dict[str, bytes]:
    """Valid structures to mutate: signed (attached, with certificates), AuthEnvelopedData
    (ECDH and RSA recipients), EnvelopedData (CBC), certs-only, and a BER (indefinite
    length) SignedData built by hand from the DER one."""
    signed = cms.sign(CONTENT, key=pki.ec.key, certificate=pki.ec.cert, signing_time=WHEN)
    return {
        "signed": signed,
        "signed_rsa": cms.sign(
            CONTENT,
            key=pki.rsa.key,
            certificate=pki.rsa.cert,
            signing_time=WHEN,
            include_certificates=False,
        ),
        "auth_env": cms.encrypt(CONTENT, [pki.ec.cert, pki.rsa.cert, pki.x.cert]),
        "env_cbc": cms.encrypt(CONTENT, [pki.ec.cert, pki.rsa.cert], cipher="aes128-cbc"),
        "certs_only": cms.certs_only([pki.ec.cert]),
        "ber": _indefinite(signed),
    }


def _indefinite(der: bytes) -> bytes:
    """Re-encode the outer ContentInfo and [0] wrapper with indefinite lengths."""
    from messenger.smime import asn1

    _, s, e, _ = asn1.read(der, 0, len(der))
    (oid, content) = asn1.children(der, s, e)
    inner = der[content[1] : content[2]]
    return b"\x30\x80" + der[oid[4] : oid[3]] + b"\xa0\x80" + inner + b"\x00\x00\x00\x00"


def test_ber_wrapper_verifies(samples: dict[str, bytes]) -> None:
    result = cms.verify_signed(samples["ber"])
    assert result.signers[0].valid and result.content == CONTENT
    assert cms.content_type_of(samples["ber"]) == "signed_data"
    # asn1crypto's dump() re-encodes indefinite lengths; the CMS functions read the
    # exact bytes parse_content_info was given.
    assert cms.verify_signed(cms.parse_content_info(samples["ber"])).signers[0].valid


def _mutate(data: bytes, kind: int, at: int, value: bytes) -> bytes:
    at %= len(data)
    if kind == 0:  # flip one bit
        out = bytearray(data)
        out[at] ^= 1 << (value[0] % 8 if value else 0)
        return bytes(out)
    if kind == 1:  # truncate
        return data[:at]
    if kind == 2:  # insert bytes
        return data[:at] + value + data[at:]
    if kind == 3:  # delete a range
        return data[:at] + data[at + 1 + (value[0] if value else 0) :]
    out = bytearray(data)  # overwrite
    out[at : at + len(value)] = value
    return bytes(out[: len(data)])


mutations = st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), st.binary(max_size=8))


def _only_smime_errors(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except SmimeError:
        return None


@FUZZ
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes, pki: Any) -> None:
    _only_smime_errors(cms.parse_content_info, data)
    _only_smime_errors(cms.content_type_of, data)
    _only_smime_errors(cms.verify_signed, data)
    _only_smime_errors(cms.decrypt, data, [pki.ec.pair])
    _only_smime_errors(cms.describe_recipients, data)


@FUZZ
@given(name=st.sampled_from(["signed", "signed_rsa", "certs_only", "ber"]), m=mutations)
def test_mutated_signed_data(
    samples: dict[str, bytes], pki: Any, name: str, m: tuple[int, int, bytes]
) -> None:
    data = _mutate(samples[name], *m)
    _only_smime_errors(cms.parse_content_info, data)
    result = _only_smime_errors(cms.verify_signed, data, extra_certificates=[pki.rsa.cert])
    if result is not None:
        for signer in result.signers:
            # A mutation may hit an unsigned part, but a valid signature always means
            # the content is the one that was signed.
            if signer.valid:
                assert result.content == CONTENT


@FUZZ
@given(name=st.sampled_from(["auth_env", "env_cbc"]), m=mutations)
def test_mutated_enveloped_data(
    samples: dict[str, bytes], pki: Any, name: str, m: tuple[int, int, bytes]
) -> None:
    data = _mutate(samples[name], *m)
    _only_smime_errors(cms.parse_content_info, data)
    _only_smime_errors(cms.describe_recipients, data)
    for ident in (pki.ec, pki.rsa, pki.x):
        result = _only_smime_errors(cms.decrypt, data, [ident.pair])
        if result is not None and name == "auth_env":
            assert result.content == CONTENT  # GCM: altered content never decrypts


def test_max_input(samples: dict[str, bytes], pki: Any) -> None:
    tiny = Policy(max_input=100)
    for fn in (cms.parse_content_info,):
        with pytest.raises(MalformedError, match="limit"):
            fn(samples["signed"], tiny)
    with pytest.raises(MalformedError, match="limit"):
        cms.verify_signed(samples["signed"], policy=tiny)
    with pytest.raises(MalformedError, match="limit"):
        cms.decrypt(samples["auth_env"], [pki.ec.pair], policy=tiny)


def test_lying_lengths(samples: dict[str, bytes]) -> None:
    signed = samples["signed"]
    # Outer length claims 4 GiB.
    with pytest.raises(MalformedError):
        cms.verify_signed(b"\x30\x84\xff\xff\xff\xff" + signed[4:])
    # Trailing garbage after a complete ContentInfo.
    with pytest.raises(MalformedError):
        cms.verify_signed(signed + b"\x00")
    with pytest.raises(MalformedError):
        cms.parse_content_info(signed + b"\x00")


def test_parse_content_info_names(samples: dict[str, bytes]) -> None:
    ci = cms.parse_content_info(samples["auth_env"])
    assert cms.content_type_of(ci) == "authenticated_enveloped_data"
    kinds = [ri.name for ri in ci["content"]["recipient_infos"]]
    assert sorted(kinds) == ["kari", "kari", "ktri"]
    kari = next(ri.chosen for ri in ci["content"]["recipient_infos"] if ri.name == "kari")
    assert kari["key_encryption_algorithm"]["algorithm"].native == (
        "dh_single_pass_std_dh_sha256kdf_scheme"
    )
    assert kari["key_encryption_algorithm"]["parameters"]["algorithm"].native == "aes128_wrap"
    # The returned object still dumps to the exact input bytes.
    assert ci.dump() == samples["auth_env"]
    signed = cms.parse_content_info(samples["signed"])
    assert signed.dump() == samples["signed"]
    assert cms.content_type_of(samples["certs_only"]) == "signed_data"
    assert cms.content_type_of(cms.parse_content_info(samples["certs_only"])) == "signed_data"


def test_lazy_parse_errors_surface_in_parse_content_info(samples: dict[str, bytes]) -> None:
    """Break a deeply nested field (the GCM nonce's OCTET STRING tag): a lazy parser would
    only notice on access; parse_content_info must notice now."""
    data = samples["auth_env"]
    nonce_tlv = b"\x30\x11\x04\x0c"
    at = data.index(nonce_tlv) + 2
    broken = data[:at] + b"\x01" + data[at + 1 :]  # OCTET STRING -> BOOLEAN
    with pytest.raises(MalformedError):
        cms.parse_content_info(broken)
