"""The demo: a demo CA, Alice and Bob, two user agents on loopback and their windows.

`messenger demo` writes a demo CA and the identities sip:alice@example.test and
sip:bob@example.test into a temporary folder, starts both agents on 127.0.0.1 in direct
mode (each knows where the other listens, and each has the other's certificate, as a
company directory would give it), and opens both windows side by side. Each window has a
Simulate menu that makes what a usability study needs arrive on that side.

With ``--screenshot DIR`` it exchanges a first signed-and-encrypted message each way,
saves ``alice.png`` and ``bob.png`` into DIR and exits; ``--quit-after SECONDS`` bounds
the run (without a screenshot the windows simply close after that time).
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from messenger.pki.authority import Authority, create_authority, save_authority
from messenger.pki.identity import create_identity, save_identity
from messenger.ua.agent import AccountConfig, Listen, UserAgent

__all__ = ["ALICE", "BOB", "Demo", "run_demo", "start_demo"]

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"

FIRST_WORDS = {
    ALICE: "Hello Bob! This message is signed by me and encrypted to you.",
    BOB: "Hi Alice, got it: verified and encrypted. Here is mine back.",
}


@dataclass
class Demo:
    folder: Path
    authority: Authority
    agents: dict[str, UserAgent] = field(default_factory=dict)

    def other(self, aor: str) -> str:
        return BOB if aor == ALICE else ALICE

    async def stop(self) -> None:
        for agent in self.agents.values():
            await agent.stop()


async def start_demo(folder: Path) -> Demo:
    """Create the CA and identities in `folder` and start both agents on loopback."""
    now = datetime.now(UTC)
    authority = create_authority("Messenger Demo CA", now=now)
    save_authority(authority, folder / "ca", None)
    crl = authority.crl(now=now)
    identities = {}
    for aor in (ALICE, BOB):
        identity = create_identity(aor, authority=authority, now=now)
        name = aor.split(":", 1)[1].split("@", 1)[0]
        save_identity(identity, folder / name / "identity", None)
        identities[aor] = identity
    demo = Demo(folder, authority)
    for aor, identity in identities.items():
        name = aor.split(":", 1)[1].split("@", 1)[0]
        config = AccountConfig(
            aor=aor,
            identity=identity,
            profile=folder / name,
            listens=[Listen("udp", "127.0.0.1", 0), Listen("tcp", "127.0.0.1", 0)],
            trust_anchors=[authority.certificate],
            crls=[crl],
        )
        demo.agents[aor] = UserAgent(config)
    for aor, agent in demo.agents.items():
        other = demo.other(aor)
        # the directory gives each the other's certificate: the first message is encrypted
        agent.store.learn_certificate(
            other, identities[other].certificate.public_bytes(Encoding.DER), at=now
        )
    try:
        for agent in demo.agents.values():
            await agent.start()
    except BaseException:
        await demo.stop()
        raise
    for aor, agent in demo.agents.items():
        other = demo.agents[demo.other(aor)]
        host, port = other.addresses["tcp"]
        agent.config.contacts[demo.other(aor)] = f"tcp:{host}:{port}"
    return demo


async def _exchange(demo: Demo, windows: dict) -> tuple[bool, str]:
    """Alice writes to Bob, then Bob answers, through their windows' composers."""
    for sender in (ALICE, BOB):
        receiver = demo.other(sender)
        window = windows[sender]
        loop = asyncio.get_running_loop()
        received = loop.create_future()
        sent = loop.create_future()

        def on_message(event, fut=received, who=sender) -> None:
            if event.sender == who and not fut.done():
                fut.set_result(event)

        windows[receiver].bridge.messageReceived.connect(on_message)
        window.sendFinished.connect(lambda result, fut=sent: fut.done() or fut.set_result(result))
        window.open_conversation(receiver)
        window.composer.set_mode("sign-encrypt")
        window.composer.edit.setPlainText(FIRST_WORDS[sender])
        window.composer.send()
        result = await sent
        if not result.delivered:
            return False, f"{sender} -> {receiver}: {result.status} {result.explanation}"
        if not result.encrypted or not result.signed:
            return False, f"{sender} -> {receiver} was not signed and encrypted"
        event = await received
        report = event.report or {}
        if report.get("confidentiality") != "encrypted" or not report.get("green"):
            return False, (
                f"{receiver} saw {report.get('confidentiality')}, {report.get('authenticity')}"
            )
    return True, ""


async def _settle(windows: dict, timeout: float) -> None:
    """Wait for the delivery notifications to reach both windows (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        done = True
        for window in windows.values():
            model = window.conversation_model
            for row in range(model.rowCount()):
                message = model.message(row)
                if message.direction == "out" and message.delivery in ("pending", "sent"):
                    done = False
        if done:
            return
        await asyncio.sleep(0.05)


async def _demo(folder: Path, screenshot: Path | None, quit_after: float | None) -> int:
    from PySide6.QtWidgets import QApplication

    from messenger.gui.agent_bridge import AgentBridge
    from messenger.gui.main_window import MainWindow
    from messenger.ua.simulate import Simulator

    demo = await start_demo(folder)
    windows: dict[str, MainWindow] = {}
    simulators = []
    loop = asyncio.get_running_loop()
    all_closed = loop.create_future()
    try:
        for aor, agent in demo.agents.items():
            simulator = Simulator(agent, peer=demo.other(aor), authority=demo.authority)
            simulators.append(simulator)
            window = MainWindow(
                AgentBridge(agent),
                contacts=[demo.other(aor)],
                simulator=simulator,
                title=f"Messenger demo — {aor.split(':', 1)[1]}",
            )
            windows[aor] = window

        def closed() -> None:
            if not all_closed.done() and not any(w.isVisible() for w in windows.values()):
                all_closed.set_result(None)

        screen = QApplication.primaryScreen().availableGeometry()
        width = max(640, min(860, screen.width() // 2 - 8))
        height = max(560, min(680, screen.height() - 40))
        if screenshot is not None:
            width, height = 860, 640
        for i, aor in enumerate((ALICE, BOB)):
            window = windows[aor]
            window.closed.connect(closed)
            window.resize(width, height)
            window.move(screen.x() + i * (width + 16), screen.y() + 20)
            window.show()
        print(f"Demo CA, {ALICE} and {BOB} are in {folder}", flush=True)
        if screenshot is not None:
            bound = quit_after if quit_after is not None else 60.0
            try:
                ok, problem = await asyncio.wait_for(_exchange(demo, windows), bound)
            except TimeoutError:
                ok, problem = False, f"the exchange did not finish within {bound:g} s"
            await _settle(windows, 3.0)
            screenshot.mkdir(parents=True, exist_ok=True)
            for aor, window in windows.items():
                window.open_conversation(demo.other(aor))
                window.view.scrollToBottom()
            await asyncio.sleep(0.1)  # let Qt lay out and paint before grabbing
            for aor, window in windows.items():
                path = screenshot / f"{aor.split(':', 1)[1].split('@', 1)[0]}.png"
                if not window.grab().save(str(path)):
                    ok, problem = False, f"cannot write {path}"
                else:
                    print(f"saved {path}", flush=True)
            for window in windows.values():
                window.close()
            if not ok:
                print(f"messenger demo: {problem}", flush=True)
            return 0 if ok else 1
        if quit_after is not None:
            loop.call_later(quit_after, lambda: [w.close() for w in windows.values()])
        await all_closed
        return 0
    finally:
        for window in windows.values():
            if window.isVisible():
                window.close()
        for simulator in simulators:
            simulator.close()
        await demo.stop()


def run_demo(
    folder: Path | None = None,
    *,
    screenshot: Path | None = None,
    quit_after: float | None = None,
) -> int:
    """Run the demo windows until they close (or until the screenshots are saved)."""
    from messenger.gui.app import create_application, run_on_qt_loop

    app = create_application()
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="messenger-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    return run_on_qt_loop(app, _demo(folder, screenshot, quit_after))
