"""The header index of `Headers`: lookups agree with a walk over the fields after any
sequence of changes, and `is_token` agrees with RFC 3261's token characters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.sip import headers as module
from messenger.sip.errors import SipParseError, SipUriError
from messenger.sip.headers import COMPACT_FORMS, Headers, Via, _key, is_token
from messenger.sip.uri import TOKEN_CHARS, check_uri

NAMES = ["Via", "v", "VIA", "Call-ID", "i", "call-id", "To", "t", "X-Custom", "x-custom"]


def _walk_all(headers: Headers, name: str) -> list[str]:
    return [v for n, v in headers if _key(n) == _key(name)]


operation = st.tuples(
    st.sampled_from(["add", "insert", "prepend", "set", "remove"]),
    st.sampled_from(NAMES),
    st.text(alphabet="abc ;=", max_size=6),
    st.integers(min_value=0, max_value=5),
)


@given(st.lists(operation, max_size=25))
def test_lookups_agree_with_a_walk_after_any_changes(ops) -> None:
    headers = Headers()
    for op, name, value, index in ops:
        if op == "add":
            headers.add(name, value)
        elif op == "insert":
            headers.insert(index, name, value)
        elif op == "prepend":
            headers.prepend(name, value)
        elif op == "set":
            headers.set(name, value)
        else:
            headers.remove(name)
        for probe in NAMES:
            expected = _walk_all(headers, probe)
            assert headers.get_all(probe) == expected
            assert headers.count(probe) == len(expected)
            assert headers.get(probe) == (expected[0] if expected else None)
            assert (probe in headers) == bool(expected)


def test_get_all_returns_a_list_the_caller_may_change() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a"), ("Via", "SIP/2.0/UDP b")])
    values = headers.get_all("v")
    values.append("SIP/2.0/UDP c")
    assert headers.get_all("Via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]


def test_copy_is_independent() -> None:
    headers = Headers([("To", "<sip:a@b>")])
    assert headers.get("t") == "<sip:a@b>"
    clone = headers.copy()
    clone.set("To", "<sip:c@d>")
    assert headers.get("To") == "<sip:a@b>" and clone.get("t") == "<sip:c@d>"


def test_compact_forms_share_the_key_of_their_long_form() -> None:
    for compact, long in COMPACT_FORMS.items():
        assert _key(compact) == _key(compact.upper()) == _key(long) == long.lower()


def test_is_token_agrees_with_the_token_characters() -> None:
    for code in range(0x180):
        ch = chr(code)
        assert is_token(ch) == (ch in TOKEN_CHARS)
        assert is_token("ab" + ch) == (ch in TOKEN_CHARS)
    assert not is_token("")
    assert not is_token("abc\n")


def test_parsed_via_values_are_shared_and_bounded() -> None:
    text = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKshared;rport"
    assert Via.parse(text) is Via.parse(text)
    assert Via.parse(text) == Via._parse(text)
    for n in range(module._PARSED_LIMIT * 2):
        Via.parse(f"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{n}")
    assert module._parse_via_remembered.cache_info().currsize <= module._PARSED_LIMIT


def test_malformed_values_fail_every_time() -> None:
    for _ in range(2):
        with pytest.raises(SipParseError):
            Via.parse("SIP/2.0/UDP bad host")
        with pytest.raises(SipUriError):
            check_uri("sip:bob@bad host")
        check_uri("sip:bob@example.org")
