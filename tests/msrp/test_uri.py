"""MSRP URIs (RFC 4975 section 9 grammar, section 6.1 comparison)."""

from __future__ import annotations

import pytest

from messenger.msrp.errors import MsrpParseError
from messenger.msrp.uri import MsrpUri, parse_path


@pytest.mark.parametrize(
    "text",
    [
        "msrp://bobpc.example.org:8888/9di4eae923wzd;tcp",
        "msrps://alice@atlanta.example.com:7654/jshA7weztas;tcp",
        "msrp://[2001:db8::1]:2855/s3ss10n+=/x;tcp;extra=1;flag",
        "MSRP://Relay.Example.com;tcp",
        "msrp://192.0.2.1/abc;ws",
    ],
)
def test_parse_and_serialize_exactly(text: str) -> None:
    assert str(MsrpUri.parse(text)) == text


def test_fields() -> None:
    uri = MsrpUri.parse("msrps://alice@atlanta.example.com:7654/jshA7weztas;tcp;x=y")
    assert uri == MsrpUri(
        "msrps", "atlanta.example.com", 7654, "jshA7weztas", "tcp", "alice", (("x", "y"),)
    )
    assert uri.userinfo == "alice" and uri.params == (("x", "y"),)
    assert uri.secure and uri.effective_port == 7654
    relay = MsrpUri.parse("msrp://relay.example.com;tcp")
    assert relay.session_id is None and relay.port is None and relay.effective_port == 2855


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("MSRP://Bob.Example.ORG:8888/abc;TCP", "msrp://bob.example.org:8888/abc;tcp"),
        ("msrp://u@bob.example.org:8888/abc;tcp", "msrp://bob.example.org:8888/abc;tcp;x=1"),
        ("msrp://b%6Fb.example.org:1/abc;tcp", "msrp://bob.example.org:1/abc;tcp"),
        ("msrp://[2001:DB8:0::1]:1/abc;tcp", "msrp://[2001:db8::1]:1/abc;tcp"),
    ],
)
def test_equal_uris(a: str, b: str) -> None:
    assert MsrpUri.parse(a) == MsrpUri.parse(b)
    assert hash(MsrpUri.parse(a)) == hash(MsrpUri.parse(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("msrp://h.example.com:1/ABC;tcp", "msrp://h.example.com:1/abc;tcp"),  # session-id
        ("msrp://h.example.com:2855/abc;tcp", "msrp://h.example.com/abc;tcp"),  # explicit port
        ("msrps://h.example.com:1/abc;tcp", "msrp://h.example.com:1/abc;tcp"),
        ("msrp://h.example.com:1/abc;tcp", "msrp://h.example.com:1/abc;sctp"),
        ("msrp://h.example.com:1/abc;tcp", "msrp://h.example.com:1;tcp"),
        ("msrp://h.example.com:1/abc;tcp", "msrp://g.example.com:1/abc;tcp"),
    ],
)
def test_different_uris(a: str, b: str) -> None:
    assert MsrpUri.parse(a) != MsrpUri.parse(b)


@pytest.mark.parametrize(
    "text",
    [
        "sip:bob@example.org",
        "msrp:/bob.example.org/abc;tcp",
        "msrp://bob.example.org/abc",  # no transport
        "msrp://bob.example.org/abc;",
        "msrp://bob.example.org:/abc;tcp",
        "msrp://bob.example.org:65536/abc;tcp",
        "msrp://bob.example.org:8a/abc;tcp",
        "msrp://bob.example.org/;tcp",
        "msrp://bob.example.org/a b;tcp",
        "msrp://bob.example.org/a?b;tcp",
        "msrp://[2001:db8::zz]/abc;tcp",
        "msrp://[2001:db8::1/abc;tcp",
        "msrp:///abc;tcp",
        "msrp://bob@@example.org/abc;tcp",
        "msrp://b\u00f6b.example.org/abc;tcp",
        "msrp://bob.example.org/abc;tcp;=x",
    ],
)
def test_malformed_uris_raise_400(text: str) -> None:
    with pytest.raises(MsrpParseError) as caught:
        MsrpUri.parse(text)
    assert caught.value.status_code == 400


def test_direct_construction_is_checked_against_the_grammar() -> None:
    with pytest.raises(MsrpParseError):
        MsrpUri("msrp", "bad host", None, "abc")
    with pytest.raises(MsrpParseError):
        MsrpUri("msrp", "h.example.com", None, "abc;tcp")


def test_parse_path() -> None:
    hops = parse_path("msrp://r.example.com:1/a;tcp msrp://b.example.org:2/b;tcp")
    assert [h.port for h in hops] == [1, 2]
    for bad in ["", "msrp://r.example.com:1/a;tcp  msrp://b.example.org:2/b;tcp", " x"]:
        with pytest.raises(MsrpParseError):
            parse_path(bad)
