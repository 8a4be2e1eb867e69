"""Real SIP peers for the interop tests: Kamailio, SIPp, baresip, and a loopback capture.

Everything here runs on 127.0.0.1 only, on ports picked by :func:`free_port`, in its own
process group, and is bounded in time: every wait has a deadline, every process is
stopped with SIGTERM and then SIGKILL, and each peer keeps its output in a work directory
so a failing test can show it (``Kamailio.log()``, ``SippResult.describe()``,
``Baresip.log()``).

Nothing here imports the messenger package: these are the *other* side of the wire.

Binary bodies and SIPp
    SIPp handles a MESSAGE whose body holds NUL bytes (it answers it), but writes its
    ``-trace_msg`` file with ``printf("%s")``: the traced text stops at the first NUL.
    A binary CMS body (``Content-Transfer-Encoding: binary``, what RFC 8591 senders use)
    therefore cannot be read back from a SIPp trace. :func:`extract_last_request_body`
    returns the exact body when the trace holds it whole (text or base64 bodies) and
    raises :class:`TraceTruncated` otherwise; for binary bodies record the wire with
    :class:`LoopbackCapture` (an AF_PACKET socket on ``lo``: needs root or CAP_NET_RAW,
    which CI has) and use :meth:`LoopbackCapture.sip_messages`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIPP_DIR = HERE / "sipp"
KAMAILIO_DIR = HERE / "kamailio"
LOCALHOST = "127.0.0.1"

KAMAILIO_MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
)
BARESIP_MODULE_DIRS = ("/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules")

# Kamailio modules the proxy template loads (msrp and auth only with their switches).
KAMAILIO_MODULES = (
    "kex",
    "corex",
    "tm",
    "tmx",
    "sl",
    "rr",
    "pv",
    "maxfwd",
    "usrloc",
    "registrar",
    "textops",
    "siputils",
    "xlog",
    "sanity",
)


class PeerError(RuntimeError):
    """A peer did not start, did not answer in time, or exited badly."""


# --------------------------------------------------------------------------- binaries


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"):
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def kamailio_module_dir() -> str | None:
    for d in KAMAILIO_MODULE_DIRS:
        if (Path(d) / "tm.so").is_file():
            return d
    return None


def sipp_available() -> str | None:
    """None when SIPp can be used, else a reason naming what is missing."""
    if _find_binary("sipp") is None:
        return "sipp not found (Debian package sip-tester)"
    return None


def kamailio_available(*, msrp: bool = False, auth: bool = False) -> str | None:
    """None when Kamailio and the modules the proxy template needs are there."""
    if _find_binary("kamailio") is None:
        return "kamailio not found (Debian package kamailio)"
    mdir = kamailio_module_dir()
    if mdir is None:
        dirs = ", ".join(KAMAILIO_MODULE_DIRS)
        return f"kamailio modules not found (tm.so in none of {dirs})"
    wanted = (
        list(KAMAILIO_MODULES) + (["auth"] if auth else []) + (["msrp", "htable"] if msrp else [])
    )
    missing = [m for m in wanted if not (Path(mdir) / f"{m}.so").is_file()]
    if missing:
        return f"kamailio modules missing in {mdir}: {', '.join(missing)}"
    return None


def baresip_available() -> str | None:
    """None when baresip (Debian package baresip-core) can be used."""
    if _find_binary("baresip") is None:
        return "baresip not found (Debian package baresip-core)"
    if _baresip_module_dir() is None:
        dirs = ", ".join(BARESIP_MODULE_DIRS)
        return f"baresip modules not found (account.so in none of {dirs})"
    return None


def loopback_capture_available() -> str | None:
    """None when :class:`LoopbackCapture` can open an AF_PACKET socket on ``lo``."""
    if not hasattr(socket, "AF_PACKET"):
        return "loopback capture needs Linux AF_PACKET sockets"
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(_ETH_P_IP))
    except PermissionError:
        return "loopback capture needs root or CAP_NET_RAW (AF_PACKET socket refused)"
    except OSError as exc:
        return f"loopback capture unavailable: {exc}"
    try:
        s.bind(("lo", _ETH_P_IP))
    except OSError as exc:
        return f"loopback capture cannot bind to lo: {exc}"
    finally:
        s.close()
    return None


# --------------------------------------------------------------------------- ports

_handed_out: set[int] = set()
_port_lock = threading.Lock()


def _bind_probe(kind: str, port: int) -> socket.socket | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    try:
        s.bind((LOCALHOST, port))
    except OSError:
        s.close()
        return None
    return s


def free_port(kind: str = "udp", *, span: int = 1) -> int:
    """A port on 127.0.0.1 that is free right now.

    kind: "udp", "tcp", or "both" (free for UDP and for TCP, as SIP listeners need).
    span: how many consecutive ports must be free (for example 2 for baresip, which
    takes PORT for UDP+TCP and PORT+1 for TLS); the first one is returned.
    Ports already handed out in this process are not handed out again.
    """
    if kind not in ("udp", "tcp", "both"):
        raise ValueError(f"kind must be udp, tcp or both, not {kind!r}")
    kinds = ("udp", "tcp") if kind == "both" else (kind,)
    deadline = time.monotonic() + 5.0
    with _port_lock:
        while time.monotonic() < deadline:
            first = _bind_probe(kinds[0], 0)
            if first is None:
                continue
            port = first.getsockname()[1]
            held = [first]
            try:
                if port in _handed_out or port + span - 1 > 65535:
                    continue
                ok = True
                for p in range(port, port + span):
                    for k in kinds:
                        if p == port and k == kinds[0]:
                            continue
                        s = _bind_probe(k, p)
                        if s is None:
                            ok = False
                            break
                        held.append(s)
                    if not ok:
                        break
                if ok:
                    _handed_out.update(range(port, port + span))
                    return port
            finally:
                for s in held:
                    s.close()
    raise PeerError(f"no free {kind} port on {LOCALHOST} (span {span}) found within 5 s")


def _proc_net_bound(port: int, kind: str, ip: str = LOCALHOST) -> bool:
    """Whether something has bound ip:port (UDP) or listens on it (TCP), per /proc/net."""
    hex_ips = {f"{struct.unpack('<I', socket.inet_aton(ip))[0]:08X}", "00000000"}
    files = ["/proc/net/udp"] if kind == "udp" else ["/proc/net/tcp"]
    for fname in files:
        try:
            lines = Path(fname).read_text().splitlines()[1:]
        except OSError:
            return False
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            lip, lport = parts[1].split(":")
            if int(lport, 16) != port or lip not in hex_ips:
                continue
            if kind == "tcp" and parts[3] != "0A":  # LISTEN
                continue
            return True
    return False


def wait_port_bound(
    port: int,
    kind: str = "udp",
    *,
    timeout: float = 5.0,
    alive: Callable[[], bool] | None = None,
    what: str = "peer",
) -> None:
    """Wait (bounded) until a local socket is bound to 127.0.0.1:port, without touching it."""
    deadline = time.monotonic() + timeout
    kinds = ("udp", "tcp") if kind == "both" else (kind,)
    while True:
        if all(_proc_net_bound(port, k) for k in kinds):
            return
        if alive is not None and not alive():
            raise PeerError(f"{what} exited before binding {kind} port {port}")
        if time.monotonic() >= deadline:
            raise PeerError(f"{what} did not bind {kind} port {port} within {timeout:.1f} s")
        time.sleep(0.02)


# --------------------------------------------------------------------------- SIP probe


def sip_options_probe(
    host: str,
    port: int,
    *,
    timeout: float = 5.0,
    request_uri: str | None = None,
    alive: Callable[[], bool] | None = None,
) -> bytes:
    """Send SIP OPTIONS over UDP until any SIP response arrives; return it.

    Bounded: resends every 0.2 s and gives up at the deadline (PeerError). ``alive``, if
    given, is checked each round so a peer that died is reported at once.
    """
    uri = request_uri or f"sip:{host}:{port}"
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((LOCALHOST, 0))
        lport = sock.getsockname()[1]
        call_id = f"probe-{secrets.token_hex(6)}@{LOCALHOST}"
        cseq = 0
        while True:
            if alive is not None and not alive():
                raise PeerError(f"peer at {host}:{port} exited before answering OPTIONS")
            now = time.monotonic()
            if now >= deadline:
                raise PeerError(
                    f"no SIP answer to OPTIONS from {host}:{port} within {timeout:.1f} s"
                )
            cseq += 1
            req = (
                f"OPTIONS {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LOCALHOST}:{lport};rport"
                f";branch=z9hG4bK-{secrets.token_hex(6)}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{LOCALHOST}>;tag={secrets.token_hex(4)}\r\n"
                f"To: <{uri}>\r\n"
                f"Call-ID: {call_id}\r\n"
                f"CSeq: {cseq} OPTIONS\r\n"
                "Accept: application/sdp\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            try:
                sock.sendto(req, (host, port))
            except OSError:
                pass  # ICMP port unreachable from an earlier round: not up yet
            round_end = min(deadline, time.monotonic() + 0.2)
            while True:
                left = round_end - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                try:
                    data = sock.recv(65535)
                except ConnectionRefusedError:
                    break
                if data.startswith(b"SIP/2.0 "):
                    return data
    finally:
        sock.close()


def tcp_connect_probe(host: str, port: int, *, timeout: float = 5.0) -> None:
    """Wait (bounded) until a TCP connect to host:port succeeds; closes it at once."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    raise PeerError(f"TCP {host}:{port} not accepting within {timeout:.1f} s ({last})")


def sip_udp_request(dst: tuple[str, int], request: str, *, timeout: float = 5.0) -> SipMessage:
    """Send one SIP request over UDP from a fresh socket and return its final response.

    ``{lport}`` in the request text is replaced by the local port. Retransmits every
    0.5 s (bounded by ``timeout``); provisional responses are skipped.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((LOCALHOST, 0))
        data = request.replace("{lport}", str(sock.getsockname()[1])).encode()
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise PeerError(f"no final response from {dst[0]}:{dst[1]} within {timeout:.1f} s")
            if now >= next_send:
                sock.sendto(data, dst)
                next_send = now + 0.5
            ready, _, _ = select.select([sock], [], [], min(deadline, next_send) - now)
            if ready:
                try:
                    msg = SipMessage.parse(sock.recv(65535))
                except ConnectionRefusedError:
                    continue
                if msg.status is not None and msg.status >= 200:
                    return msg
    finally:
        sock.close()


def digest_authorization(challenge: str, user: str, password: str, method: str, uri: str) -> str:
    """An Authorization/Proxy-Authorization value answering a Digest challenge (MD5,
    qop=auth or none). For the registrar helpers here; not the messenger's own code."""
    params = dict(
        (k.strip().lower(), v.strip().strip('"'))
        for k, _, v in (p.partition("=") for p in _split_commas(challenge.split(" ", 1)[1]))
    )
    realm, nonce = params.get("realm", ""), params.get("nonce", "")

    def md5(x: str) -> str:
        return hashlib.md5(x.encode()).hexdigest()

    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    out = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce, nc = secrets.token_hex(8), "00000001"
        resp = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        out += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        resp = md5(f"{ha1}:{nonce}:{ha2}")
    out += f', response="{resp}", algorithm=MD5'
    if "opaque" in params:
        out += f', opaque="{params["opaque"]}"'
    return out


def _split_commas(value: str) -> list[str]:
    """Split a header value on commas outside quotes and angle brackets."""
    parts, cur, quote, angle = [], [], False, 0
    for ch in value:
        if ch == '"':
            quote = not quote
        elif not quote and ch == "<":
            angle += 1
        elif not quote and ch == ">":
            angle = max(0, angle - 1)
        if ch == "," and not quote and angle == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


# --------------------------------------------------------------------------- processes


class _Process:
    """A child in its own session/process group, output in files, bounded stop."""

    def __init__(
        self, argv: Sequence[str], workdir: Path, name: str, env: Mapping[str, str] | None = None
    ):
        self.argv = [str(a) for a in argv]
        self.workdir = Path(workdir)
        self.name = name
        self.env = dict(os.environ if env is None else env)
        self.stdout_path = self.workdir / f"{name}.stdout"
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        if self.popen is not None:
            raise PeerError(f"{self.name} already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
                start_new_session=True,  # own session, so own process group (pgid == pid)
            )

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def wait(self, timeout: float) -> int:
        """Wait for exit; PeerError (after killing the group) when it takes longer."""
        assert self.popen is not None
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise PeerError(f"{self.name} still running after {timeout:.1f} s: killed") from None

    def _signal_group(self, sig: int) -> None:
        """Signal our process group; only while the leader is unreaped (its pid is ours)."""
        assert self.popen is not None
        if self.popen.returncode is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _leftover_pids(self) -> list[int]:
        """Processes still in the session and group we created (pgid == sid == our pid),
        running our binary: workers that outlived their leader. Read from /proc, so a
        reused pid of some unrelated process is never picked."""
        assert self.popen is not None
        lead = self.popen.pid
        exe = os.path.realpath(self.argv[0])
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == lead:
                continue
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[2]) != lead or int(fields[3]) != lead:  # pgrp, session
                    continue
                if os.path.realpath(f"/proc/{d}/exe") != exe:
                    continue
            except (OSError, IndexError, ValueError):
                continue
            out.append(int(d))
        return out

    def stop(self, grace: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """SIGTERM (or ``sig``) to the whole group, SIGKILL after ``grace`` seconds."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signal_group(sig)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                try:
                    self.popen.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    pass
        # workers that outlived the leader (a crashed Kamailio main process) go too
        for pid in self._leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return self.popen.poll()

    def read_stdout(self) -> str:
        return _read_text(self.stdout_path)

    def read_stderr(self) -> str:
        return _read_text(self.stderr_path)


def _read_text(path: Path, limit: int | None = None) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    if limit is not None and len(data) > limit:
        data = b"...[cut]...\n" + data[-limit:]
    return data.decode("utf-8", "replace")


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- Kamailio


_SAFE_PASSWORD = re.compile(r"^[A-Za-z0-9._~+=@%-]{1,64}$")
_SAFE_USER = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")

DEFAULT_USERS = {"alice": "alice-secret-1", "bob": "bob-secret-2", "carol": "carol-secret-3"}


class Kamailio:
    """Kamailio as registrar + stateful proxy for MESSAGE (and optionally an MSRP relay).

    Routing (see kamailio/proxy.cfg.tmpl): REGISTER -> [digest auth, 401] -> save("location");
    MESSAGE -> [proxy auth, 407] -> lookup("location") -> t_relay(), 404 when the AoR has no
    contact; INVITE the same way, with Record-Route, and the requests of its dialog (ACK,
    BYE) along the recorded route; OPTIONS to the proxy itself -> 200 (the readiness
    probe); anything else 405. MESSAGE gets no Record-Route. A contact registered with
    ``;transport=tcp`` is reached over TCP, whatever transport the MESSAGE came in on, and a
    UDP contact over UDP.

    Registrations are kept in memory for the life of the process: give each test module
    its own instance (the conftest fixtures are module-scoped) or unregister (Expires 0).
    """

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        domain: str = "example.test",
        auth: bool = False,
        users: Mapping[str, str] | None = None,
        msrp: bool = False,
        udp_port: int | None = None,
        tcp_port: int | None = None,
        msrp_port: int | None = None,
        debug: int = 2,
        fr_timer_ms: int = 4000,
        challenge_qop: bool = True,
        template: str | Path | None = None,
        shm_mb: int = 64,
        pkg_mb: int = 8,
        children: int = 2,
    ):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kamailio-"))
        self.domain = domain
        self.realm = domain
        self.ip = LOCALHOST
        self.auth = auth
        self.users: dict[str, str] = dict(users if users is not None else DEFAULT_USERS)
        for u, p in self.users.items():
            if not _SAFE_USER.match(u) or not _SAFE_PASSWORD.match(p):
                raise ValueError(f"user/password {u!r} must be plain tokens (they go into the cfg)")
        self.msrp = msrp
        if udp_port is None and tcp_port is None:
            udp_port = tcp_port = free_port("both")
        self.udp_port = udp_port if udp_port is not None else free_port("udp")
        self.tcp_port = tcp_port if tcp_port is not None else free_port("tcp")
        self.msrp_port = (msrp_port or free_port("tcp")) if msrp else None
        self.debug = debug
        self.fr_timer_ms = fr_timer_ms
        self.challenge_qop = challenge_qop
        self.template_path = Path(template) if template else KAMAILIO_DIR / "proxy.cfg.tmpl"
        self.shm_mb = shm_mb
        self.pkg_mb = pkg_mb
        self.children = children
        self.config_path = self.workdir / "kamailio.cfg"
        self.rundir = self.workdir / "run"
        self.pidfile = self.workdir / "kamailio.pid"
        self._proc: _Process | None = None

    # -- addresses
    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.domain}"

    def uri(self, transport: str = "udp") -> str:
        port = self.tcp_port if transport == "tcp" else self.udp_port
        return f"sip:{self.ip}:{port};transport={transport}"

    @property
    def udp_addr(self) -> tuple[str, int]:
        return (self.ip, self.udp_port)

    @property
    def tcp_addr(self) -> tuple[str, int]:
        return (self.ip, self.tcp_port)

    @property
    def msrp_uri_prefix(self) -> str:
        if not self.msrp_port:
            raise PeerError("this Kamailio was started without msrp=True")
        return f"msrp://{self.ip}:{self.msrp_port}"

    # -- config
    def render_config(self) -> str:
        mdir = kamailio_module_dir()
        if mdir is None:
            raise PeerError(kamailio_available() or "kamailio modules not found")
        text = self.template_path.read_text()
        defines = []
        if self.auth:
            defines.append("#!define WITH_AUTH")
        if self.msrp:
            defines.append("#!define WITH_MSRP")
        pw_lines = "\n".join(
            f'\tif ($au == "{u}") {{ $var(pw) = "{p}"; }}' for u, p in self.users.items()
        )
        values = {
            "IP": self.ip,
            "UDP_PORT": str(self.udp_port),
            "TCP_PORT": str(self.tcp_port),
            "MSRP_PORT": str(self.msrp_port or 0),
            "DOMAIN": self.domain,
            "MODULE_PATH": mdir,
            "DEBUG": str(self.debug),
            "FR_TIMER_MS": str(self.fr_timer_ms),
            "AUTH_SECRET": secrets.token_hex(16),
            "CHALLENGE_FLAGS": "1" if self.challenge_qop else "0",
            "PASSWORD_LINES": pw_lines,
            "CHILDREN": str(self.children),
        }
        for k, v in values.items():
            text = text.replace(f"@@{k}@@", v)
        left = re.findall(r"@@[A-Z_]+@@", text)
        if left:
            raise PeerError(f"unrendered placeholders in {self.template_path}: {sorted(set(left))}")
        first, _, rest = text.partition("\n")
        return first + "\n" + "".join(d + "\n" for d in defines) + rest

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.render_config())
        return self.config_path

    def check_config(self, timeout: float = 20.0) -> str:
        """Run ``kamailio -c`` on the rendered config; PeerError with its output on failure."""
        self.write_config()
        kam = _find_binary("kamailio")
        if kam is None:
            raise PeerError(kamailio_available() or "kamailio missing")
        proc = subprocess.run(
            [kam, "-c", "-f", str(self.config_path), "-Y", str(self.rundir), "-E"],
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        if proc.returncode != 0:
            raise PeerError(f"kamailio -c failed ({proc.returncode}):\n{_tail(out)}")
        return out

    @property
    def argv(self) -> list[str]:
        kam = _find_binary("kamailio") or "kamailio"
        return [
            kam,
            "-DD",
            "-E",
            "-f",
            str(self.config_path),
            "-Y",
            str(self.rundir),
            "-P",
            str(self.pidfile),
            "-m",
            str(self.shm_mb),
            "-M",
            str(self.pkg_mb),
        ]

    # -- life cycle
    def start(self, timeout: float = 10.0) -> Kamailio:
        reason = kamailio_available(msrp=self.msrp, auth=self.auth)
        if reason:
            raise PeerError(reason)
        self.write_config()
        self._proc = _Process(self.argv, self.workdir, "kamailio")
        self._proc.start()
        deadline = time.monotonic() + timeout
        try:
            sip_options_probe(self.ip, self.udp_port, timeout=timeout, alive=self._proc.alive)
            tcp_connect_probe(self.ip, self.tcp_port, timeout=max(0.5, deadline - time.monotonic()))
            if self.msrp_port:
                tcp_connect_probe(
                    self.ip, self.msrp_port, timeout=max(0.5, deadline - time.monotonic())
                )
        except PeerError as exc:
            self.stop()
            raise PeerError(
                f"kamailio did not come up: {exc}\n--- kamailio log ---\n{_tail(self.log())}"
            ) from None
        return self

    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc is not None:
            self._proc.stop(grace=timeout)

    def log(self, limit: int = 200_000) -> str:
        """Kamailio's stderr (xlog lines and errors) so far."""
        if self._proc is None:
            return ""
        return _read_text(self._proc.stderr_path, limit) + _read_text(self._proc.stdout_path, limit)

    def wait_log(self, pattern: str, timeout: float = 5.0) -> re.Match:
        """Wait (bounded) until the log matches ``pattern`` (a regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log())
            if m:
                return m
            if time.monotonic() >= deadline:
                raise PeerError(
                    f"kamailio log has no /{pattern}/ after {timeout:.1f} s:\n{_tail(self.log())}"
                )
            time.sleep(0.05)

    # -- registrar queries (plain UDP requests from Python, digest-authenticated if needed)
    def _register_request(self, user: str, extra: str, timeout: float = 5.0) -> SipMessage:
        aor = self.aor(user)
        call_id = f"q-{secrets.token_hex(6)}@{LOCALHOST}"
        tag = secrets.token_hex(4)
        auth_line = ""
        for cseq in (1, 2):
            req = (
                f"REGISTER sip:{self.domain} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LOCALHOST}:{{lport}};rport"
                f";branch=z9hG4bK-{secrets.token_hex(6)}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <{aor}>;tag={tag}\r\n"
                f"To: <{aor}>\r\n"
                f"Call-ID: {call_id}\r\n"
                f"CSeq: {cseq} REGISTER\r\n"
                f"{extra}{auth_line}"
                "Content-Length: 0\r\n\r\n"
            )
            resp = sip_udp_request(self.udp_addr, req, timeout=timeout)
            if resp.status == 401 and cseq == 1 and user in self.users:
                challenge = resp.header("WWW-Authenticate") or ""
                auth_line = (
                    "Authorization: "
                    + digest_authorization(
                        challenge, user, self.users[user], "REGISTER", f"sip:{self.domain}"
                    )
                    + "\r\n"
                )
                continue
            return resp
        return resp

    def bindings(self, user: str) -> list[str]:
        """The Contact values registered for sip:USER@domain now (a REGISTER query)."""
        resp = self._register_request(user, "")
        if resp.status != 200:
            raise PeerError(f"REGISTER query for {user} answered {resp.start_line}")
        out: list[str] = []
        for v in resp.header_values("Contact"):
            out.extend(c.strip() for c in _split_commas(v) if c.strip())
        return out

    def wait_registered(self, user: str, timeout: float = 10.0, contains: str = "") -> list[str]:
        """Wait (bounded) until USER has a binding (whose text contains ``contains``)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [b for b in self.bindings(user) if contains in b]
            if found:
                return found
            if time.monotonic() >= deadline:
                raise PeerError(
                    f"{self.aor(user)} not registered within {timeout:.1f} s:\n{_tail(self.log())}"
                )
            time.sleep(0.05)

    def unregister(self, user: str) -> None:
        """Remove every binding of sip:USER@domain (Contact: *, Expires: 0)."""
        resp = self._register_request(user, "Contact: *\r\nExpires: 0\r\n")
        if resp.status != 200:
            raise PeerError(f"unregister {user} answered {resp.start_line}")

    def __enter__(self) -> Kamailio:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<Kamailio udp={self.udp_port} tcp={self.tcp_port} msrp={self.msrp_port} "
            f"auth={self.auth} domain={self.domain}>"
        )


# --------------------------------------------------------------------------- SIPp trace parsing


class TraceTruncated(ValueError):
    """The SIPp trace holds fewer body bytes than Content-Length (SIPp stops at a NUL)."""


@dataclass
class TracedMessage:
    """One entry of a SIPp ``-trace_msg`` file."""

    direction: str  # "received" or "sent"
    transport: str  # "UDP", "TCP", ...
    declared_length: int  # what SIPp says it got or sent
    raw: bytes  # as much of it as the trace holds
    timestamp: str = ""

    @property
    def truncated(self) -> bool:
        return len(self.raw) < self.declared_length

    @property
    def message(self) -> SipMessage:
        return SipMessage.parse(self.raw)


_TRACE_HEAD = re.compile(
    rb"^-{20,} (?P<ts>[^\n]*)\n"
    rb"(?P<transport>[A-Za-z0-9]+) (?:control )?message "
    rb"(?:received \[(?P<rlen>\d+)\] bytes ?:|sent \((?P<slen>\d+) bytes\):)\n\n",
    re.M,
)


def parse_sipp_trace(trace: str | bytes) -> list[TracedMessage]:
    """Split a SIPp ``-trace_msg`` file into its messages.

    Pass the file's bytes (``Path.read_bytes()``, ``SippResult.messages_bytes``) or a str
    decoded as latin-1 (``SippResult.messages``): each entry's ``raw`` is then the message
    byte for byte, up to SIPp's declared length or up to the first NUL, whichever is first.
    """
    data = trace.encode("latin-1") if isinstance(trace, str) else bytes(trace)
    heads = list(_TRACE_HEAD.finditer(data))
    out = []
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(data)
        chunk = data[m.end() : end]
        declared = int(m.group("rlen") or m.group("slen"))
        out.append(
            TracedMessage(
                direction="received" if m.group("rlen") else "sent",
                transport=m.group("transport").decode(),
                declared_length=declared,
                raw=chunk[:declared],
                timestamp=m.group("ts").decode("latin-1"),
            )
        )
    return out


def extract_last_request_body(trace_text: str | bytes, method: str = "MESSAGE") -> bytes:
    """Exact body bytes of the last ``method`` request SIPp received, per its Content-Length.

    ``trace_text``: the ``-trace_msg`` file as bytes, or as a str decoded with latin-1
    (what ``SippResult.messages`` holds). Raises LookupError when no such request is in
    the trace and TraceTruncated when SIPp's trace cut the body short (a NUL byte in it:
    use LoopbackCapture for binary bodies).
    """
    for entry in reversed(parse_sipp_trace(trace_text)):
        if entry.direction != "received" or entry.raw.startswith(b"SIP/2.0"):
            continue
        if not entry.raw.startswith(method.encode() + b" "):
            continue
        head, sep, rest = entry.raw.partition(b"\r\n\r\n")
        if not sep:
            raise TraceTruncated(f"{method} in the trace ends inside its headers")
        msg = SipMessage.parse(head + b"\r\n\r\n")
        clen = msg.content_length
        if clen is None:
            return rest
        if len(rest) < clen:
            raise TraceTruncated(
                f"trace holds {len(rest)} of the {clen} body bytes of the last {method} "
                f"(SIPp declared {entry.declared_length} bytes): SIPp's trace stops at the "
                f"first NUL byte; capture binary bodies with peers.LoopbackCapture"
            )
        return rest[:clen]
    raise LookupError(f"no received {method} request in the SIPp trace")


# --------------------------------------------------------------------------- SIP message parsing


_COMPACT = {
    "l": "content-length",
    "c": "content-type",
    "i": "call-id",
    "f": "from",
    "t": "to",
    "v": "via",
    "m": "contact",
    "e": "content-encoding",
    "k": "supported",
    "s": "subject",
}


@dataclass
class SipMessage:
    """A minimal SIP message view for assertions in tests (not a SIP stack)."""

    start_line: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes = b""

    @classmethod
    def parse(cls, raw: bytes) -> SipMessage:
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and headers:  # folded line
                name, value = headers[-1]
                headers[-1] = (name, value + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        return cls(lines[0], headers, body, raw)

    def header(self, name: str) -> str | None:
        """First value of a header (compact forms understood), or None."""
        vals = self.header_values(name)
        return vals[0] if vals else None

    def header_values(self, name: str) -> list[str]:
        want = _COMPACT.get(name.lower(), name.lower())
        return [v for n, v in self.headers if _COMPACT.get(n.lower(), n.lower()) == want]

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0")

    @property
    def method(self) -> str | None:
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        cseq = self.header("CSeq")
        return cseq.split()[-1] if cseq else None

    @property
    def status(self) -> int | None:
        if self.is_request:
            return None
        try:
            return int(self.start_line.split()[1])
        except (IndexError, ValueError):
            return None

    @property
    def content_length(self) -> int | None:
        v = self.header("Content-Length")
        try:
            return int(v) if v is not None else None
        except ValueError:
            return None

    @property
    def exact_body(self) -> bytes:
        """The body cut to Content-Length (when there is one).

        Raises TraceTruncated when fewer bytes are there than Content-Length says: a
        message read back from a SIPp trace whose body held a NUL byte.
        """
        cl = self.content_length
        if cl is None:
            return self.body
        if len(self.body) < cl:
            raise TraceTruncated(
                f"{self.start_line!r}: {len(self.body)} of {cl} body bytes present (a SIPp "
                "trace stops at the first NUL byte; read binary bodies from a LoopbackCapture)"
            )
        return self.body[:cl]

    def decoded_body(self) -> bytes:
        """The body with Content-Transfer-Encoding base64 undone (binary/8bit/absent: as is)."""
        cte = (self.header("Content-Transfer-Encoding") or "binary").strip().lower()
        if cte == "base64":
            return base64.b64decode(b"".join(self.exact_body.split()), validate=True)
        return self.exact_body


# --------------------------------------------------------------------------- SIPp


@dataclass
class SippResult:
    """What one SIPp run gave."""

    argv: list[str]
    returncode: int | None
    stats: dict[str, str]
    messages_bytes: bytes
    errors: str
    stdout: str
    stderr: str
    workdir: Path

    @property
    def messages(self) -> str:
        """The -trace_msg text, decoded latin-1 so it maps byte for byte."""
        return self.messages_bytes.decode("latin-1")

    def _stat(self, name: str) -> int:
        try:
            return int(self.stats.get(name, "0") or 0)
        except ValueError:
            return 0

    @property
    def successful(self) -> int:
        return self._stat("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self._stat("FailedCall(C)")

    @property
    def retransmissions(self) -> int:
        return self._stat("Retransmissions(C)")

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def traced(self) -> list[TracedMessage]:
        return parse_sipp_trace(self.messages_bytes)

    def received(self) -> list[SipMessage]:
        return [t.message for t in self.traced if t.direction == "received"]

    def sent(self) -> list[SipMessage]:
        return [t.message for t in self.traced if t.direction == "sent"]

    def responses(self, status: int | None = None) -> list[SipMessage]:
        out = [m for m in self.received() if not m.is_request]
        return [m for m in out if status is None or m.status == status]

    def last_response(self, status: int | None = None) -> SipMessage:
        rs = self.responses(status)
        if not rs:
            raise LookupError(
                f"no received response{'' if status is None else f' {status}'} in the trace"
            )
        return rs[-1]

    def describe(self, lines: int = 40) -> str:
        """Everything a failing assertion should show."""
        rc = self.returncode
        meaning = SIPP_EXIT_CODES.get(rc if rc is None or rc < 128 else rc - 256, "?")
        return (
            f"sipp exit {rc} ({meaning}); successful={self.successful} failed={self.failed} "
            f"retransmissions={self.retransmissions}\nargv: {' '.join(self.argv)}\n"
            f"--- stderr ---\n{_tail(self.stderr, lines)}\n"
            f"--- errors ---\n{_tail(self.errors, lines)}\n"
            f"--- messages ---\n{_tail(self.messages_bytes.decode('utf-8', 'replace'), lines * 2)}"
        )


SIPP_EXIT_CODES = {
    0: "all calls successful",
    1: "at least one call failed",
    97: "exit on internal command",
    99: "normal exit without calls processed",
    -1: "fatal error (or -timeout_error reached)",
    -2: "fatal error binding a socket",
    None: "not finished",
}


def _scenario_path(scenario: str | Path) -> Path:
    p = Path(scenario)
    if not p.is_absolute() and not p.exists():
        p = SIPP_DIR / p
    if not p.is_file():
        raise FileNotFoundError(f"SIPp scenario {scenario} not found (looked in {SIPP_DIR})")
    return p


class Sipp:
    """One SIPp process running a scenario file, as UAC (run) or UAS (start ... wait).

    Always non-interactive (``-nostdin``, output to files, no screen) and bounded: SIPp gets
    ``-timeout T -timeout_error`` so it ends by itself, and Python kills its process group
    if it is still there ``T + 5`` seconds later.

    keys: ``-key NAME VALUE`` pairs ([NAME] in the scenario). inf_rows: rows of the
    injection CSV (written SEQUENTIAL, fields joined with ';', none may contain ';' or a
    newline). target: "host:port" of the remote side (None for a pure UAS).
    """

    def __init__(
        self,
        scenario: str | Path,
        *,
        workdir: str | Path | None = None,
        target: str | tuple[str, int] | None = None,
        local_port: int | None = None,
        transport: str = "udp",
        count: int = 1,
        rate: float | None = None,
        rate_period_ms: int | None = None,
        limit: int | None = None,
        keys: Mapping[str, str] | None = None,
        inf_rows: Iterable[Sequence[str]] | None = None,
        inf_path: str | Path | None = None,
        auth_user: str | None = None,
        auth_password: str | None = None,
        timeout: float = 15.0,
        trace_msg: bool = True,
        trace_err: bool = True,
        trace_stat: bool = True,
        extra_args: Sequence[str] = (),
        name: str | None = None,
    ):
        self.scenario = _scenario_path(scenario)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sipp-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name or f"{self.scenario.stem}-{secrets.token_hex(3)}"
        if isinstance(target, tuple):
            target = f"{target[0]}:{target[1]}"
        self.target = target
        if transport not in ("udp", "tcp"):
            raise ValueError("transport must be udp or tcp")
        self.transport = transport
        self.local_port = local_port or free_port(transport)
        self.count = count
        self.rate = rate
        self.rate_period_ms = rate_period_ms
        self.limit = limit
        self.keys = dict(keys or {})
        self.auth_user = auth_user
        self.auth_password = auth_password
        self.timeout = timeout
        self.extra_args = list(extra_args)
        self.message_file = self.workdir / f"{self.name}.messages.log" if trace_msg else None
        self.error_file = self.workdir / f"{self.name}.errors.log" if trace_err else None
        self.stat_file = self.workdir / f"{self.name}.stats.csv" if trace_stat else None
        self.inf_path: Path | None = None
        if inf_rows is not None:
            self.inf_path = self.workdir / f"{self.name}.inf.csv"
            write_injection_csv(self.inf_path, inf_rows)
        elif inf_path is not None:
            self.inf_path = Path(inf_path)
        self._proc: _Process | None = None
        self._result: SippResult | None = None

    @property
    def argv(self) -> list[str]:
        sipp = _find_binary("sipp") or "sipp"
        a = [
            sipp,
            "-sf",
            str(self.scenario),
            "-i",
            LOCALHOST,
            "-p",
            str(self.local_port),
            "-t",
            "t1" if self.transport == "tcp" else "u1",
            "-m",
            str(self.count),
            "-nostdin",
            # an unexpected final response aborts the call, but sends no BYE (no dialogs here)
            "-default_behaviors",
            "all,-bye",
            "-timeout",
            f"{max(1, round(self.timeout))}s",
            "-timeout_error",
        ]
        if self.rate is not None:
            a += ["-r", _num(self.rate)]
        if self.rate_period_ms is not None:
            a += ["-rp", str(self.rate_period_ms)]
        if self.limit is not None:
            a += ["-l", str(self.limit)]
        if self.inf_path is not None:
            a += ["-inf", str(self.inf_path)]
        for k, v in self.keys.items():
            a += ["-key", str(k), str(v)]
        if self.auth_user is not None:
            a += ["-au", self.auth_user]
        if self.auth_password is not None:
            a += ["-ap", self.auth_password]
        if self.message_file is not None:
            a += ["-trace_msg", "-message_file", str(self.message_file)]
        if self.error_file is not None:
            a += ["-trace_err", "-error_file", str(self.error_file)]
        if self.stat_file is not None:
            a += ["-trace_stat", "-stf", str(self.stat_file), "-fd", "1"]
        a += self.extra_args
        if self.target:
            a.append(self.target)
        return a

    def start(self, wait_bound: float = 5.0) -> Sipp:
        """Start in the background; returns once SIPp has bound its local port."""
        reason = sipp_available()
        if reason:
            raise PeerError(reason)
        for f in (self.message_file, self.error_file, self.stat_file):
            if f is not None and f.exists():
                f.unlink()
        self._proc = _Process(
            self.argv, self.workdir, self.name, env={**os.environ, "TERM": "dumb"}
        )
        self._proc.start()
        try:
            wait_port_bound(
                self.local_port,
                self.transport,
                timeout=wait_bound,
                alive=self._proc.alive,
                what=f"sipp {self.scenario.name}",
            )
        except PeerError:
            if not self._proc.alive():
                return self  # it ended already (fatal error): wait() reports it
            self.stop()
            raise
        return self

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to end (bounded: default its -timeout plus 5 s) and collect results."""
        if self._result is not None:
            return self._result
        if self._proc is None:
            raise PeerError("sipp not started")
        limit = self.timeout + 5.0 if timeout is None else timeout
        try:
            self._proc.wait(limit)
        except PeerError:
            pass  # killed; the result says returncode -9
        self._result = self._collect()
        return self._result

    def run(self, timeout: float | None = None) -> SippResult:
        """start() then wait(): one bounded UAC run."""
        self.start()
        return self.wait(timeout)

    def stop(self) -> SippResult:
        """End a running SIPp now (SIGUSR1 is SIPp's soft exit; then SIGTERM/SIGKILL)."""
        if self._proc is not None and self._proc.alive():
            self._proc._signal_group(signal.SIGUSR1)
            try:
                self._proc.popen.wait(timeout=2.0)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self._proc.stop(grace=2.0)
        if self._result is None and self._proc is not None:
            self._result = self._collect()
        return self._result  # type: ignore[return-value]

    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def _collect(self) -> SippResult:
        assert self._proc is not None
        messages = (
            self.message_file.read_bytes()
            if self.message_file and self.message_file.exists()
            else b""
        )
        errors = _read_text(self.error_file) if self.error_file else ""
        stats = parse_sipp_stats(self.stat_file) if self.stat_file else {}
        return SippResult(
            argv=self.argv,
            returncode=self._proc.returncode,
            stats=stats,
            messages_bytes=messages,
            errors=errors,
            stdout=self._proc.read_stdout(),
            stderr=self._proc.read_stderr(),
            workdir=self.workdir,
        )

    def __enter__(self) -> Sipp:
        return self if self._proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- conveniences for the bundled scenarios
    @classmethod
    def message(
        cls,
        target: str | tuple[str, int],
        *,
        to_uri: str,
        from_uri: str,
        body: bytes,
        content_type: str,
        expect: int | str = 200,
        count: int = 1,
        **kw,
    ) -> Sipp:
        """A UAC that sends ``count`` MESSAGEs (message_uac_expect_<expect>.xml or
        message_uac_rate.xml when expect="rate") with ``body`` base64-encoded."""
        scenario = (
            "message_uac_rate.xml" if expect == "rate" else f"message_uac_expect_{expect}.xml"
        )
        row = (to_uri, from_uri, base64.b64encode(body).decode("ascii"))
        return cls(
            scenario,
            target=target,
            count=count,
            inf_rows=[row],
            keys={"content_type": content_type, **kw.pop("keys", {})},
            **kw,
        )

    @classmethod
    def register(
        cls,
        registrar: str | tuple[str, int],
        *,
        aor: str,
        contact: str,
        domain: str,
        expires: int = 3600,
        user: str | None = None,
        password: str | None = None,
        expect: int = 200,
        **kw,
    ) -> Sipp:
        """A UAC that REGISTERs ``aor`` with ``contact`` (a Contact header value).

        With user/password it answers the 401 challenge (register_uac_auth.xml); with
        expect=401 it sends no credentials and expects the challenge.
        """
        if expect == 401:
            scenario = "register_uac_expect_401.xml"
        elif user is not None:
            scenario = "register_uac_auth.xml"
        else:
            scenario = "register_uac.xml"
        keys = {"aor": aor, "contact": contact, "domain": domain, "expires": str(expires)}
        return cls(
            scenario, target=registrar, keys=keys, auth_user=user, auth_password=password, **kw
        )


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def write_injection_csv(
    path: str | Path, rows: Iterable[Sequence[str]], order: str = "SEQUENTIAL"
) -> Path:
    """Write a SIPp injection file; refuses fields SIPp cannot carry (';' or newlines)."""
    lines = [order]
    for row in rows:
        for f in row:
            if ";" in f or "\n" in f or "\r" in f:
                raise ValueError(f"SIPp CSV fields cannot contain ';' or newlines: {f[:60]!r}")
        lines.append(";".join(row))
    if len(lines) == 1:
        raise ValueError("an injection file needs at least one row")
    p = Path(path)
    p.write_text("\n".join(lines) + "\n")
    return p


def parse_sipp_stats(path: str | Path | None) -> dict[str, str]:
    """Last row of a SIPp -trace_stat CSV as {column: value}."""
    if path is None:
        return {}
    try:
        lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    head = lines[0].split(";")
    last = lines[-1].split(";")
    return {h: v for h, v in zip(head, last, strict=False) if h}


# --------------------------------------------------------------------------- baresip


def _baresip_module_dir() -> str | None:
    for d in BARESIP_MODULE_DIRS:
        if (Path(d) / "account.so").is_file():
            return d
    return None


class Baresip:
    """baresip as a headless SIP UA on loopback, in direct mode (no registration).

    Config dir made in ``workdir``: ``sip_listen 127.0.0.1:PORT`` (baresip also opens
    PORT+1 for TLS), no audio or UI modules except ``menu`` (which prints incoming
    MESSAGEs), one account ``<sip:USER@127.0.0.1:PORT>;regint=0``. baresip 1.0 (Debian 12)
    accepts MESSAGE bodies of type text/plain (and application/json) with 200 and answers
    anything else with 415 and ``Accept: text/plain``: the peer that cannot do S/MIME.
    Also bounded by baresip's own ``-t`` (quit after ``max_lifetime`` seconds).
    """

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        user: str = "bob",
        port: int | None = None,
        max_lifetime: int = 300,
        sip_trace: bool = True,
    ):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="baresip-"))
        self.confdir = self.workdir / "baresip"
        self.user = user
        self.port = port or free_port("both", span=2)
        self.max_lifetime = max_lifetime
        self.sip_trace = sip_trace
        self._proc: _Process | None = None

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{LOCALHOST}:{self.port}"

    @property
    def addr(self) -> tuple[str, int]:
        return (LOCALHOST, self.port)

    def write_config(self) -> Path:
        mdir = _baresip_module_dir()
        if mdir is None:
            raise PeerError(baresip_available() or "baresip modules missing")
        self.confdir.mkdir(parents=True, exist_ok=True)
        (self.confdir / "config").write_text(
            "poll_method\t\tepoll\n"
            f"sip_listen\t\t{LOCALHOST}:{self.port}\n"
            # nothing here needs DNS; if anything asks, it asks loopback and fails fast
            f"dns_server\t\t{LOCALHOST}:53\n"
            "call_max_calls\t\t1\n"
            f"module_path\t\t{mdir}\n"
            "module_tmp\t\taccount.so\n"
            "module_app\t\tmenu.so\n"
        )
        (self.confdir / "accounts").write_text(f"<{self.uri}>;regint=0;answermode=manual\n")
        (self.confdir / "contacts").write_text("")
        return self.confdir

    @property
    def argv(self) -> list[str]:
        b = _find_binary("baresip") or "baresip"
        a = [b, "-4", "-f", str(self.confdir), "-t", str(self.max_lifetime)]
        if self.sip_trace:
            a.append("-s")
        return a

    def start(self, timeout: float = 10.0) -> Baresip:
        reason = baresip_available()
        if reason:
            raise PeerError(reason)
        self.write_config()
        self._proc = _Process(self.argv, self.workdir, "baresip")
        self._proc.start()
        try:
            sip_options_probe(
                LOCALHOST, self.port, timeout=timeout, request_uri=self.uri, alive=self._proc.alive
            )
        except PeerError as exc:
            self.stop()
            raise PeerError(
                f"baresip did not come up: {exc}\n--- baresip output ---\n{_tail(self.log())}"
            ) from None
        return self

    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc is not None:
            self._proc.stop(grace=timeout)

    def log(self) -> str:
        if self._proc is None:
            return ""
        return self._proc.read_stdout() + self._proc.read_stderr()

    def __enter__(self) -> Baresip:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- loopback capture

_ETH_P_IP = 0x0800
_PACKET_OUTGOING = 4


@dataclass
class CapturedPacket:
    ts: float
    proto: str  # "udp" or "tcp"
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes
    seq: int = 0
    flags: int = 0


@dataclass
class WireMessage:
    """A SIP message as it crossed the loopback interface, byte for byte."""

    ts: float
    transport: str
    src: tuple[str, int]
    dst: tuple[str, int]
    raw: bytes
    message: SipMessage = field(init=False)

    def __post_init__(self) -> None:
        self.message = SipMessage.parse(self.raw)

    @property
    def body(self) -> bytes:
        return self.message.exact_body


class LoopbackCapture:
    """Records IPv4 UDP datagrams and TCP streams on ``lo`` that touch the given ports.

    Byte-exact, whatever the peers write in their logs: this is how a test reads a binary
    CMS body that a SIPp trace cannot hold. Needs an AF_PACKET socket (root or
    CAP_NET_RAW; see loopback_capture_available()). Use as a context manager around the
    exchange; start() returns once the socket is bound, so nothing sent after it is missed.
    """

    def __init__(self, ports: Iterable[int], *, buffer_bytes: int = 16 * 1024 * 1024):
        self.ports = set(ports)
        self.buffer_bytes = buffer_bytes
        self.packets: list[CapturedPacket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.dropped_errors = 0

    def add_port(self, port: int) -> None:
        self.ports.add(port)

    def start(self) -> LoopbackCapture:
        if self._sock is not None:
            return self  # already capturing
        reason = loopback_capture_available()
        if reason:
            raise PeerError(reason)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(_ETH_P_IP))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.buffer_bytes)
        s.bind(("lo", _ETH_P_IP))
        s.setblocking(False)
        self._sock = s
        self._thread = threading.Thread(target=self._loop, name="loopback-capture", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        assert self._sock is not None
        sock = self._sock
        while not self._stop.is_set():
            ready, _, _ = select.select([sock], [], [], 0.05)
            if not ready:
                continue
            while True:
                try:
                    data, addr = sock.recvfrom(262144)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self.dropped_errors += 1
                    break
                # each loopback packet shows up twice: as sent and as received
                if len(addr) > 2 and addr[2] == _PACKET_OUTGOING:
                    continue
                pkt = self._decode(data, time.monotonic())
                if pkt is not None:
                    with self._lock:
                        self.packets.append(pkt)

    def _decode(self, data: bytes, ts: float) -> CapturedPacket | None:
        if len(data) < 20 or data[0] >> 4 != 4:
            return None
        ihl = (data[0] & 0x0F) * 4
        total = struct.unpack("!H", data[2:4])[0] or len(data)  # 0 with big GSO packets
        proto = data[9]
        src_ip = socket.inet_ntoa(data[12:16])
        dst_ip = socket.inet_ntoa(data[16:20])
        seg = data[ihl:total]
        if proto == 17 and len(seg) >= 8:
            sport, dport = struct.unpack("!HH", seg[:4])
            if sport not in self.ports and dport not in self.ports:
                return None
            return CapturedPacket(ts, "udp", (src_ip, sport), (dst_ip, dport), bytes(seg[8:]))
        if proto == 6 and len(seg) >= 20:
            sport, dport, seq = struct.unpack("!HHI", seg[:8])
            if sport not in self.ports and dport not in self.ports:
                return None
            off = (seg[12] >> 4) * 4
            flags = seg[13]
            return CapturedPacket(
                ts, "tcp", (src_ip, sport), (dst_ip, dport), bytes(seg[off:]), seq, flags
            )
        return None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> LoopbackCapture:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def snapshot(self) -> list[CapturedPacket]:
        with self._lock:
            return list(self.packets)

    # -- reassembly
    def tcp_streams(
        self,
    ) -> list[tuple[tuple[str, int], tuple[str, int], float, bytes, list[tuple[int, float]]]]:
        """Each TCP direction of each connection: (src, dst, first ts, bytes, [(offset, ts)])."""
        streams: dict[tuple, dict] = {}
        order: list[tuple] = []
        gen: dict[tuple, int] = {}
        for p in self.snapshot():
            if p.proto != "tcp":
                continue
            base_key = (p.src, p.dst)
            syn = bool(p.flags & 0x02)
            if syn:
                gen[base_key] = gen.get(base_key, 0) + 1
            key = (*base_key, gen.get(base_key, 0))
            st = streams.get(key)
            if st is None:
                st = {"isn": (p.seq + 1) if syn else p.seq, "segs": [], "ts": p.ts}
                streams[key] = st
                order.append(key)
            if p.payload:
                rel = (p.seq - st["isn"]) % (1 << 32)
                st["segs"].append((rel, p.payload, p.ts))
        out = []
        for key in order:
            st = streams[key]
            buf = bytearray()
            marks: list[tuple[int, float]] = []
            for rel, payload, ts in sorted(st["segs"], key=lambda s: s[0]):
                if rel > len(buf):
                    break  # a gap: the capture missed a segment; keep what is contiguous
                new = payload[len(buf) - rel :]
                if new:
                    marks.append((len(buf), ts))
                    buf += new
            out.append((key[0], key[1], st["ts"], bytes(buf), marks))
        return out

    def sip_messages(self) -> list[WireMessage]:
        """Every SIP message seen (UDP datagrams and TCP streams split by Content-Length),
        in time order."""
        msgs: list[WireMessage] = []
        for p in self.snapshot():
            if p.proto == "udp" and p.payload and p.payload[:1] not in (b"\r", b"\n", b"\x00"):
                msgs.append(WireMessage(p.ts, "udp", p.src, p.dst, p.payload))
        for src, dst, ts0, data, marks in self.tcp_streams():
            for offset, raw in split_sip_stream(data):
                ts = ts0
                for mo, mts in marks:
                    if mo <= offset:
                        ts = mts
                    else:
                        break
                msgs.append(WireMessage(ts, "tcp", src, dst, raw))
        msgs.sort(key=lambda m: m.ts)
        return msgs

    def wait_for(
        self, predicate: Callable[[WireMessage], bool], timeout: float = 5.0
    ) -> WireMessage:
        """Wait (bounded) for a captured SIP message matching ``predicate``; the last one."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [m for m in self.sip_messages() if predicate(m)]
            if hits:
                return hits[-1]
            if time.monotonic() >= deadline:
                seen = "\n".join(
                    f"  {m.transport} {m.src}->{m.dst} {m.message.start_line}"
                    for m in self.sip_messages()
                )
                raise PeerError(
                    f"no matching SIP message captured within {timeout:.1f} s; seen:\n{seen}"
                )
            time.sleep(0.02)


def split_sip_stream(data: bytes) -> list[tuple[int, bytes]]:
    """Split a SIP-over-TCP byte stream into (offset, message) by Content-Length.

    CRLF keep-alives between messages are skipped; an incomplete last message is left out.
    """
    out = []
    i = 0
    n = len(data)
    while i < n:
        while i < n and data[i : i + 1] in (b"\r", b"\n"):
            i += 1
        if i >= n:
            break
        end = data.find(b"\r\n\r\n", i)
        if end < 0:
            break
        head = data[i : end + 4]
        cl = SipMessage.parse(head).content_length or 0
        stop = end + 4 + cl
        if stop > n:
            break
        out.append((i, data[i:stop]))
        i = stop
    return out


def b64(data: bytes) -> str:
    """base64 on one line, as the SIPp injection CSV wants it."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")
