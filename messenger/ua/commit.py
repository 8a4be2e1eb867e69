"""Group commit of received messages: durable before answered, without one fsync each.

The store commits with ``synchronous=FULL``: every transaction waits for the disk. One
transaction per received message would cap the agent at one message per disk flush.
`IncomingCommits` collects the messages that arrive while a flush is under way and writes
them in the next transaction, on a writer thread, so the event loop keeps verifying while
the disk works. A message that finds the writer idle waits a few milliseconds for others
to join it: every transaction costs a flush and a rewrite of the index pages it touches,
whether it holds one message or twenty. Each message's callback runs on the loop thread
once its transaction is committed (with the row id) or has failed (with the `StoreError`):
only then is the 200 (or the 500) sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from messenger.ua.store import MessageStore, StoreError

__all__ = ["Committed", "IncomingCommits"]

#: Called on the loop thread with (row id, None) once committed, or (None, error).
Committed = Callable[[int | None, StoreError | None], None]

_MAX_BATCH = 256
#: How long (seconds) a message that finds the writer idle waits for others to share its
#: transaction. Far below what a sender notices, and below its first retransmission.
LINGER = 0.01

logger = logging.getLogger(__name__)


class IncomingCommits:
    """Writes received messages to ``store`` in batches, one transaction per batch."""

    def __init__(self, store: MessageStore, *, linger: float = LINGER) -> None:
        self.store = store
        self.linger = linger
        self._queue: list[tuple[dict[str, Any], Committed]] = []
        self._keys: set[tuple[str, str]] = set()
        self._busy = False  # a write is under way or about to start
        self._idle: asyncio.Event | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")

    def pending(self, peer: str, message_id: str) -> bool:
        """Whether a message with this id from ``peer`` is waiting for its commit."""
        return (peer, message_id) in self._keys

    def add(self, row: dict[str, Any], done: Committed) -> None:
        """Queue ``row`` (the keyword arguments of `MessageStore.add_incoming`)."""
        self._queue.append((row, done))
        if row.get("message_id") is not None:
            self._keys.add((row["peer"], row["message_id"]))
        if not self._busy:
            self._busy = True
            if self._idle is not None:
                self._idle.clear()
            if self.linger > 0:
                asyncio.get_running_loop().call_later(self.linger, self._start)
            else:
                self._start()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
        future = loop.run_in_executor(self._executor, self._write, [row for row, _ in batch])
        future.add_done_callback(lambda f: self._finished(batch, f))

    def _write(self, rows: list[dict[str, Any]]) -> list[int | None] | StoreError:
        """On the writer thread: one transaction for the batch, then the row ids."""
        try:
            return list(self.store.add_incoming_batch(rows))
        except StoreError as exc:
            return exc

    def _finished(self, batch: list[tuple[dict[str, Any], Committed]], future) -> None:
        try:
            result = future.result()
        except Exception as exc:  # the writer thread never raises; a cancelled loop might
            result = StoreError(f"the messages could not be stored: {exc}")
        for index, (row, done) in enumerate(batch):
            if row.get("message_id") is not None:
                self._keys.discard((row["peer"], row["message_id"]))
            try:
                if isinstance(result, StoreError):
                    done(None, result)
                else:
                    done(result[index], None)
            except Exception:  # one failing answer must not keep the others waiting
                logger.exception("answering a committed message failed")
        if self._queue:  # arrived during the write: they have waited long enough
            self._start()
            return
        self._busy = False
        if self._idle is not None:
            self._idle.set()

    async def idle(self) -> None:
        """Wait until every queued message is committed (or failed)."""
        if not self._busy and not self._queue:
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        await self._idle.wait()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
