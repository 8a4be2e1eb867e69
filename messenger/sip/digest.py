"""HTTP Digest authentication for SIP (RFC 3261 section 22, RFC 7616, RFC 2617): parsing
challenges, computing Authorization / Proxy-Authorization, and a small server-side
`DigestVerifier` for test registrars.

Algorithms: MD5, SHA-256 and SHA-512-256 (when hashlib has it), each with its ``-sess``
variant; qop ``auth`` and ``auth-int``, or no qop (RFC 2069 style). When several challenges
are offered, `select_challenge` takes the strongest hash (SHA-256 over MD5).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .errors import SipDigestError
from .headers import quote
from .ids import random_hex
from .uri import TOKEN_CHARS

__all__ = [
    "DigestChallenge",
    "DigestCredentials",
    "DigestVerification",
    "DigestVerifier",
    "build_authorization",
    "parse_challenges",
    "parse_credentials",
    "select_challenge",
    "supported_algorithms",
]


def _hash_factory(name: str) -> Callable[[bytes], str] | None:
    base = name.upper().removesuffix("-SESS")
    hashlib_name = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}.get(base)
    if hashlib_name is None:
        return None
    try:
        hashlib.new(hashlib_name, b"")
    except (ValueError, TypeError):  # not offered by this OpenSSL build
        return None
    return lambda data: hashlib.new(hashlib_name, data).hexdigest()


# strongest first; the preference used by select_challenge
_PREFERENCE = ("SHA-512-256", "SHA-256", "MD5")


def supported_algorithms() -> tuple[str, ...]:
    """Algorithm names this build can compute, strongest first (``-sess`` variants too)."""
    names: list[str] = []
    for base in _PREFERENCE:
        if _hash_factory(base) is not None:
            names += [base, base + "-sess"]
    return tuple(names)


# -- auth-param lists --------------------------------------------------------------------

# tokens in auth-param values sometimes carry '/' or '=' (base64 nonces written unquoted)
_VALUE_CHARS = TOKEN_CHARS | frozenset("/=:@?[]")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self, chars: frozenset[str] = TOKEN_CHARS) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        assert self.peek() == '"'
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            out.append(ch)
            self.pos += 1
        raise SipDigestError("unterminated quoted string in digest parameters")

    def starts_param(self) -> bool:
        """Whether a ``name=`` follows (as opposed to a new auth-scheme)."""
        save = self.pos
        self.skip_ws()
        name = self.token()
        self.skip_ws()
        result = bool(name) and self.peek() == "="
        self.pos = save
        return result


def _parse_auth_items(text: str) -> list[tuple[str, dict[str, str]]]:
    """Parse ``Scheme k=v, k="v", Scheme2 k=v`` into ``[(scheme, params), ...]``; parameter
    names are lower-cased, values unquoted."""
    scanner = _Scanner(text)
    items: list[tuple[str, dict[str, str]]] = []
    while True:
        scanner.skip_ws()
        while scanner.peek() == ",":
            scanner.pos += 1
            scanner.skip_ws()
        if not scanner.peek():
            return items
        scheme = scanner.token()
        if not scheme:
            where = text[scanner.pos : scanner.pos + 20]
            raise SipDigestError(f"expected an auth-scheme at {where!r}")
        params: dict[str, str] = {}
        items.append((scheme, params))
        while scanner.starts_param():
            scanner.skip_ws()
            name = scanner.token().lower()
            scanner.skip_ws()
            scanner.pos += 1  # the '=' that starts_param saw
            scanner.skip_ws()
            if scanner.peek() == '"':
                value = scanner.quoted()
            else:
                value = scanner.token(_VALUE_CHARS)
                if not value:
                    raise SipDigestError(f"parameter {name!r} has no value")
            if name in params:
                raise SipDigestError(f"parameter {name!r} appears twice")
            params[name] = value
            scanner.skip_ws()
            if scanner.peek() == ",":
                scanner.pos += 1  # a parameter or the next challenge follows
            elif scanner.peek():
                where = text[scanner.pos : scanner.pos + 20]
                raise SipDigestError(f"expected ',' between digest parameters at {where!r}")


# -- client side -------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestChallenge:
    """One ``Digest`` challenge from WWW-Authenticate or Proxy-Authenticate."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    userhash: bool = False
    domain: str | None = None
    proxy: bool = False
    params: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def authorization_header(self) -> str:
        """The header that answers this challenge."""
        return "Proxy-Authorization" if self.proxy else "Authorization"

    @property
    def supported(self) -> bool:
        """Whether we can answer it (known algorithm; qop absent or including auth /
        auth-int)."""
        if _hash_factory(self.algorithm) is None:
            return False
        return not self.qop or bool({"auth", "auth-int"} & set(self.qop))


def parse_challenges(values: str | Iterable[str], *, proxy: bool = False) -> list[DigestChallenge]:
    """Parse WWW-Authenticate (or, with ``proxy=True``, Proxy-Authenticate) header values.

    Accepts one value or several; a value may hold several challenges. Non-Digest schemes
    are skipped. Raises `SipDigestError` on malformed input or a Digest challenge without
    realm or nonce.
    """
    texts = [values] if isinstance(values, str) else list(values)
    challenges: list[DigestChallenge] = []
    for text in texts:
        for scheme, params in _parse_auth_items(text):
            if scheme.lower() != "digest":
                continue
            if "realm" not in params or "nonce" not in params:
                raise SipDigestError("Digest challenge without realm or nonce")
            qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
            challenges.append(
                DigestChallenge(
                    realm=params["realm"],
                    nonce=params["nonce"],
                    algorithm=params.get("algorithm", "MD5"),
                    qop=qop,
                    opaque=params.get("opaque"),
                    stale=params.get("stale", "").lower() == "true",
                    userhash=params.get("userhash", "").lower() == "true",
                    domain=params.get("domain"),
                    proxy=proxy,
                    params=dict(params),
                )
            )
    return challenges


def select_challenge(challenges: Iterable[DigestChallenge]) -> DigestChallenge | None:
    """The challenge to answer: the strongest supported hash (SHA-512-256, then SHA-256,
    then MD5), in offer order among equals; None if none is supported."""
    best: DigestChallenge | None = None
    best_rank = len(_PREFERENCE)
    for challenge in challenges:
        if not challenge.supported:
            continue
        base = challenge.algorithm.upper().removesuffix("-SESS")
        rank = _PREFERENCE.index(base)
        if rank < best_rank:
            best, best_rank = challenge, rank
    return best


def _digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    nonce: str,
    cnonce: str | None,
    nc: str | None,
    qop: str | None,
    method: str,
    uri: str,
    body: bytes,
) -> str:
    h = _hash_factory(algorithm)
    if h is None:
        raise SipDigestError(f"unsupported digest algorithm {algorithm!r}")
    ha1 = h(f"{username}:{realm}:{password}".encode())
    if algorithm.upper().endswith("-SESS"):
        if cnonce is None:
            raise SipDigestError("-sess algorithms need a cnonce")
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + h(body)
    ha2 = h(a2.encode())
    if qop:
        return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())
    return h(f"{ha1}:{nonce}:{ha2}".encode())


def build_authorization(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    body: bytes = b"",
    nc: int = 1,
    cnonce: str | None = None,
    rng: random.Random | None = None,
) -> str:
    """The Authorization / Proxy-Authorization value answering ``challenge``
    (header name: `DigestChallenge.authorization_header`).

    With qop offered, uses ``auth`` (``auth-int`` only when that is all that is offered),
    nonce count ``nc`` and ``cnonce`` (random from ``rng``, default `secrets`, when None).
    ``uri`` is the Request-URI as sent.
    """
    if not challenge.supported:
        raise SipDigestError(
            f"cannot answer a challenge with algorithm {challenge.algorithm!r} "
            f"and qop {','.join(challenge.qop) or 'none'}"
        )
    qop: str | None = None
    if challenge.qop:
        qop = "auth" if "auth" in challenge.qop else "auth-int"
    needs_cnonce = qop is not None or challenge.algorithm.upper().endswith("-SESS")
    if needs_cnonce and cnonce is None:
        cnonce = random_hex(16, rng)
    nc_text = f"{nc:08x}" if qop else None
    h = _hash_factory(challenge.algorithm)
    assert h is not None
    wire_username = h(f"{username}:{challenge.realm}".encode()) if challenge.userhash else username
    response = _digest_response(
        algorithm=challenge.algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        nonce=challenge.nonce,
        cnonce=cnonce,
        nc=nc_text,
        qop=qop,
        method=method,
        uri=uri,
        body=body,
    )
    parts = [
        f"username={quote(wire_username)}",
        f"realm={quote(challenge.realm)}",
        f"nonce={quote(challenge.nonce)}",
        f"uri={quote(uri)}",
        f"response={quote(response)}",
        f"algorithm={challenge.algorithm}",
    ]
    if cnonce is not None:
        parts.append(f"cnonce={quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}"]
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


# -- server side -------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestCredentials:
    """The parameters of an Authorization / Proxy-Authorization Digest value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    nc: str | None = None
    qop: str | None = None
    opaque: str | None = None
    userhash: bool = False


def parse_credentials(value: str) -> DigestCredentials:
    """Parse a Digest Authorization value; raise `SipDigestError` when malformed."""
    items = _parse_auth_items(value)
    if len(items) != 1 or items[0][0].lower() != "digest":
        raise SipDigestError("expected exactly one Digest credential")
    params = items[0][1]
    missing = [n for n in ("username", "realm", "nonce", "uri", "response") if n not in params]
    if missing:
        raise SipDigestError(f"Digest credentials lack {', '.join(missing)}")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=params.get("algorithm", "MD5"),
        cnonce=params.get("cnonce"),
        nc=params.get("nc"),
        qop=params.get("qop"),
        opaque=params.get("opaque"),
        userhash=params.get("userhash", "").lower() == "true",
    )


@dataclass(frozen=True)
class DigestVerification:
    """The outcome of `DigestVerifier.verify`. ``stale`` means: challenge again with
    ``stale=true`` (the password may well be right)."""

    ok: bool
    username: str | None = None
    stale: bool = False
    reason: str = ""


@dataclass
class _NonceState:
    issued: float
    last_nc: int = 0


class DigestVerifier:
    """Server side of Digest for tests and a test registrar: issues challenges, checks
    credentials (realm, nonce freshness, nonce-count replay, URI, response).

    ``passwords`` maps user names to passwords (or is a lookup function). Nonces come from
    ``rng`` (default `secrets`) and live ``nonce_lifetime`` seconds of the ``now`` given.
    """

    def __init__(
        self,
        realm: str,
        passwords: Mapping[str, str] | Callable[[str], str | None],
        *,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        qop: tuple[str, ...] = ("auth",),
        nonce_lifetime: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        for algorithm in algorithms:
            if _hash_factory(algorithm) is None:
                raise SipDigestError(f"unsupported digest algorithm {algorithm!r}")
        self.realm = realm
        self._names = passwords.keys if isinstance(passwords, Mapping) else None
        self._lookup = passwords.get if isinstance(passwords, Mapping) else passwords
        self.algorithms = algorithms
        self.qop = qop
        self.nonce_lifetime = nonce_lifetime
        self._rng = rng
        self.opaque = random_hex(16, rng)
        self._nonces: dict[str, _NonceState] = {}

    def challenge(self, now: float, *, stale: bool = False) -> list[str]:
        """WWW-Authenticate (or Proxy-Authenticate) values, one per algorithm, strongest
        first, sharing one fresh nonce."""
        self._expire(now)
        nonce = random_hex(24, self._rng)
        self._nonces[nonce] = _NonceState(now)
        values = []
        for algorithm in self.algorithms:
            parts = [f"realm={quote(self.realm)}", f"nonce={quote(nonce)}"]
            if self.qop:
                parts.append(f"qop={quote(','.join(self.qop))}")
            parts += [f"algorithm={algorithm}", f"opaque={quote(self.opaque)}"]
            if stale:
                parts.append("stale=true")
            values.append("Digest " + ", ".join(parts))
        return values

    def verify(
        self,
        authorization: str,
        *,
        method: str,
        now: float,
        request_uri: str | None = None,
        body: bytes = b"",
    ) -> DigestVerification:
        """Check an Authorization value for a request of ``method`` (and ``request_uri``
        when given, which the credential's ``uri`` must equal)."""
        try:
            cred = parse_credentials(authorization)
        except SipDigestError as exc:
            return DigestVerification(False, reason=str(exc))
        self._expire(now)
        if cred.realm != self.realm:
            return DigestVerification(False, reason="wrong realm")
        if cred.algorithm not in self.algorithms:
            return DigestVerification(False, reason=f"algorithm {cred.algorithm!r} not offered")
        state = self._nonces.get(cred.nonce)
        if state is None:
            return DigestVerification(False, stale=True, reason="unknown or expired nonce")
        if request_uri is not None and cred.uri != request_uri:
            return DigestVerification(False, reason="uri does not match the Request-URI")
        if self.qop:
            if cred.qop not in self.qop or cred.cnonce is None or cred.nc is None:
                return DigestVerification(False, reason="qop, cnonce or nc missing or wrong")
            try:
                nc = int(cred.nc, 16)
            except ValueError:
                return DigestVerification(False, reason="malformed nc")
            if nc <= state.last_nc:
                return DigestVerification(False, reason="nonce count replayed")
        else:
            nc = 0
        username = self._resolve_user(cred)
        password = None if username is None else self._lookup(username)
        if username is None or password is None:
            return DigestVerification(False, reason="unknown user")
        expected = _digest_response(
            algorithm=cred.algorithm,
            username=username,
            realm=self.realm,
            password=password,
            nonce=cred.nonce,
            cnonce=cred.cnonce,
            nc=cred.nc,
            qop=cred.qop,
            method=method,
            uri=cred.uri,
            body=body,
        )
        if not hmac.compare_digest(expected, cred.response.lower()):
            return DigestVerification(False, reason="wrong response")
        state.last_nc = nc
        return DigestVerification(True, username=username)

    def _resolve_user(self, cred: DigestCredentials) -> str | None:
        if not cred.userhash:
            return cred.username
        # userhash hides the name: only a Mapping of passwords can be searched for it
        if self._names is None:
            return None
        h = _hash_factory(cred.algorithm)
        assert h is not None
        for name in self._names():
            if h(f"{name}:{self.realm}".encode()) == cred.username:
                return str(name)
        return None

    def _expire(self, now: float) -> None:
        dead = [n for n, s in self._nonces.items() if now - s.issued > self.nonce_lifetime]
        for nonce in dead:
            del self._nonces[nonce]
