"""`messenger agent` and `messenger send` as processes: JSON lines, exit status, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from messenger.pki.identity import save_identity

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _messenger(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "messenger", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        **kw,
    )


class AgentProcess:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "messenger", "agent", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self.lines: list[dict] = []

    def next_event(self, kind: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.lines:
            if event["event"] == kind:
                return event
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            self.lines.append(event)
            if event["event"] == kind:
                return event
        raise AssertionError(f"no {kind!r} line; stderr: {self.proc.stderr.read()[-2000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def folders(pki, tmp_path):
    for user in ("alice", "bob"):
        save_identity(getattr(pki, user), tmp_path / user, None)
    (tmp_path / "ca.pem").write_bytes(pki.ca.certificate.public_bytes(Encoding.PEM))
    return tmp_path


def test_agent_receives_what_send_sends_and_stops_on_sigterm(folders):
    agent = AgentProcess(
        "--aor", "sip:bob@example.test",
        "--identity", str(folders / "bob"),
        "--listen", "udp:127.0.0.1:0",
        "--listen", "tcp:127.0.0.1:0",
        "--trust", str(folders / "ca.pem"),
        "--profile", str(folders / "bob-profile"),
    )  # fmt: skip
    try:
        started = agent.next_event("started")
        target = started["addresses"]["udp"]
        sent = _messenger(
            "send",
            "--identity", str(folders / "alice"),
            "--to", "sip:bob@example.test",
            "--text", "hello from the command line",
            "--target", target,
            "--trust", str(folders / "ca.pem"),
            "--encrypt-to", str(folders / "bob" / "cert.pem"),
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        result = json.loads(sent.stdout)
        assert result["status"] == 200 and result["delivered"] is True
        assert result["encrypted"] is True and result["signed"] is True
        message = agent.next_event("message")
        assert message["text"] == "hello from the command line"
        assert message["from"] == "sip:alice@example.test"
        assert message["report"]["confidentiality"] == "encrypted"
        assert message["report"]["authenticity"] == "revocation-unknown"
        assert message["report"]["sender_match"] is True

    finally:
        status = agent.stop()
    assert status == 0
    assert agent.next_event("stopped")["aor"] == "sip:bob@example.test"


def test_send_to_nobody_exits_1(folders):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sent = _messenger(
        "send",
        "--identity", str(folders / "alice"),
        "--to", "sip:bob@example.test",
        "--text", "anyone?",
        "--target", f"127.0.0.1:{port}",
        "--transport", "tcp",
    )  # fmt: skip
    assert sent.returncode == 1
    assert json.loads(sent.stdout)["delivered"] is False
    assert "not delivered" in sent.stderr


def test_agent_usage_errors_exit_2(folders):
    bad = _messenger(
        "agent", "--aor", "not a uri", "--identity", str(folders / "bob"),
        "--listen", "udp:127.0.0.1:0",
    )  # fmt: skip
    assert bad.returncode == 2 and "--aor" in bad.stderr
    bad = _messenger(
        "agent", "--aor", "sip:bob@example.test", "--identity", str(folders / "bob"),
        "--listen", "udp:127.0.0.1",
    )  # fmt: skip
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
