"""Large content: 10 MB through sign, encrypt, decrypt and verify without extra copies
(peak traced memory per operation about one message size: the output)."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from messenger.smime import cms
from messenger.smime.errors import TamperedError

SIZE = 10 * 1024 * 1024


def _peak(fn: Callable[[], Any]) -> tuple[Any, float]:
    """fn's result and its peak of newly traced memory, in message sizes."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak / SIZE


@pytest.fixture(scope="module")
def big() -> bytes:
    return os.urandom(SIZE)


def test_ten_megabytes_gcm(pki: Any, big: bytes, signing_time: Any) -> None:
    signed, p_sign = _peak(
        lambda: cms.sign(big, key=pki.ec.key, certificate=pki.ec.cert, signing_time=signing_time)
    )
    env, p_enc = _peak(lambda: cms.encrypt(signed, [pki.ec2.cert]))
    opened, p_dec = _peak(lambda: cms.decrypt(env, [pki.ec2.pair]))
    verified, p_ver = _peak(lambda: cms.verify_signed(opened.content))
    assert verified.signers[0].valid
    assert verified.content == big
    for name, peak in (("sign", p_sign), ("encrypt", p_enc), ("decrypt", p_dec), ("verify", p_ver)):
        assert peak < 1.3, f"{name} peaked at {peak:.2f}x the message size"


def test_ten_megabytes_cbc(pki: Any, big: bytes) -> None:
    env, p_enc = _peak(lambda: cms.encrypt(big, [pki.rsa.cert], cipher="aes256-cbc"))
    opened, p_dec = _peak(lambda: cms.decrypt(env, [pki.rsa.pair]))
    assert opened.content == big
    assert p_enc < 1.3
    assert p_dec < 2.3  # CBC strips the padding with one more copy (legacy path)


def test_ten_megabytes_detached(pki: Any, big: bytes, signing_time: Any) -> None:
    sig, p_sign = _peak(
        lambda: cms.sign(
            big, key=pki.rsa.key, certificate=pki.rsa.cert, signing_time=signing_time, detached=True
        )
    )
    assert len(sig) < 4096 and p_sign < 0.1
    result, p_ver = _peak(lambda: cms.verify_signed(sig, detached_content=big))
    assert result.signers[0].valid and p_ver < 0.1


def test_ten_megabytes_tampered(pki: Any, big: bytes) -> None:
    env = bytearray(cms.encrypt(big, [pki.ec.cert]))
    env[len(env) // 2] ^= 1
    with pytest.raises(TamperedError):
        cms.decrypt(bytes(env), [pki.ec.pair])
