"""Digest authentication (RFC 7616, RFC 2617) against the RFCs' own examples."""

from __future__ import annotations

import random

import pytest

from messenger.sip.digest import (
    DigestVerifier,
    build_authorization,
    parse_challenges,
    parse_credentials,
    select_challenge,
)
from messenger.sip.errors import SipDigestError

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_CHALLENGES = [
    f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
    f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
    f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
]


def _answer(challenge_text: str) -> str:
    [challenge] = parse_challenges(challenge_text)
    return build_authorization(
        challenge,
        username="Mufasa",
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce=RFC7616_CNONCE,
    )


def test_rfc7616_sha256_example_response() -> None:
    value = _answer(RFC7616_CHALLENGES[0])
    cred = parse_credentials(value)
    assert cred.response == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert (cred.algorithm, cred.qop, cred.nc, cred.opaque) == (
        "SHA-256",
        "auth",
        "00000001",
        RFC7616_OPAQUE,
    )


def test_rfc7616_md5_example_response() -> None:
    cred = parse_credentials(_answer(RFC7616_CHALLENGES[1]))
    assert cred.response == "8ca523f5e9506fed4657c9700eebdbec"


def test_rfc2617_example_response() -> None:
    [challenge] = parse_challenges(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = build_authorization(
        challenge,
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "nc=00000001" in value and "qop=auth," in value


def test_sha256_is_preferred_over_md5_whatever_the_order() -> None:
    challenges = parse_challenges(list(reversed(RFC7616_CHALLENGES)))
    chosen = select_challenge(challenges)
    assert chosen is not None and chosen.algorithm == "SHA-256"


def test_two_challenges_in_one_header_value() -> None:
    joined = ", ".join(RFC7616_CHALLENGES)
    assert [c.algorithm for c in parse_challenges(joined)] == ["SHA-256", "MD5"]


def test_non_digest_schemes_are_skipped() -> None:
    challenges = parse_challenges(['Basic realm="x"', 'Bearer realm="y", ' + RFC7616_CHALLENGES[1]])
    assert [c.algorithm for c in challenges] == ["MD5"]


def test_unsupported_algorithm_is_not_selected() -> None:
    challenges = parse_challenges('Digest realm="r", nonce="n", algorithm=SHA-1')
    assert select_challenge(challenges) is None
    with pytest.raises(SipDigestError):
        build_authorization(challenges[0], username="u", password="p", method="M", uri="sip:x")


def test_proxy_challenge_answers_with_proxy_authorization() -> None:
    [challenge] = parse_challenges('Digest realm="r", nonce="n"', proxy=True)
    assert challenge.authorization_header == "Proxy-Authorization"
    assert parse_challenges('Digest realm="r", nonce="n"')[0].authorization_header == (
        "Authorization"
    )


def test_without_qop_the_response_uses_rfc2069_form() -> None:
    [challenge] = parse_challenges('Digest realm="r", nonce="abc"')
    value = build_authorization(
        challenge, username="u", password="p", method="REGISTER", uri="sip:example.com"
    )
    cred = parse_credentials(value)
    assert cred.qop is None and cred.nc is None and cred.cnonce is None
    import hashlib

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    expected = md5(f"{md5('u:r:p')}:abc:{md5('REGISTER:sip:example.com')}")
    assert cred.response == expected


@pytest.mark.parametrize(
    "bad",
    ['Digest realm="r"', 'Digest realm="r", nonce="unterminated', 'Digest realm="r" nonce="n"'],
)
def test_malformed_challenges_raise(bad: str) -> None:
    with pytest.raises(SipDigestError):
        parse_challenges(bad)


# -- verifier ----------------------------------------------------------------------------


def _verifier(
    algorithms: tuple[str, ...] = ("SHA-256", "MD5"), nonce_lifetime: float = 300.0
) -> DigestVerifier:
    return DigestVerifier(
        "example.com",
        {"alice": "secret"},
        algorithms=algorithms,
        nonce_lifetime=nonce_lifetime,
        rng=random.Random(9),
    )


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5", "SHA-256-sess", "MD5-sess"])
def test_verifier_accepts_what_the_client_computes(algorithm: str) -> None:
    verifier = _verifier(algorithms=(algorithm,))
    [challenge] = parse_challenges(verifier.challenge(now=0.0))
    value = build_authorization(
        challenge, username="alice", password="secret", method="REGISTER", uri="sip:example.com"
    )
    result = verifier.verify(value, method="REGISTER", now=1.0, request_uri="sip:example.com")
    assert result.ok and result.username == "alice"


def test_verifier_offers_sha256_first_and_the_client_picks_it() -> None:
    verifier = _verifier()
    challenges = parse_challenges(verifier.challenge(now=0.0))
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert select_challenge(challenges) == challenges[0]


def test_verifier_rejects_wrong_password_replayed_nc_and_wrong_uri() -> None:
    verifier = _verifier()
    challenge = select_challenge(parse_challenges(verifier.challenge(now=0.0)))
    assert challenge is not None

    def answer(password: str = "secret", nc: int = 1, uri: str = "sip:example.com") -> str:
        return build_authorization(
            challenge, username="alice", password=password, method="REGISTER", uri=uri, nc=nc
        )

    assert verifier.verify(answer("wrong"), method="REGISTER", now=1).reason == "wrong response"
    assert verifier.verify(answer(), method="REGISTER", now=1).ok
    assert verifier.verify(answer(), method="REGISTER", now=2).reason == "nonce count replayed"
    assert verifier.verify(answer(nc=2), method="REGISTER", now=3).ok
    bad_uri = verifier.verify(
        answer(nc=3, uri="sip:other.example"), method="REGISTER", now=4, request_uri="sip:x"
    )
    assert not bad_uri.ok
    assert not verifier.verify(answer(nc=4), method="INVITE", now=5).ok


def test_verifier_marks_expired_nonce_stale() -> None:
    verifier = _verifier(nonce_lifetime=10.0)
    challenge = select_challenge(parse_challenges(verifier.challenge(now=0.0)))
    assert challenge is not None
    value = build_authorization(
        challenge, username="alice", password="secret", method="REGISTER", uri="sip:example.com"
    )
    result = verifier.verify(value, method="REGISTER", now=11.0)
    assert not result.ok and result.stale
    assert "stale=true" in verifier.challenge(now=11.0, stale=True)[0]


def test_verifier_handles_userhash() -> None:
    verifier = _verifier()
    [challenge] = parse_challenges(
        verifier.challenge(now=0.0)[0].replace("opaque", "userhash=true, opaque")
    )
    assert challenge.userhash
    value = build_authorization(
        challenge, username="alice", password="secret", method="REGISTER", uri="sip:example.com"
    )
    assert 'username="alice"' not in value
    assert verifier.verify(value, method="REGISTER", now=1.0).username == "alice"


def test_verifier_rejects_garbage_and_unknown_users() -> None:
    verifier = _verifier()
    assert not verifier.verify("Basic Zm9v", method="REGISTER", now=0).ok
    challenge = select_challenge(parse_challenges(verifier.challenge(now=0.0)))
    assert challenge is not None
    value = build_authorization(
        challenge, username="mallory", password="x", method="REGISTER", uri="sip:example.com"
    )
    assert verifier.verify(value, method="REGISTER", now=1).reason == "unknown user"


def test_seeded_rng_makes_cnonce_reproducible() -> None:
    [challenge] = parse_challenges(RFC7616_CHALLENGES[0])
    values = [
        build_authorization(
            challenge,
            username="u",
            password="p",
            method="MESSAGE",
            uri="sip:b@example.org",
            rng=random.Random(4),
        )
        for _ in range(2)
    ]
    assert values[0] == values[1]
