"""SDP (RFC 4566) and the MSRP offer/answer (RFC 4975 section 8, RFC 6135, RFC 5547)."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.sip.errors import SipError
from messenger.sip.sdp import (
    DEFAULT_ACCEPT_TYPES,
    SMIME_TYPES,
    Attribute,
    Connection,
    FileSelector,
    Media,
    MsrpMedia,
    SdpError,
    SdpNegotiationError,
    SdpParseError,
    SessionDescription,
    make_answer,
    make_offer,
    msrp_media,
    negotiate,
)

ALICE_PATH = ["msrp://192.0.2.1:40000/iau39soe2843z;tcp"]
BOB_PATH = ["msrp://192.0.2.2:40001/9di4eae923wzd;tcp"]

# RFC 4975 section 7.1 style offer through an RFC 4976 relay, with every line type.
RFC_STYLE = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844527 IN IP4 alice.example.com\r\n"
    b"s=-\r\n"
    b"i=a chat\r\n"
    b"u=http://example.com/chat\r\n"
    b"e=alice@example.com\r\n"
    b"p=+1 555 0100\r\n"
    b"c=IN IP4 relay.example.com\r\n"
    b"b=AS:64\r\n"
    b"t=0 0\r\n"
    b"r=7d 1h 0 25h\r\n"
    b"z=2882844526 -1h\r\n"
    b"k=prompt\r\n"
    b"a=tool:messenger\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"m=message 2855 TCP/TLS/MSRP *\r\n"
    b"i=the message stream\r\n"
    b"c=IN IP4 relay.example.com\r\n"
    b"b=AS:100\r\n"
    b"a=accept-types:message/cpim application/pkcs7-mime application/pkcs7-signature"
    b" multipart/signed\r\n"
    b"a=accept-wrapped-types:text/plain application/*\r\n"
    b"a=max-size:1048576\r\n"
    b"a=path:msrps://relay.example.com:2855/kjfjan;tcp"
    b" msrps://alice.example.com:9892/98cjs;tcp\r\n"
    b"a=setup:actpass\r\n"
)


def offer() -> SessionDescription:
    return make_offer(path=ALICE_PATH, rng=random.Random(1))


# -- the RFC 4566 grammar ------------------------------------------------------------------


def test_rfc_style_sdp_round_trips_byte_for_byte() -> None:
    sdp = SessionDescription.parse(RFC_STYLE)
    assert sdp.to_bytes() == RFC_STYLE
    assert sdp.origin.username == "alice" and sdp.origin.session_version == 2890844527
    assert sdp.connection == Connection("relay.example.com")
    assert sdp.timing[0].repeats == ("7d 1h 0 25h",)
    assert ("b", "AS:64") in sdp.extra
    assert sdp.attribute("tool") == "messenger"
    audio, message = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio",
        49170,
        "RTP/AVP",
        ("0",),
    )
    assert message.proto == "TCP/TLS/MSRP" and message.formats == ("*",)
    assert message.attribute("max-size") == "1048576"
    assert msrp_media(sdp) == (1, message)
    remote = MsrpMedia.from_media(message)
    assert remote.tls and remote.path[0].startswith("msrps://relay.example.com")
    assert remote.accepts_smime and remote.max_size == 1048576
    assert remote.setup == "actpass"


def test_lf_line_ends_and_a_missing_final_crlf_are_read() -> None:
    text = RFC_STYLE.replace(b"\r\n", b"\n").rstrip(b"\n")
    assert SessionDescription.parse(text) == SessionDescription.parse(RFC_STYLE)
    assert SessionDescription.parse(RFC_STYLE.decode()) == SessionDescription.parse(RFC_STYLE)


MINIMAL = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "empty"),
        (b"v=1\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n", "v=0"),
        (b"o=- 1 1 IN IP4 h\r\nv=0\r\ns=-\r\nt=0 0\r\n", "v=0"),
        (b"v=0\r\ns=-\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\n", "begin"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n", "t="),
        (MINIMAL + b"x=unknown\r\n", "unknown"),
        (MINIMAL + b"s=again\r\n", "out of order"),
        (MINIMAL.replace(b"s=-", b"s="), "empty"),
        (MINIMAL.replace(b"1 1 IN", b"1 IN"), "6 fields"),
        (MINIMAL.replace(b"1 1 IN", b"x 1 IN"), "number"),
        (MINIMAL.replace(b"t=0 0", b"t=0"), "start and stop"),
        (MINIMAL + b"c=IN IP4 h\r\n", "out of order"),
        (MINIMAL + b"m=message 70000 TCP/MSRP *\r\n", "above 65535"),
        (MINIMAL + b"m=message 1 TCP/MSRP\r\n", "formats"),
        (MINIMAL + b"m=message x TCP/MSRP *\r\n", "number"),
        (MINIMAL + b"m=message 1 TCP//MSRP *\r\n", "protocol"),
        (MINIMAL + b"m=message 1 TCP/MSRP *\r\na=x\r\nc=IN IP4 h\r\n", "out of order"),
        (MINIMAL + b"m=message 1 TCP/MSRP *\r\ns=x\r\n", "not allowed"),
        (MINIMAL + b"m=message 1 TCP/MSRP *\r\ni=a\r\ni=b\r\n", "second"),
        (MINIMAL + b"a=bad name:1\r\n", "token"),
        (MINIMAL + b"b=AS\r\n", "b="),
        (MINIMAL + b"a=x\x00y\r\n", "control"),
        (MINIMAL + b"no equals\r\n", "type"),
        (MINIMAL + b"\r\na=x\r\n", "type"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nr=1 2\r\nt=0 0\r\n", "r= without t="),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=message 1 TCP/MSRP *\r\n", "before any t="),
        (MINIMAL + b"a=\xff\r\n", "UTF-8"),
        (MINIMAL.replace(b"IN IP4 h", b"IN IP4"), "6 fields"),
        (MINIMAL + b"c=IN IP4\r\n", "out of order"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4\r\nt=0 0\r\n", "3 fields"),
        (MINIMAL + b"a=" + b"x" * (64 * 1024) + b"\r\n", "exceeds"),
    ],
)
def test_malformed_sdp_raises_the_sdp_parse_error(data: bytes, why: str) -> None:
    with pytest.raises(SdpParseError, match=why):
        SessionDescription.parse(data)


def test_non_bytes_input_is_refused_with_the_package_error() -> None:
    with pytest.raises(SdpParseError):
        SessionDescription.parse(12)  # type: ignore[arg-type]
    with pytest.raises(SdpParseError):
        SessionDescription.parse("v=0\ud800")


def test_media_and_attribute_helpers() -> None:
    media = Media(
        "message",
        9,
        "TCP/MSRP",
        ("*",),
        attributes=(Attribute("sendonly"), Attribute("x", "1"), Attribute("x", "2")),
    )
    assert media.has_attribute("SENDONLY") and media.attribute("sendonly") is None
    assert media.attributes_named("x") == ["1", "2"]
    assert media.connection is None
    assert str(Attribute("path", "a b")) == "path:a b"
    assert Connection.for_host("[2001:db8::1]") == Connection("2001:db8::1", "IN", "IP6")


# -- offers and answers ----------------------------------------------------------------------


def test_offer_lists_the_smime_types_and_says_actpass() -> None:
    sdp = offer()
    text = sdp.to_bytes().decode()
    assert "m=message 40000 TCP/MSRP *\r\n" in text
    assert "c=IN IP4 192.0.2.1\r\n" in text
    assert "a=setup:actpass\r\n" in text
    assert f"a=path:{ALICE_PATH[0]}\r\n" in text
    accept = MsrpMedia.from_media(sdp.media[0]).accept_types
    assert accept == DEFAULT_ACCEPT_TYPES
    assert all(t in accept for t in SMIME_TYPES)
    assert SessionDescription.parse(sdp.to_bytes()) == sdp
    assert make_offer(path=ALICE_PATH, rng=random.Random(1)) == sdp  # rng drives the o= id


def test_offer_adds_the_smime_types_when_the_caller_forgot_them() -> None:
    sdp = make_offer(path=ALICE_PATH, accept_types=["text/plain"], session_id=5)
    media = MsrpMedia.from_media(sdp.media[0])
    assert media.accept_types == ("text/plain", *SMIME_TYPES)
    assert sdp.origin.session_id == 5


def test_require_smime_lists_only_smime_and_wraps_the_rest() -> None:
    sdp = make_offer(path=ALICE_PATH, require_smime=True, session_id=1)
    media = MsrpMedia.from_media(sdp.media[0])
    assert media.accept_types == SMIME_TYPES
    assert "message/cpim" in media.accept_wrapped_types
    assert "text/plain" in media.accept_wrapped_types
    assert not set(SMIME_TYPES) & set(media.accept_wrapped_types)


def test_tls_offer_uses_msrps_and_the_tls_protocol_and_ipv6() -> None:
    path = ["msrps://[2001:db8::1]:40000/abc;tcp"]
    sdp = make_offer(path=path, tls=True, max_size=4096, session_id=1)
    text = sdp.to_bytes().decode()
    assert "m=message 40000 TCP/TLS/MSRP *\r\n" in text
    assert "c=IN IP6 2001:db8::1\r\n" in text
    assert "a=max-size:4096\r\n" in text
    with pytest.raises(ValueError, match="does not fit"):
        make_offer(path=ALICE_PATH, tls=True)
    with pytest.raises(ValueError, match="malformed"):
        make_offer(path=["http://x/y;tcp"])
    with pytest.raises(ValueError, match="direction"):
        make_offer(path=ALICE_PATH, direction="sideways")


def test_answer_to_actpass_is_active_by_default_and_the_offerer_is_passive() -> None:
    answer, bob = make_answer(offer(), path=BOB_PATH, session_id=2)
    assert bob.active and not bob.offerer
    assert bob.remote_path == tuple(ALICE_PATH) and bob.local_path == tuple(BOB_PATH)
    text = answer.to_bytes().decode()
    assert "a=setup:active\r\n" in text
    assert all(t in text for t in SMIME_TYPES)
    alice = negotiate(offer(), SessionDescription.parse(answer.to_bytes()))
    assert not alice.active and alice.offerer
    assert alice.remote_path == tuple(BOB_PATH)
    assert alice.remote_accepts_smime and alice.remote_max_size is None
    assert alice.direction == "sendrecv" and not alice.tls


@pytest.mark.parametrize(
    ("offered_setup", "preference", "answered", "answerer_active"),
    [
        ("actpass", "passive", "passive", False),
        ("actpass", "active", "active", True),
        ("active", "active", "passive", False),
        ("passive", "passive", "active", True),
        (None, "passive", "active", True),  # RFC 4975 peers: the answerer connects
    ],
)
def test_setup_negotiation(
    offered_setup: str | None, preference: str, answered: str, answerer_active: bool
) -> None:
    sdp = offer()
    media = sdp.media[0]
    attributes = tuple(a for a in media.attributes if a.name != "setup")
    if offered_setup is not None:
        attributes += (Attribute("setup", offered_setup),)
    sdp = SessionDescription(
        sdp.origin, media=(Media("message", 40000, "TCP/MSRP", ("*",), attributes=attributes),)
    )
    answer, bob = make_answer(sdp, path=BOB_PATH, setup=preference)
    assert MsrpMedia.from_media(answer.media[0]).setup == answered
    assert bob.active is answerer_active
    alice = negotiate(sdp, answer)
    assert alice.active is not answerer_active


def test_answer_refuses_other_streams_with_port_zero() -> None:
    sdp = SessionDescription.parse(RFC_STYLE)
    tls_path = ["msrps://192.0.2.2:40001/9di4eae923wzd;tcp"]
    answer, bob = make_answer(sdp, path=lambda tls: tls_path if tls else BOB_PATH)
    assert [m.port for m in answer.media] == [0, 40001]
    assert answer.media[0].proto == "RTP/AVP" and answer.media[1].proto == "TCP/TLS/MSRP"
    assert bob.tls and bob.remote_max_size == 1048576
    assert bob.remote_path[-1] == "msrps://alice.example.com:9892/98cjs;tcp"
    alice = negotiate(sdp, SessionDescription.parse(answer.to_bytes()))
    assert alice.tls and not alice.active


def _with_media(attributes: dict[str, str | None], proto: str = "TCP/MSRP") -> SessionDescription:
    base = offer()
    media = Media(
        "message",
        40000,
        proto,
        ("*",),
        attributes=tuple(Attribute(k, v) for k, v in attributes.items()),
    )
    return SessionDescription(base.origin, media=(media,))


GOOD = {"accept-types": "message/cpim text/plain", "path": ALICE_PATH[0], "setup": "actpass"}


@pytest.mark.parametrize(
    ("sdp", "kwargs", "why"),
    [
        (SessionDescription.parse(MINIMAL), {}, "no MSRP message stream"),
        (_with_media({**GOOD, "path": None}), {}, "no a=path"),  # type: ignore[dict-item]
        (_with_media({k: v for k, v in GOOD.items() if k != "path"}), {}, "no a=path"),
        (_with_media({k: v for k, v in GOOD.items() if k != "accept-types"}), {}, "accept-types"),
        (_with_media({**GOOD, "accept-types": "text"}), {}, "malformed media type"),
        (_with_media({**GOOD, "path": "msrp://h/x"}), {}, "malformed MSRP URI"),
        (_with_media({**GOOD, "path": "msrp://h:99999/x;tcp"}), {}, "above 65535"),
        (_with_media(GOOD, "TCP/TLS/MSRP"), {}, "does not fit"),
        (_with_media({**GOOD, "setup": "holdconn"}), {}, "holdconn"),
        (_with_media({**GOOD, "setup": "sometimes"}), {}, "unknown a=setup"),
        (_with_media({**GOOD, "max-size": "big"}), {}, "max-size"),
        (_with_media(GOOD), {"allow_tcp": False}, "TLS is required"),
        (
            _with_media({**GOOD, "path": "msrps://h:1/x;tcp"}, "TCP/TLS/MSRP"),
            {"allow_tls": False},
            "TLS, which is turned off",
        ),
        (_with_media(GOOD), {"require_peer_smime": True}, "does not accept S/MIME"),
        (
            _with_media({**GOOD, "sendonly": None, "file-selector": 'name:"a.txt" size:3'}),
            {"accept_files": False},
            "file transfers",
        ),
        (
            _with_media({**GOOD, "file-selector": "name:a.txt"}),
            {},
            "quoted string",
        ),
    ],
)
def test_unacceptable_offers_raise_488(
    sdp: SessionDescription, kwargs: dict[str, object], why: str
) -> None:
    with pytest.raises(SdpNegotiationError, match=why) as excinfo:
        make_answer(sdp, path=BOB_PATH, **kwargs)  # type: ignore[arg-type]
    assert excinfo.value.status == 488 and excinfo.value.reason == "Not Acceptable Here"
    assert isinstance(excinfo.value, SipError)


def test_peer_smime_support_is_read_from_accept_and_wrapped_types() -> None:
    wrapped = _with_media({**GOOD, "accept-wrapped-types": "application/*"})
    _, bob = make_answer(wrapped, path=BOB_PATH, require_peer_smime=True)
    assert bob.remote_accepts_smime
    star = _with_media({**GOOD, "accept-types": "*"})
    assert make_answer(star, path=BOB_PATH)[1].remote_accepts_smime
    plain = _with_media(GOOD)
    _, bob = make_answer(plain, path=BOB_PATH)
    assert not bob.remote_accepts_smime
    assert bob.remote.accepts("text/plain; charset=utf-8")
    assert not bob.remote.accepts("image/png")


def _answer_with(
    setup: str | None, port: int = 40001, proto: str = "TCP/MSRP"
) -> SessionDescription:
    answer, _ = make_answer(offer(), path=BOB_PATH)
    media = answer.media[0]
    attributes = tuple(a for a in media.attributes if a.name != "setup")
    if setup is not None:
        attributes += (Attribute("setup", setup),)
    return SessionDescription(
        answer.origin, media=(Media("message", port, proto, ("*",), attributes=attributes),)
    )


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (_answer_with("actpass"), "cannot say"),
        (_answer_with("active", port=0), "refused"),
        (_answer_with("active", proto="TCP/TLS/MSRP"), "changed the protocol"),
        (SessionDescription(offer().origin), "fewer media"),
    ],
)
def test_offerer_refuses_bad_answers(answer: SessionDescription, why: str) -> None:
    with pytest.raises(SdpNegotiationError, match=why):
        negotiate(offer(), answer)


def test_offerer_reads_an_answer_without_setup_as_active_and_refuses_equal_setups() -> None:
    assert not negotiate(offer(), _answer_with(None)).active
    active_offer = _with_media({**GOOD, "setup": "active"})
    answer, _ = make_answer(active_offer, path=BOB_PATH)
    assert negotiate(active_offer, answer).active
    clash = SessionDescription(
        answer.origin,
        media=(
            Media(
                "message",
                1,
                "TCP/MSRP",
                ("*",),
                attributes=(*answer.media[0].attributes[:-1], Attribute("setup", "active")),
            ),
        ),
    )
    with pytest.raises(SdpNegotiationError, match="both sides"):
        negotiate(active_offer, clash)


# -- file transfer (RFC 5547) ----------------------------------------------------------------


def test_file_transfer_offer_and_answer() -> None:
    selector = FileSelector('report "final" 100%.pdf', "application/pdf", 50_000_000, "sha-1:AB:CD")
    sdp = make_offer(
        path=ALICE_PATH,
        direction="sendonly",
        file_selector=selector,
        file_transfer_id="ft-1",
        session_id=1,
    )
    text = sdp.to_bytes().decode()
    assert "a=sendonly\r\n" in text
    assert 'a=file-selector:name:"report %22final%22 100%25.pdf" type:application/pdf' in text
    assert "a=file-transfer-id:ft-1\r\n" in text
    answer, bob = make_answer(SessionDescription.parse(sdp.to_bytes()), path=BOB_PATH)
    assert bob.direction == "recvonly" and bob.file_selector == selector
    answer_text = answer.to_bytes().decode()
    assert "a=recvonly\r\n" in answer_text and "a=file-transfer-id:ft-1\r\n" in answer_text
    alice = negotiate(sdp, SessionDescription.parse(answer.to_bytes()))
    assert alice.direction == "sendonly" and alice.file_selector == selector


@pytest.mark.parametrize(
    "selector",
    [
        FileSelector("plain.txt"),
        FileSelector("ünïcode ✓.txt", "text/plain", 0),
        FileSelector(None, "image/jpeg", 12, "sha-1:72:24:5F"),
        FileSelector('a"b%c', None, None, None),
    ],
)
def test_file_selector_round_trips(selector: FileSelector) -> None:
    assert FileSelector.parse(str(selector)) == selector


@pytest.mark.parametrize(
    "text",
    [
        'name:"x" name:"y"',
        'name:"unterminated',
        'name:"bad %zz"',
        'name:"%ff"',
        "size:",
        "size:big",
        "colour:red",
        "nocolon",
    ],
)
def test_malformed_file_selectors(text: str) -> None:
    with pytest.raises(SdpParseError):
        FileSelector.parse(text)


# -- property tests: only the package's errors ------------------------------------------------

VALID = [RFC_STYLE, offer().to_bytes(), make_answer(offer(), path=BOB_PATH)[0].to_bytes()]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "dup"]))
        pos = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(
                st.sampled_from(
                    [b"\r\n", b"=", b" ", b":", b"/", b"a=setup:", b"m=message 0 TCP/MSRP *\r\n"]
                )
            )
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(min_value=1, max_value=8))]
        else:
            end = data.find(b"\n", pos)
            data[pos:pos] = data[pos : end + 1 if end >= 0 else len(data)]
    return bytes(data)


def _exercise(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(data)
    except SdpParseError:
        return
    assert SessionDescription.parse(sdp.to_bytes()) == sdp
    for media in sdp.media:
        try:
            MsrpMedia.from_media(media)
        except SdpError:
            pass
    try:
        answer, _ = make_answer(sdp, path=lambda tls: ["msrps://h:1/x;tcp"] if tls else BOB_PATH)
    except SdpError:
        return
    negotiate(sdp, SessionDescription.parse(answer.to_bytes()))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_sdp_raises_only_sdp_errors(data: bytes) -> None:
    _exercise(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_sdp_errors(data: bytes) -> None:
    _exercise(data)


_LINE = st.tuples(
    st.sampled_from(list("vosiuepcbtrzkam")),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=12))
def test_line_shaped_text_raises_only_sdp_errors(lines: list[tuple[str, str]]) -> None:
    text = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n" + "".join(
        f"{letter}={value}\r\n" for letter, value in lines
    )
    _exercise(text.encode())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(["text/plain", "message/cpim", "image/*", "*", "application/pkcs7-mime"]),
        max_size=5,
    ),
    st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
    st.booleans(),
    st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]),
)
def test_built_offers_parse_back_and_negotiate(
    types: list[str], max_size: int | None, require_smime: bool, direction: str
) -> None:
    sdp = make_offer(
        path=ALICE_PATH,
        accept_types=types,
        max_size=max_size,
        require_smime=require_smime,
        direction=direction,
        session_id=3,
    )
    parsed = SessionDescription.parse(sdp.to_bytes())
    assert parsed == sdp
    theirs = MsrpMedia.from_media(parsed.media[0])
    assert all(t in theirs.accept_types for t in SMIME_TYPES)
    assert theirs.max_size == max_size and theirs.direction == direction
    answer, bob = make_answer(parsed, path=BOB_PATH, max_size=10)
    alice = negotiate(sdp, answer)
    assert alice.remote_max_size == 10 and bob.remote_max_size == max_size
    assert alice.active is not bob.active


def test_negotiation_error_makes_the_488_with_a_warning() -> None:
    from messenger.sip.message import SipRequest, parse_message

    invite = SipRequest(
        "INVITE",
        "sip:bob@example.org",
        [
            ("Via", "SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKx"),
            ("From", "<sip:alice@example.com>;tag=a"),
            ("To", "<sip:bob@example.org>"),
            ("Call-ID", "c"),
            ("CSeq", "1 INVITE"),
        ],
    )
    with pytest.raises(SdpNegotiationError) as excinfo:
        make_answer(_with_media({**GOOD, "setup": 'x"y'}), path=BOB_PATH)
    response = excinfo.value.response_for(invite, agent="bob.example.org", to_tag="t")
    assert response.status == 488 and response.reason == "Not Acceptable Here"
    warning = response.headers.get("Warning")
    assert warning is not None and warning.startswith('399 bob.example.org "unknown a=setup')
    assert '\\"' in warning
    parsed = parse_message(response.to_bytes())
    assert parsed.to_address.tag == "t"
