"""Random MSRP identifiers (RFC 4975 sections 7.1 and 14.1)."""

from __future__ import annotations

import math
import random
import string

import pytest

from messenger.msrp.frame import MsrpRequest
from messenger.msrp.ids import new_message_id, new_session_id, new_transaction_id
from messenger.msrp.uri import MsrpUri

ALPHANUMERIC = set(string.ascii_letters + string.digits)


@pytest.mark.parametrize(
    ("factory", "min_bits"),
    [(new_transaction_id, 64), (new_message_id, 64), (new_session_id, 80)],
)
def test_ids_are_alphanumeric_with_enough_randomness(factory, min_bits: int) -> None:
    ids = {factory() for _ in range(500)}
    assert len(ids) == 500
    for value in ids:
        assert set(value) <= ALPHANUMERIC
        assert len(value) * math.log2(62) >= min_bits
    assert factory(random.Random(3)) == factory(random.Random(3))


def test_ids_fit_the_grammars_they_are_used_in() -> None:
    tid = new_transaction_id()
    MsrpRequest(
        "SEND",
        tid,
        (("To-Path", "msrp://a.example.com;tcp"), ("From-Path", "msrp://b.example.com;tcp")),
    )
    session = new_session_id()
    assert MsrpUri.parse(f"msrp://a.example.com:1/{session};tcp").session_id == session
