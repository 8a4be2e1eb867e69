"""The product's own command line as a peer: `messenger agent` and `messenger send` run as
real processes on loopback, for the interop, crash and load tests.

`AgentProcess` starts ``python -m messenger agent ...`` in its own process group, reads
the JSON object it prints per event on a thread, and lets a test wait (bounded) for an
event. `run_send` runs ``messenger send`` once and returns its JSON answer. `Pki` makes
a demo CA and identity folders the way a user would have them (key.pem, cert.pem).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from peers import LOCALHOST, PeerError, free_port, wait_port_bound

REPO = Path(__file__).resolve().parents[2]


def messenger_env() -> dict[str, str]:
    """The environment that makes ``python -m messenger`` import this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def agent_available(timeout: float = 60.0) -> str | None:
    """None when ``messenger agent`` and ``messenger send`` exist, else what is missing."""
    for command in ("agent", "send"):
        proc = subprocess.run(
            [sys.executable, "-m", "messenger", command, "--help"],
            capture_output=True,
            env=messenger_env(),
            cwd=REPO,
            timeout=timeout,
        )
        if proc.returncode != 0:
            return f"`messenger {command}` is not available: {proc.stderr.decode()[-300:]}"
    return None


# --------------------------------------------------------------------------- identities


@dataclass
class Pki:
    """A demo CA with its CRL and identity folders under ``folder``."""

    folder: Path
    ca: object  # messenger.pki.authority.Authority
    now: datetime

    @classmethod
    def create(cls, folder: Path) -> Pki:
        from cryptography.hazmat.primitives.serialization import Encoding

        from messenger.pki.authority import create_authority

        now = datetime.now(UTC) - timedelta(hours=1)
        folder.mkdir(parents=True, exist_ok=True)
        ca = create_authority("Interop Test CA", now=now)
        (folder / "ca.pem").write_bytes(ca.certificate.public_bytes(Encoding.PEM))
        (folder / "crl.pem").write_bytes(ca.crl(now=now).public_bytes(Encoding.PEM))
        return cls(folder, ca, now)

    @property
    def ca_pem(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def crl_pem(self) -> Path:
        return self.folder / "crl.pem"

    def identity(self, aor: str, name: str | None = None):
        """Create (once) and return the Identity of ``aor``; its folder is `folder_of`."""
        from cryptography.hazmat.primitives.serialization import Encoding

        from messenger.pki.identity import create_identity, load_identity, save_identity

        target = self.folder_of(aor, name)
        if (target / "cert.pem").exists() or (target / "key.pem").exists():
            return load_identity(target, None)
        ident = create_identity(aor, authority=self.ca, now=self.now)
        save_identity(ident, target, None)
        (self.folder / f"{target.name}.cert.pem").write_bytes(
            ident.encryption_certificate.public_bytes(Encoding.PEM)
        )
        return ident

    def folder_of(self, aor: str, name: str | None = None) -> Path:
        return self.folder / (name or aor.split(":", 1)[1].split("@", 1)[0])

    def cert_pem(self, aor: str, name: str | None = None) -> Path:
        """The PEM file of the identity's (encryption) certificate."""
        return self.folder / f"{self.folder_of(aor, name).name}.cert.pem"


# --------------------------------------------------------------------------- the agent


class AgentProcess:
    """``messenger agent`` as a child process; its events as parsed JSON objects."""

    def __init__(
        self,
        workdir: Path,
        *,
        aor: str,
        identity: Path,
        listens: Sequence[str] | None = None,
        trust: Iterable[Path] = (),
        crls: Iterable[Path] = (),
        profile: Path | None = None,
        contacts: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        name: str = "agent",
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.aor = aor
        self.identity = Path(identity)
        self.listens = list(listens or [f"udp:{LOCALHOST}:{free_port('both')}"])
        self.trust = list(trust)
        self.crls = list(crls)
        self.profile = Path(profile) if profile else self.workdir / f"{name}-profile"
        self.contacts = dict(contacts or {})
        self.extra_args = list(extra_args)
        self.name = name
        self.events: list[dict] = []
        self.bad_lines: list[str] = []
        self._cond = threading.Condition()
        self._popen: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self.stderr_path = self.workdir / f"{name}.stderr"

    # -- addresses
    def address(self, transport: str = "udp") -> tuple[str, int]:
        for listen in self.listens:
            kind, host, port = listen.split(":")
            if kind == transport:
                return host, int(port)
        raise KeyError(f"the agent does not listen on {transport}")

    def target(self, transport: str = "udp") -> str:
        host, port = self.address(transport)
        return f"{host}:{port}"

    @property
    def argv(self) -> list[str]:
        a = [sys.executable, "-m", "messenger", "agent", "--aor", self.aor]
        a += ["--identity", str(self.identity), "--profile", str(self.profile)]
        for listen in self.listens:
            a += ["--listen", listen]
        for t in self.trust:
            a += ["--trust", str(t)]
        for c in self.crls:
            a += ["--crl", str(c)]
        for aor, where in self.contacts.items():
            a += ["--contact", f"{aor}={where}"]
        return a + self.extra_args

    # -- life cycle
    def start(self, timeout: float = 30.0) -> AgentProcess:
        if self._popen is not None and self._popen.poll() is None:
            raise PeerError(f"{self.name} already running")
        with self.stderr_path.open("ab") as err:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=self.workdir,
                env=messenger_env(),
                start_new_session=True,
            )
        self._reader = threading.Thread(
            target=self._read, args=(self._popen,), name=f"{self.name}-stdout", daemon=True
        )
        self._reader.start()
        try:
            for listen in self.listens:
                kind, _, port = listen.split(":")
                wait_port_bound(
                    int(port),
                    "udp" if kind == "udp" else "tcp",
                    timeout=timeout,
                    alive=self.alive,
                    what=f"messenger agent ({listen})",
                )
        except PeerError as exc:
            self.stop()
            raise PeerError(f"{exc}\n--- agent stderr ---\n{self.stderr()[-3000:]}") from None
        return self

    def _read(self, popen: subprocess.Popen) -> None:
        assert popen.stdout is not None
        for raw in popen.stdout:
            event = self._event(raw)
            if event is None:
                continue
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def _event(self, raw: bytes) -> dict | None:
        """The event of one line of the agent's output; None for a blank or bad line (a
        bad one is kept in ``bad_lines``)."""
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            return None
        try:
            return json.loads(line)
        except ValueError:
            with self._cond:
                self.bad_lines.append(line)
            return None

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def kill(self) -> None:
        """SIGKILL the agent (and anything in its group): the crash of the crash test."""
        if self._popen is not None and self._popen.poll() is None:
            try:
                os.killpg(self._popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._popen.wait(timeout=10)
        self._join_reader()

    def stop(self, grace: float = 10.0) -> int | None:
        """Interrupt (SIGINT, as Ctrl-C), then SIGKILL after ``grace`` seconds."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            try:
                os.killpg(self._popen.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self._popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._join_reader()
        return self._popen.poll()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- events
    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def snapshot(self) -> list[dict]:
        with self._cond:
            return list(self.events)

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.snapshot() if e.get("event") == kind]

    def wait_event(self, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        """The first event (old or new) matching ``predicate``; PeerError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if predicate(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or (self._popen is not None and self._popen.poll() is not None):
                    break
                self._cond.wait(min(left, 0.2))
        raise PeerError(
            f"no matching event from {self.name} within {timeout:.1f} s "
            f"(alive={self.alive()}); events:\n"
            + "\n".join(json.dumps(e)[:300] for e in self.snapshot()[-20:])
            + f"\n--- agent stderr ---\n{self.stderr()[-3000:]}"
        )

    def describe(self) -> str:
        return (
            f"argv: {' '.join(self.argv)}\nreturncode: {self.returncode}\n"
            f"events:\n"
            + "\n".join(json.dumps(e)[:300] for e in self.snapshot()[-30:])
            + f"\n--- stderr ---\n{self.stderr()[-3000:]}"
        )


# --------------------------------------------------------------------------- send


@dataclass
class SendOutcome:
    returncode: int
    answer: dict | None  # the JSON object `messenger send` printed (None if none)
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"exit {self.returncode}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}"
        )


def send_argv(
    *,
    identity: Path,
    to: str,
    text: str,
    target: str | None = None,
    proxy: str | None = None,
    transport: str | None = None,
    encrypt_to: Path | None = None,
    no_sign: bool = False,
    trust: Iterable[Path] = (),
    profile: Path | None = None,
) -> list[str]:
    a = [sys.executable, "-m", "messenger", "send", "--identity", str(identity)]
    a += ["--to", to, "--text", text]
    if target:
        a += ["--target", target]
    if proxy:
        a += ["--proxy", proxy]
    if transport:
        a += ["--transport", transport]
    if encrypt_to:
        a += ["--encrypt-to", str(encrypt_to)]
    if no_sign:
        a.append("--no-sign")
    for t in trust:
        a += ["--trust", str(t)]
    if profile:
        a += ["--profile", str(profile)]
    return a


def parse_send_output(stdout: str) -> dict | None:
    """The last JSON object ``messenger send`` printed on stdout."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    try:
        return json.loads(stdout)
    except ValueError:
        return None


def run_send(timeout: float = 60.0, cwd: Path | None = None, **kw) -> SendOutcome:
    """Run ``messenger send`` once (bounded) and collect its answer."""
    proc = subprocess.run(
        send_argv(**kw),
        capture_output=True,
        env=messenger_env(),
        cwd=cwd or REPO,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout.decode("utf-8", "replace")
    return SendOutcome(
        proc.returncode, parse_send_output(out), out, proc.stderr.decode("utf-8", "replace")
    )
