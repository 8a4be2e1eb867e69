"""Large messages through protect() and unprotect(): each layer is built from pieces and
read through views, so a message is copied once per direction; the results are the same
bytes the one-piece functions give."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from messenger.pki.authority import create_authority
from messenger.pki.identity import create_identity
from messenger.pki.trust import TrustStore
from messenger.smime import cms
from messenger.smime.errors import MalformedError, TamperedError
from messenger.smime.mime import MAX_HEADER_BYTES, MimeEntity, header_length, split_entity
from messenger.smime.protect import protect, unprotect
from messenger.smime.report import Confidentiality

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ALICE = "sip:alice@example.test"
SIZE = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def people() -> tuple[Any, Any, Any]:
    ca = create_authority("Large CA", now=NOW - timedelta(days=1))
    alice = create_identity(ALICE, authority=ca, now=NOW - timedelta(days=1))
    bob = create_identity("sip:bob@example.test", authority=ca, now=NOW - timedelta(days=1))
    return ca, alice, bob


@pytest.fixture
def trust(people: tuple[Any, Any, Any]) -> TrustStore:
    store = TrustStore()
    store.add_anchor(people[0].certificate)
    return store


@pytest.fixture(scope="module")
def big() -> bytes:
    return os.urandom(SIZE)


def test_sign_parts_join_to_the_same_der_as_sign(pki: Any, signing_time: Any) -> None:
    # Ed25519 signatures are deterministic, so both DER encodings must be equal.
    a, b = b"Content-Type: text/plain\r\n\r\n", os.urandom(70_000)
    whole = cms.sign(a + b, key=pki.ed.key, certificate=pki.ed.cert, signing_time=signing_time)
    parts = cms.sign_parts(
        (a, memoryview(b)), key=pki.ed.key, certificate=pki.ed.cert, signing_time=signing_time
    )
    assert b"".join(parts) == whole
    assert any(isinstance(p, memoryview) for p in parts)  # the content is not copied


@pytest.mark.parametrize("cipher", ["aes128-gcm", "aes256-cbc"])
@pytest.mark.parametrize("size", [100, 200_000])
def test_encrypt_parts_decrypts_to_the_joined_pieces(pki: Any, cipher: str, size: int) -> None:
    pieces = [b"head\r\n\r\n", os.urandom(size), b"", memoryview(os.urandom(33))]
    recipient = pki.ec2 if cipher.endswith("gcm") else pki.rsa
    der = cms.encrypt_parts(pieces, [recipient.cert], cipher=cipher)
    assert cms.decrypt(der, [recipient.pair]).content == b"".join(pieces)


def test_split_head_gives_header_and_body_apart(pki: Any) -> None:
    head = b"Content-Type: application/octet-stream\r\n\r\n"
    body = os.urandom(300_000)
    der = cms.encrypt(head + body, [pki.ec2.cert])
    result = cms.decrypt(der, [pki.ec2.pair], split_head=header_length)
    assert result.head == head
    assert result.content == body
    # Without a header section nothing is split off.
    der = cms.encrypt(body.replace(b"\n", b"-"), [pki.ec2.cert])
    result = cms.decrypt(der, [pki.ec2.pair], split_head=header_length)
    assert result.head == b""
    assert result.content == body.replace(b"\n", b"-")


def test_split_head_still_checks_the_tag(pki: Any) -> None:
    der = bytearray(cms.encrypt(b"A: b\r\n\r\n" + bytes(300_000), [pki.ec2.cert]))
    der[-40] ^= 1  # inside the ciphertext, near its end
    with pytest.raises(TamperedError):
        cms.decrypt(bytes(der), [pki.ec2.pair], split_head=header_length)


def test_split_entity_reads_views_and_refuses_what_parse_refuses() -> None:
    data = b"Content-Type: text/plain\r\nX-A: 1\r\n\r\n" + b"x" * 10
    headers, body = split_entity(memoryview(data))
    assert headers == (("Content-Type", "text/plain"), ("X-A", "1"))
    assert isinstance(body, memoryview) and bytes(body) == b"x" * 10
    assert MimeEntity.parse(memoryview(data)) == MimeEntity.parse(data)
    with pytest.raises(MalformedError, match="no blank line"):
        split_entity(b"Content-Type: text/plain\r\n")
    with pytest.raises(MalformedError, match="larger than"):
        split_entity(b"X: " + b"a" * (MAX_HEADER_BYTES + 10) + b"\r\n\r\nbody")
    assert header_length(b"X: " + b"a" * (MAX_HEADER_BYTES + 10) + b"\r\n\r\n") == -1


def test_large_protected_message_round_trips_verified(people: Any, trust: Any, big: bytes) -> None:
    _, alice, bob = people
    entity = protect(
        big,
        content_type="application/octet-stream",
        signer=alice,
        recipients=[bob.encryption_certificate],
        signing_time=NOW,
    )
    result = unprotect(entity, identity=bob, trust=trust, sender=ALICE, at=NOW)
    assert result.report.authenticity.is_green, result.report.reason
    assert result.report.confidentiality is Confidentiality.ENCRYPTED
    assert type(result.entity.body) is bytes and result.content == big


def test_large_signed_only_and_encrypted_only_round_trip(
    people: Any, trust: Any, big: bytes
) -> None:
    _, alice, bob = people
    signed = protect(big, content_type="application/octet-stream", signer=alice, signing_time=NOW)
    result = unprotect(signed, identity=bob, trust=trust, sender=ALICE, at=NOW)
    assert result.report.authenticity.is_green and result.content == big
    sealed = protect(
        big,
        content_type="application/octet-stream",
        recipients=[bob.encryption_certificate],
        signing_time=NOW,
    )
    result = unprotect(sealed, identity=bob, trust=trust, sender=ALICE, at=NOW)
    assert result.report.confidentiality is Confidentiality.ENCRYPTED and result.content == big


def test_large_opaque_content_with_a_blank_line_is_kept_whole(people: Any, trust: Any) -> None:
    # Decrypted content that starts like no MIME header section but holds a blank line.
    _, _, bob = people
    raw = b"\x00\x01 not a header line\n\n" + os.urandom(200_000)
    der = cms.encrypt(raw, [bob.encryption_certificate])
    entity = MimeEntity.build("application/pkcs7-mime; smime-type=authEnveloped-data", der)
    result = unprotect(entity, identity=bob, trust=trust, sender=ALICE, at=NOW)
    assert result.content_type == "application/octet-stream"
    assert result.content == raw


def test_large_tampered_message_is_tampered(people: Any, trust: Any) -> None:
    _, alice, bob = people
    entity = protect(
        bytes(300_000), signer=alice, recipients=[bob.encryption_certificate], signing_time=NOW
    )
    body = bytearray(entity.body)
    body[-100] ^= 1
    result = unprotect(
        MimeEntity(entity.headers, bytes(body)), identity=bob, trust=trust, sender=ALICE, at=NOW
    )
    assert result.entity is None
    assert result.report.confidentiality is Confidentiality.TAMPERED


def test_memory_protect_once_unprotect_twice(
    memory_peak: Any, people: Any, trust: Any, big: bytes
) -> None:
    """protect holds the output only; unprotect, handed the message, holds at most the
    decrypted structure and the content copied out of it (the ciphertext is let go)."""
    _, alice, bob = people

    def sealed() -> MimeEntity:
        return protect(
            big,
            content_type="application/octet-stream",
            signer=alice,
            recipients=[bob.encryption_certificate],
            signing_time=NOW,
        )

    box, p_protect = memory_peak(lambda: [sealed()], SIZE)
    result, p_unprotect = memory_peak(
        lambda: unprotect(box.pop(), identity=bob, trust=trust, sender=ALICE, at=NOW),
        SIZE,
    )
    assert result.content == big
    assert p_protect < 1.2, f"protect peaked at {p_protect:.2f}x the message"
    assert p_unprotect < 2.2, f"unprotect peaked at {p_unprotect:.2f}x the message"


def test_protect_reads_bytes_like_content_where_it_lies(people: Any, trust: Any) -> None:
    _, alice, bob = people
    data = bytearray(os.urandom(100_000))
    for content in (data, memoryview(data)):
        entity = protect(
            content,
            content_type="application/octet-stream",
            signer=alice,
            recipients=[bob.encryption_certificate],
            signing_time=NOW,
        )
        result = unprotect(entity, identity=bob, trust=trust, sender=ALICE, at=NOW)
        assert result.report.authenticity.is_green and result.content == bytes(data)
    text = protect(memoryview(b"hi\nthere"), signer=alice, signing_time=NOW)
    result = unprotect(text, identity=bob, trust=trust, sender=ALICE, at=NOW)
    assert result.content == b"hi\r\nthere"
