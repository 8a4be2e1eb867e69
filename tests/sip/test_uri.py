"""SIP URI parsing, serialization and RFC 3261 section 19.1.4 comparison."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.sip.errors import SipError
from messenger.sip.uri import SipUri, SipUriError, parse_aor, split_name_addr, uri_equal

# -- parsing -------------------------------------------------------------------------------


def test_uri_parses_all_components() -> None:
    uri = SipUri.parse("sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=hi&x=y")
    assert uri.scheme == "sips"
    assert uri.user == "alice"
    assert uri.password == "secret"
    assert uri.host == "Example.COM"
    assert uri.port == 5061
    assert uri.params == (("transport", "tcp"), ("lr", None))
    assert uri.headers == (("subject", "hi"), ("x", "y"))


def test_uri_scheme_is_case_insensitive_and_stored_lowercase() -> None:
    assert SipUri.parse("SIP:bob@example.org").scheme == "sip"


def test_uri_without_user() -> None:
    uri = SipUri.parse("sip:example.com;lr")
    assert uri.user is None
    assert uri.host == "example.com"
    assert str(uri) == "sip:example.com;lr"


def test_uri_escapes_are_decoded() -> None:
    uri = SipUri.parse("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips:user@example.com"
    assert uri.host == "example.net"
    assert str(uri) == "sip:sips%3Auser%40example.com@example.net"


def test_uri_user_may_carry_semicolon_params() -> None:
    uri = SipUri.parse("sip:+1-972-555-2222;phone-context=name%40domain@example.com;user=phone")
    assert uri.user == "+1-972-555-2222;phone-context=name@domain"
    assert uri.host == "example.com"
    assert uri.params == (("user", "phone"),)


def test_uri_ipv6_reference_keeps_brackets() -> None:
    uri = SipUri.parse("sip:[2001:db8::10]:5070;maddr=[2001:db8::20]")
    assert uri.host == "[2001:db8::10]"
    assert uri.host_address == "2001:db8::10"
    assert uri.port == 5070
    assert uri.get_param("maddr") == "[2001:db8::20]"
    assert str(uri) == "sip:[2001:db8::10]:5070;maddr=[2001:db8::20]"


def test_uri_ipv4_host() -> None:
    assert SipUri.parse("sip:alice@192.0.2.4:5060").host == "192.0.2.4"


def test_uri_escaped_header_value_round_trips() -> None:
    text = "sip:user@example.com?Route=%3Csip:example.com%3E"
    uri = SipUri.parse(text)
    assert uri.headers == (("Route", "<sip:example.com>"),)
    assert SipUri.parse(str(uri)) == uri


def test_uri_surrounding_whitespace_is_ignored() -> None:
    assert SipUri.parse("  sip:a@b.example \r\n").host == "b.example"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "tel:+12125551212",
        "http://example.com/",
        "sip:@example.com",
        "sip:alice@",
        "sip:alice@example.com:",
        "sip:alice@example.com:99999",
        "sip:alice@example.com:50a",
        "sip:alice@exa mple.com",
        "sip:alice@example..com",
        "sip:alice@-example.com",
        "sip:alice@[::1",
        "sip:alice@[not-v6]",
        "sip:alice@256.1.1.1",
        "sip:ali%4ce@example.com%",
        "sip:ali%zzce@example.com",
        "sip:alice@example.com;=x",
        "sip:alice@example.com;transport=",
        "sip:alice@example.com;transport=tcp;TRANSPORT=udp",
        "sip:alice@example.com?subject",
        "sip:a@b@example.com",
        "sip:al<ice@example.com",
        "sip:alice@example.com;p=\u00e9",
        "sip:%ff@example.com",
    ],
)
def test_malformed_uri_raises_sip_uri_error(text: str) -> None:
    with pytest.raises(SipUriError):
        SipUri.parse(text)


def test_sip_uri_error_is_a_sip_error() -> None:
    assert issubclass(SipUriError, SipError)


def test_constructed_uri_serializes_with_escapes() -> None:
    uri = SipUri("sip", "alice smith", None, "example.com", params=(("x", "a b"),))
    assert str(uri) == "sip:alice%20smith@example.com;x=a%20b"
    assert SipUri.parse(str(uri)) == uri


def test_constructor_rejects_unknown_scheme() -> None:
    with pytest.raises(SipUriError):
        SipUri("tel", None, None, "example.com")


def test_default_port_depends_on_scheme() -> None:
    assert SipUri.parse("sip:a@example.com").default_port == 5060
    assert SipUri.parse("sips:a@example.com").default_port == 5061
    assert SipUri.parse("sips:a@example.com:7000").default_port == 7000


def test_param_lookup_is_case_insensitive() -> None:
    uri = SipUri.parse("sip:a@example.com;Transport=TCP;lr")
    assert uri.transport == "tcp"
    assert uri.has_param("LR")
    assert uri.get_param("lr") is None
    assert uri.get_param("missing", "d") == "d"


# -- address of record -------------------------------------------------------------------


def test_aor_drops_params_headers_password_and_lowercases_host() -> None:
    uri = SipUri.parse("sip:Alice:pw@Example.COM;transport=tcp?subject=x")
    assert uri.aor() == "sip:Alice@example.com"


def test_aor_keeps_scheme_and_explicit_port() -> None:
    assert SipUri.parse("sips:bob@example.org:5071").aor() == "sips:bob@example.org:5071"


def test_parse_aor_accepts_name_addr() -> None:
    assert parse_aor('"Alice" <sip:alice@Example.com;transport=tls>;tag=123') == (
        "sip:alice@example.com"
    )


def test_parse_aor_raises_on_malformed_input() -> None:
    with pytest.raises(SipUriError):
        parse_aor("<sip:alice@>")


# -- RFC 3261 section 19.1.4 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
        ("sip:alice@[2001:db8::1]", "sip:alice@[2001:DB8:0:0:0:0:0:1]"),
    ],
)
def test_rfc3261_equivalent_uris_match(a: str, b: str) -> None:
    assert uri_equal(a, b)
    assert uri_equal(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:alice@example.com", "sips:alice@example.com"),
        ("sip:alice@example.com", "sip:example.com"),
        ("sip:alice@example.com", "sip:alice:pw@example.com"),
        ("sip:alice@example.com", "sip:alice@example.com;user=phone"),
        ("sip:alice@example.com", "sip:alice@example.com;ttl=1"),
        ("sip:alice@example.com", "sip:alice@example.com;method=INVITE"),
        ("sip:alice@example.com", "sip:alice@example.com;maddr=192.0.2.1"),
        ("sip:alice@example.com?a=b", "sip:alice@example.com?a=B"),
    ],
)
def test_rfc3261_different_uris_do_not_match(a: str, b: str) -> None:
    assert not uri_equal(a, b)
    assert not uri_equal(b, a)


def test_uri_user_part_is_case_sensitive() -> None:
    assert not uri_equal("sip:Alice@example.com", "sip:alice@example.com")


def test_uri_host_is_case_insensitive() -> None:
    assert uri_equal("sip:alice@EXAMPLE.com", "sip:alice@example.COM")


def test_uri_password_is_case_sensitive() -> None:
    assert not uri_equal("sip:alice:PW@example.com", "sip:alice:pw@example.com")


def test_uri_matching_is_not_transitive_but_equality_is_exact() -> None:
    plain = SipUri.parse("sip:carol@chicago.com")
    on = SipUri.parse("sip:carol@chicago.com;security=on")
    off = SipUri.parse("sip:carol@chicago.com;security=off")
    assert plain.matches(on) and plain.matches(off)
    assert not on.matches(off)
    assert plain != on
    assert plain == SipUri.parse("sip:carol@chicago.com")
    assert hash(plain) == hash(SipUri.parse("sip:carol@chicago.com"))


def test_tag_after_angle_bracket_is_not_part_of_the_uri() -> None:
    assert uri_equal('"Alice" <sip:alice@example.com>;tag=123', "sip:alice@example.com")
    assert uri_equal("<sip:alice@example.com>;tag=1", "Alice <sip:alice@example.com>;tag=2")


def test_uri_equal_accepts_parsed_uris() -> None:
    assert uri_equal(SipUri.parse("sip:a@example.com"), "sip:a@EXAMPLE.com")


@pytest.mark.parametrize("bad", ["", "sip:", "tel:+1", "<sip:a@b", "garbage <", "sip:a@b c"])
def test_uri_equal_is_false_for_malformed_input(bad: str) -> None:
    assert uri_equal(bad, "sip:a@example.com") is False
    assert uri_equal("sip:a@example.com", bad) is False


# -- name-addr ---------------------------------------------------------------------------


def test_split_name_addr_quoted_display_name_with_escapes() -> None:
    display, uri, params = split_name_addr(r'"Bob \"the\" Builder" <sip:bob@example.org>;tag=9')
    assert display == 'Bob "the" Builder'
    assert uri == "sip:bob@example.org"
    assert params == ";tag=9"


def test_split_name_addr_token_display_name() -> None:
    assert split_name_addr("Bob  Smith <sip:bob@example.org>") == (
        "Bob Smith",
        "sip:bob@example.org",
        "",
    )


def test_split_addr_spec_params_belong_to_the_header() -> None:
    assert split_name_addr("sip:alice@example.com;tag=49597") == (
        None,
        "sip:alice@example.com",
        ";tag=49597",
    )


@pytest.mark.parametrize(
    "bad", ['"unterminated <sip:a@b>', "<sip:a@b", "<>", "<sip:a@b> junk", '"x" sip:a@b']
)
def test_split_name_addr_rejects_malformed(bad: str) -> None:
    with pytest.raises(SipUriError):
        split_name_addr(bad)


# -- properties --------------------------------------------------------------------------

_URI_ALPHABET = st.sampled_from(
    [*"sipSIP:@;?&=%[]<>.-_+!~*'()/$, \t\"abcdefxyz0123456789AF", "\u00e9", "\x00"]
)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_URI_ALPHABET, max_size=60))
def test_uri_parse_of_arbitrary_text_raises_only_sip_errors(text: str) -> None:
    for candidate in (text, "sip:" + text, "sip:a@" + text):
        try:
            uri = SipUri.parse(candidate)
        except SipError:
            continue
        # whatever parses must serialize to something that parses to the same URI
        assert SipUri.parse(str(uri)) == uri
        assert uri.matches(uri)


_USERS = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF), min_size=1)


@settings(max_examples=200, deadline=None)
@given(user=_USERS, value=_USERS)
def test_any_user_and_param_value_round_trip_through_escaping(user: str, value: str) -> None:
    uri = SipUri("sip", user, None, "example.com", params=(("p", value),))
    again = SipUri.parse(str(uri))
    assert again == uri
    assert again.matches(uri)
