"""Large content: 10 MB through sign, encrypt, decrypt and verify without extra copies
(peak traced memory per operation about one message size: the output)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from messenger.smime import cms
from messenger.smime.errors import TamperedError

SIZE = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def big() -> bytes:
    return os.urandom(SIZE)


def test_ten_megabytes_gcm(memory_peak: Any, pki: Any, big: bytes, signing_time: Any) -> None:
    signed, p_sign = memory_peak(
        lambda: cms.sign(big, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time),
        SIZE,
    )
    env, p_enc = memory_peak(lambda: cms.encrypt(signed, [pki.ec2.cert]), SIZE)
    opened, p_dec = memory_peak(lambda: cms.decrypt(env, [pki.ec2.pair]), SIZE)
    verified, p_ver = memory_peak(lambda: cms.verify_signed(opened.content), SIZE)
    assert verified.signers[0].valid
    assert verified.content == big
    for name, peak in (("sign", p_sign), ("encrypt", p_enc), ("decrypt", p_dec), ("verify", p_ver)):
        assert peak < 1.3, f"{name} peaked at {peak:.2f}x the message size"


def test_ten_megabytes_cbc(memory_peak: Any, pki: Any, big: bytes) -> None:
    env, p_enc = memory_peak(lambda: cms.encrypt(big, [pki.rsa.cert], cipher="aes256-cbc"), SIZE)
    opened, p_dec = memory_peak(lambda: cms.decrypt(env, [pki.rsa.pair]), SIZE)
    assert opened.content == big
    assert p_enc < 1.3
    assert p_dec < 2.3  # CBC strips the padding with one more copy (legacy path)


def test_ten_megabytes_detached(memory_peak: Any, pki: Any, big: bytes, signing_time: Any) -> None:
    sig, p_sign = memory_peak(
        lambda: cms.sign(
            big, key=pki.rsa.key, certificate=pki.rsa.cert, signing_time=signing_time, detached=True
        ),
        SIZE,
    )
    assert len(sig) < 4096 and p_sign < 0.1
    result, p_ver = memory_peak(lambda: cms.verify_signed(sig, detached_content=big), SIZE)
    assert result.signers[0].valid and p_ver < 0.1


def test_ten_megabytes_tampered(pki: Any, big: bytes) -> None:
    env = bytearray(cms.encrypt(big, [pki.ec.cert]))
    env[len(env) // 2] ^= 1
    with pytest.raises(TamperedError):
        cms.decrypt(bytes(env), [pki.ec.pair])
