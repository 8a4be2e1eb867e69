"""The one place where user-agent events become Qt signals.

The agent calls its subscribers on the event loop thread, which under qasync is the GUI
thread, so the signals are emitted directly. Every window part listens here; none
subscribes to the agent on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QObject, Signal

from messenger.ua import events as ev

__all__ = ["AgentBridge"]


class AgentBridge(QObject):
    """Re-emits the events of one user agent as typed Qt signals."""

    event = Signal(object)  # every event, in order
    messageReceived = Signal(object)  # ev.MessageReceived
    messageRefused = Signal(object)  # ev.MessageRefused
    deliveryChanged = Signal(object)  # ev.DeliveryChanged
    response = Signal(object)  # ev.Response
    certificateLearned = Signal(object)  # ev.CertificateLearned
    capabilityLearned = Signal(object)  # ev.CapabilityLearned
    notice = Signal(object)  # ev.Notice
    sipTrace = Signal(object)  # ev.SipTrace
    registration = Signal(object)  # Registered, Unregistered, RegistrationFailed
    transfer = Signal(object)  # ev.TransferProgress
    #: A message or file sent from this agent was stored (ev.MessageStored): it shows pending.
    messageStored = Signal(object)
    #: A trust decision was taken from this window (peer, decision).
    trustDecided = Signal(str, str)

    _ROUTES: tuple[tuple[type, str], ...] = (
        (ev.MessageReceived, "messageReceived"),
        (ev.MessageRefused, "messageRefused"),
        (ev.DeliveryChanged, "deliveryChanged"),
        (ev.Response, "response"),
        (ev.CertificateLearned, "certificateLearned"),
        (ev.CapabilityLearned, "capabilityLearned"),
        (ev.Notice, "notice"),
        (ev.SipTrace, "sipTrace"),
        (ev.Registered, "registration"),
        (ev.Unregistered, "registration"),
        (ev.RegistrationFailed, "registration"),
        (ev.TransferProgress, "transfer"),
        (ev.MessageStored, "messageStored"),
    )

    def __init__(self, agent: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.agent = agent
        self._tasks: set[asyncio.Task] = set()
        self._unsubscribe: Callable[[], None] | None = agent.subscribe(self._on_event)

    # -- events ----------------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        self.event.emit(event)
        for kind, name in self._ROUTES:
            if isinstance(event, kind):
                getattr(self, name).emit(event)
                break

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- running work without freezing the window --------------------------------------------

    def run(
        self,
        coro: Awaitable[Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> asyncio.Task:
        """Schedule a coroutine on the loop; call back on the GUI thread when it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def finished(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:
                if on_error is not None:
                    on_error(exc)
                else:
                    self.notice.emit(
                        ev.Notice(
                            at=datetime.now(UTC),
                            level="error",
                            text=f"Something went wrong: {exc}",
                        )
                    )
                return
            if on_done is not None:
                on_done(t.result())

        task.add_done_callback(finished)
        return task

    def log_event(self, kind: str, data: dict[str, Any]) -> None:
        """Append to the usability-study log of the profile (warnings shown, decisions)."""
        self.agent.store.log_event(kind, data, at=datetime.now(UTC))

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work (crypto on large bodies) in the loop's executor."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
