"""The user agent's durable store: one SQLite file, ``history.sqlite3``, per profile.

What it keeps: the message history of every conversation (with the security report of
each message), what was learned about peers (certificates, capabilities), the serialized
trust store, the usability-study event log and the settings of the window and account.

The promise
-----------
A process killed at any moment (SIGKILL, power loss) loses no message that was answered
200 and no outgoing message the user sent. Therefore:

* every method that writes commits before it returns (the connection runs in autocommit
  mode and multi-statement writes use an explicit ``BEGIN IMMEDIATE ... COMMIT``);
* the database runs in WAL mode with ``synchronous=FULL``, so a commit has been
  ``fsync``-ed to the write-ahead log when the method returns;
* the user agent calls :meth:`MessageStore.add_outgoing` *before* anything is sent and
  :meth:`MessageStore.add_incoming` *before* the 200 is sent.

Threads
-------
One connection (``check_same_thread=False``) guarded by a :class:`threading.RLock`: the
store may be used from the asyncio thread and from executor threads. Every call is short;
none of them waits on the network.

Time
----
Time is a parameter (``at``: a timezone-aware :class:`datetime`). It is stored as integer
microseconds since the Unix epoch, UTC, and handed back as an aware UTC ``datetime``.

Errors
------
:class:`StoreError` for everything that goes wrong with the file or the database (folder
not writable, file corrupt, written by a newer version, disk full, profile locked);
:class:`UnknownMessageError` (a ``StoreError``) when a message id is not in the store;
``ValueError`` / ``TypeError`` for arguments that are wrong (a naive datetime, an
unknown delivery state, a report that is not JSON-able).

Schema changes
--------------
``schema_version`` holds one row with the version of the schema. ``_MIGRATIONS[n]`` is
the list of statements that takes a database from version ``n`` to ``n + 1``; opening a
store applies the missing ones in one transaction. Version 2 added the unprotected parts
that came beside the protected one (``messages.outside``) and the ``message_raw`` table:
the SIP request that carried each message, kept apart so that reading a conversation
never touches it. A file whose version is higher than
:data:`SCHEMA_VERSION` is refused (it was written by a newer program).

Only the standard library is used.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "DB_FILENAME",
    "DELIVERY_STATES",
    "OUTSIDE_PARTS_MAX",
    "OUTSIDE_PART_MAX",
    "RAW_REQUEST_MAX",
    "SCHEMA_VERSION",
    "ConversationSummary",
    "MessageStore",
    "OutsidePart",
    "RawRequest",
    "StoreError",
    "StoredMessage",
    "UnknownMessageError",
]

DB_FILENAME = "history.sqlite3"
SCHEMA_VERSION = 2

#: States of an outgoing message. Incoming messages have the state ``received``.
DELIVERY_STATES = frozenset({"pending", "sent", "delivered", "displayed", "failed", "refused"})
RECEIVED = "received"

#: The successful states rank: a late 200 (``sent``) after an IMDN ``delivered``, or a
#: ``delivered`` after a ``displayed`` does not move the state back.
_PROGRESS_RANK = {"sent": 1, "delivered": 2, "displayed": 3}

#: The capability name under which "the peer has our certificate" (RFC 8591 7.1) is kept.
PEER_HAS_CERTIFICATE = "peer-has-our-certificate"

#: How many characters of the last message a conversation summary carries.
SUMMARY_CHARS = 200

#: How many unprotected parts are kept per message, and how many bytes of each: enough to
#: show what came beside the protected content, never a second copy of a large body.
OUTSIDE_PARTS_MAX = 8
OUTSIDE_PART_MAX = 16 * 1024

#: The bytes kept of the request that carried a message. A MESSAGE is limited to 64 KiB of
#: content, so this keeps every SIP request whole; anything longer is cut, and the stored
#: size says how long it was.
RAW_REQUEST_MAX = 256 * 1024

#: What ``message_raw.kind`` holds.
RAW_KINDS = frozenset({"sip-request", "msrp-headers"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class StoreError(Exception):
    """The store cannot do what was asked: the file, the folder or the database failed."""


class UnknownMessageError(StoreError):
    """No message with the given message id is in the store."""


# --------------------------------------------------------------------------------------
# value types
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutsidePart:
    """Content that came beside the protected part (for example a text part next to a
    signed one in a multipart/mixed): no signature of the message covers it, so it is
    shown outside the protected frame. ``content`` holds at most :data:`OUTSIDE_PART_MAX`
    bytes; ``size`` is the size of the part as it arrived."""

    content_type: str
    content: bytes
    size: int

    @property
    def truncated(self) -> bool:
        return self.size > len(self.content)

    @property
    def is_text(self) -> bool:
        return self.content_type.split(";")[0].strip().lower().startswith("text/")

    @property
    def text(self) -> str:
        """The part decoded as UTF-8 (invalid bytes replaced)."""
        return self.content.decode("utf-8", errors="replace")

    def describe(self) -> str:
        """What a person reads for the part: its text, or its type and size."""
        if self.is_text:
            return self.text + (f" … (cut; {self.size} bytes in all)" if self.truncated else "")
        return f"({self.content_type}, {self.size} bytes)"

    @classmethod
    def of(cls, content_type: str | None, content: bytes | bytearray | memoryview) -> OutsidePart:
        """A part as it is kept: the first :data:`OUTSIDE_PART_MAX` bytes and the size."""
        data = bytes(content[:OUTSIDE_PART_MAX])
        return cls(content_type or "text/plain", data, len(content))

    def to_json(self) -> dict:
        return {
            "content_type": self.content_type,
            "size": self.size,
            "data": base64.b64encode(self.content).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutsidePart:
        return cls(
            str(data["content_type"]),
            base64.b64decode(data["data"]),
            int(data["size"]),
        )


@dataclass(frozen=True)
class RawRequest:
    """What carried a message over the wire, as kept in the store.

    ``kind`` is ``sip-request`` (the whole SIP request: the one received, or the last one
    sent) or ``msrp-headers`` (the MSRP framing of a message that came in a session).
    ``data`` holds at most :data:`RAW_REQUEST_MAX` bytes; ``size`` is the full length.
    """

    kind: str
    data: bytes
    size: int

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)


@dataclass(frozen=True)
class StoredMessage:
    """One message of a conversation as it is in the store."""

    rowid: int
    direction: str  # 'in' | 'out'
    peer: str
    local: str
    message_id: str | None
    content_type: str | None
    content: bytes | None
    report: dict | None
    delivery: str  # pending, sent, delivered, displayed, failed, refused; 'received' for 'in'
    status: int | None
    reason: str
    at: datetime
    transport: str
    read_at: datetime | None = None  # when the user read it (incoming); ``at`` for outgoing
    #: unprotected parts that came beside the protected content, in their order
    outside: tuple[OutsidePart, ...] = ()

    @property
    def text(self) -> str:
        """The content decoded as UTF-8 (invalid bytes replaced); ``''`` if there is none."""
        if self.content is None:
            return ""
        return self.content.decode("utf-8", errors="replace")

    @property
    def unread(self) -> bool:
        return self.direction == "in" and self.read_at is None


@dataclass(frozen=True)
class ConversationSummary:
    """One line of the conversation list."""

    peer: str
    last_text: str  # first 200 characters of the last message
    last_at: datetime
    unread: int
    last_authenticity: str | None  # the 'authenticity' of the last message's report


# --------------------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------------------

# _MIGRATIONS[n] takes the schema from version n to version n + 1.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # --- messages -----------------------------------------------------------------
        """CREATE TABLE messages (
            id            INTEGER PRIMARY KEY,
            direction     TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
            peer          TEXT    NOT NULL,
            local         TEXT    NOT NULL,
            message_id    TEXT,
            content_type  TEXT,
            content       BLOB,
            report        TEXT,
            delivery      TEXT    NOT NULL,
            status        INTEGER,
            reason        TEXT    NOT NULL DEFAULT '',
            at_us         INTEGER NOT NULL,
            delivery_at_us INTEGER,
            read_at_us    INTEGER,
            transport     TEXT    NOT NULL,
            raw           BLOB
        )""",
        # the conversation, oldest first by (at, id): the rowid is the implicit last
        # column of every index, so this index also gives the (at_us, id) order
        "CREATE INDEX idx_messages_peer_at ON messages (peer, at_us)",
        # replay check
        "CREATE INDEX idx_messages_peer_msgid ON messages (peer, message_id)",
        # lookups by message id (IMDN, final responses)
        "CREATE INDEX idx_messages_msgid ON messages (message_id)",
        # our own message ids are unique
        """CREATE UNIQUE INDEX idx_messages_out_msgid ON messages (message_id)
            WHERE direction = 'out' AND message_id IS NOT NULL""",
        # re-sending after a restart
        """CREATE INDEX idx_messages_pending ON messages (at_us)
            WHERE direction = 'out' AND delivery = 'pending'""",
        # unread counts
        """CREATE INDEX idx_messages_unread ON messages (peer)
            WHERE direction = 'in' AND read_at_us IS NULL""",
        # --- peers ----------------------------------------------------------------------
        """CREATE TABLE peer_certificates (
            aor           TEXT    PRIMARY KEY,
            der           BLOB    NOT NULL,
            learned_at_us INTEGER NOT NULL,
            seen_at_us    INTEGER NOT NULL
        )""",
        """CREATE TABLE certificate_history (
            id            INTEGER PRIMARY KEY,
            aor           TEXT    NOT NULL,
            der           BLOB    NOT NULL,
            learned_at_us INTEGER NOT NULL
        )""",
        "CREATE INDEX idx_certificate_history_aor ON certificate_history (aor, learned_at_us)",
        """CREATE TABLE capabilities (
            aor     TEXT    NOT NULL,
            name    TEXT    NOT NULL,
            value   INTEGER NOT NULL,
            at_us   INTEGER NOT NULL,
            reason  TEXT    NOT NULL DEFAULT '',
            PRIMARY KEY (aor, name)
        ) WITHOUT ROWID""",
        # --- trust store, events, settings -------------------------------------------
        """CREATE TABLE trust (
            id    INTEGER PRIMARY KEY CHECK (id = 1),
            data  TEXT    NOT NULL
        )""",
        """CREATE TABLE events (
            id     INTEGER PRIMARY KEY,
            kind   TEXT    NOT NULL,
            at_us  INTEGER NOT NULL,
            data   TEXT    NOT NULL
        )""",
        "CREATE INDEX idx_events_at ON events (at_us)",
        """CREATE TABLE settings (
            key    TEXT PRIMARY KEY,
            value  TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # the unprotected parts beside the protected one: JSON, NULL when there are none
        "ALTER TABLE messages ADD COLUMN outside TEXT",
        # the request that carried a message, one row per message, keyed by its row id;
        # never read with the conversation. When the request ends with the body kept in
        # messages.raw, only its head is here and ``shared`` says how many bytes of the
        # end of messages.raw complete it (the body is not written twice).
        """CREATE TABLE message_raw (
            message  INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
            kind     TEXT    NOT NULL,
            data     BLOB    NOT NULL,
            size     INTEGER NOT NULL,
            shared   INTEGER NOT NULL DEFAULT 0
        )""",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_MESSAGE_COLUMNS = (
    "id, direction, peer, local, message_id, content_type, content, report, delivery, "
    "status, reason, at_us, transport, read_at_us, outside"
)

# The queries whose plans matter for a conversation of 100,000 messages. The tests check
# with EXPLAIN QUERY PLAN that they are answered from an index.
_SQL: dict[str, str] = {
    "messages_page": (
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE peer = ? "
        "ORDER BY at_us, id LIMIT ? OFFSET ?"
    ),
    "count": "SELECT count(*) FROM messages WHERE peer = ?",
    "has_message_id": (
        "SELECT 1 FROM messages WHERE peer = ? AND message_id = ? AND direction = 'in' LIMIT 1"
    ),
    "message_by_id": (
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE message_id = ? "
        "ORDER BY direction = 'out' DESC, id DESC LIMIT 1"
    ),
    "pending": (
        f"SELECT {_MESSAGE_COLUMNS} FROM messages "
        "WHERE direction = 'out' AND delivery = 'pending' ORDER BY at_us, id"
    ),
    "unread": (
        "SELECT count(*) FROM messages WHERE peer = ? AND direction = 'in' AND read_at_us IS NULL"
    ),
    "mark_read": (
        "UPDATE messages SET read_at_us = ? "
        "WHERE peer = ? AND direction = 'in' AND read_at_us IS NULL"
    ),
    # the distinct peers by a loose index scan: one index seek per peer, not per message
    "peers": (
        "WITH RECURSIVE p(peer) AS ("
        " SELECT min(peer) FROM messages"
        " UNION ALL"
        " SELECT (SELECT min(peer) FROM messages WHERE peer > p.peer) FROM p"
        " WHERE p.peer IS NOT NULL"
        ") SELECT peer FROM p WHERE peer IS NOT NULL"
    ),
    "last_message": (
        "SELECT substr(content, 1, ?), report, at_us FROM messages WHERE peer = ? "
        "ORDER BY at_us DESC, id DESC LIMIT 1"
    ),
}

_INSERT_MESSAGE = (
    "INSERT INTO messages (direction, peer, local, message_id, content_type, content, "
    "report, delivery, status, reason, at_us, delivery_at_us, read_at_us, transport, raw, "
    "outside) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

#: The request of a message just inserted (it has none yet).
_INSERT_RAW = "INSERT INTO message_raw (message, kind, data, size, shared) VALUES (?, ?, ?, ?, ?)"

#: Where the body entity (``raw``) is in the parameters of `_INSERT_MESSAGE`.
_RAW_INDEX = 14

_UPSERT_RAW = (
    "INSERT INTO message_raw (message, kind, data, size, shared) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (message) DO UPDATE SET kind = excluded.kind, data = excluded.data, "
    "size = excluded.size, shared = excluded.shared"
)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _to_us(at: datetime) -> int:
    if not isinstance(at, datetime):
        raise TypeError(f"at must be a datetime, not {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at must be timezone-aware, got the naive datetime {at.isoformat()}")
    return (at - _EPOCH) // _MICROSECOND


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{what} is not JSON-able: {exc}") from exc


def _blob(value: bytes | bytearray | memoryview | None, what: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or None, not {type(value).__name__}")


def _text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _row_to_message(row: tuple) -> StoredMessage:
    (
        rowid,
        direction,
        peer,
        local,
        message_id,
        content_type,
        content,
        report,
        delivery,
        status,
        reason,
        at_us,
        transport,
        read_at_us,
        outside,
    ) = row
    return StoredMessage(
        rowid=rowid,
        direction=direction,
        peer=peer,
        local=local,
        message_id=message_id,
        content_type=content_type,
        content=None if content is None else bytes(content),
        report=None if report is None else json.loads(report),
        delivery=delivery,
        status=status,
        reason=reason,
        at=_from_us(at_us),
        transport=transport,
        read_at=None if read_at_us is None else _from_us(read_at_us),
        outside=() if outside is None else _outside_from_json(outside),
    )


def _outside_json(parts: Iterable[OutsidePart | tuple[str | None, bytes]] | None) -> str | None:
    """The unprotected parts as stored (bounded in count and size), None when none."""
    if not parts:
        return None
    kept: list[dict] = []
    for part in parts:
        if len(kept) == OUTSIDE_PARTS_MAX:
            break
        if not isinstance(part, OutsidePart):
            try:
                content_type, content = part
            except (TypeError, ValueError):
                raise TypeError(
                    "an outside part must be an OutsidePart or a (content type, bytes) pair"
                ) from None
            part = OutsidePart.of(content_type, _blob(content, "outside part") or b"")
        elif len(part.content) > OUTSIDE_PART_MAX:
            part = OutsidePart(
                part.content_type,
                part.content[:OUTSIDE_PART_MAX],
                max(part.size, len(part.content)),
            )
        kept.append(part.to_json())
    return _json(kept, "the outside parts") if kept else None


def _outside_from_json(text: str) -> tuple[OutsidePart, ...]:
    try:
        return tuple(OutsidePart.from_json(p) for p in json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"a stored message has unreadable outside parts: {exc}") from exc


def _raw_params(
    rowid: int,
    raw_request: bytes | bytearray | memoryview | None,
    kind: str,
    body_entity: bytes | None = None,
) -> tuple | None:
    """The ``message_raw`` row of a message (bounded), None when there is nothing. When
    the request ends with the body of ``body_entity`` (kept in ``messages.raw``), only
    the head is written."""
    if raw_request is None:
        return None
    if kind not in RAW_KINDS:
        raise ValueError(f"unknown raw request kind {kind!r}; expected one of {sorted(RAW_KINDS)}")
    data = _blob(raw_request, "raw_request") or b""
    size = len(data)
    if body_entity and size <= RAW_REQUEST_MAX:
        _head, blank, body = body_entity.partition(b"\r\n\r\n")
        if blank and body and data.endswith(body):
            return (rowid, kind, data[: size - len(body)], size, len(body))
    return (rowid, kind, data[:RAW_REQUEST_MAX], size, 0)


def _insert_incoming(
    conn: sqlite3.Connection, params: tuple, raw_request: Any, raw_kind: str
) -> int:
    """Insert one incoming message and the request that carried it; returns its row id."""
    rowid = conn.execute(_INSERT_MESSAGE, params).lastrowid
    extra = _raw_params(rowid, raw_request, raw_kind, params[_RAW_INDEX])
    if extra is not None:
        conn.execute(_INSERT_RAW, extra)
    return rowid


def _describe(exc: sqlite3.Error) -> str:
    text = str(exc)
    lowered = text.lower()
    if "malformed" in lowered or "not a database" in lowered:
        return f"{text} (the database file is corrupt)"
    if "readonly" in lowered or "read-only" in lowered:
        return f"{text} (the profile folder or the database file is not writable)"
    if "full" in lowered:
        return f"{text} (the disk is full)"
    if "locked" in lowered or "busy" in lowered:
        return f"{text} (another process is using this profile)"
    return text


# --------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------


class MessageStore:
    """The durable store of one profile. See the module documentation for the promise."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        folder = self.path.parent
        if not folder.is_dir():
            raise StoreError(
                f"cannot open the store {self.path}: the folder {folder} does not exist"
            )
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"cannot open the store {self.path}: it is not a file")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StoreError(
                f"cannot open the store {self.path}: the profile folder {folder} is not writable"
            )
        self._create_private(self.path)
        try:
            conn = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {_describe(exc)}") from exc
        try:
            self._configure(conn)
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @classmethod
    def open(cls, profile_dir: Path) -> MessageStore:
        """Open (or create) ``history.sqlite3`` in the profile folder (created if missing)."""
        profile_dir = Path(profile_dir)
        if profile_dir.exists() and not profile_dir.is_dir():
            raise StoreError(f"the profile folder {profile_dir} is not a folder")
        try:
            profile_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the profile folder {profile_dir}: {exc.strerror or exc}"
            ) from exc
        return cls(profile_dir / DB_FILENAME)

    # ---- life cycle -------------------------------------------------------------------

    @staticmethod
    def _create_private(path: Path) -> None:
        """Create the file owner-only (the history holds decrypted messages).

        SQLite gives the -wal and -shm files the permissions of the database file.
        """
        if path.exists():
            return
        try:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            raise StoreError(
                f"cannot create the store {path}: {exc.strerror or exc} "
                "(is the profile folder writable?)"
            ) from exc
        os.close(fd)

    def _configure(self, conn: sqlite3.Connection) -> None:
        try:
            # the first read: a file that is not a database fails here
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
            # macOS: fsync does not reach the platter without F_FULLFSYNC (no-op elsewhere)
            conn.execute("PRAGMA fullfsync=ON")
            conn.execute("PRAGMA checkpoint_fullfsync=ON")
            conn.execute("PRAGMA journal_size_limit=67108864")
            synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the store {self.path}: {_describe(exc)}") from exc
        if str(mode).lower() != "wal":
            raise StoreError(
                f"cannot open the store {self.path}: the file system does not support "
                f"SQLite's write-ahead log (journal mode is {mode!r})"
            )
        if synchronous != 2:  # FULL
            raise StoreError(f"cannot open the store {self.path}: synchronous=FULL was refused")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                has_version = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
                ).fetchone()
                if has_version:
                    row = conn.execute("SELECT version FROM schema_version").fetchone()
                    if row is None:
                        raise StoreError(
                            f"the store {self.path} is corrupt: its schema version is missing"
                        )
                    version = int(row[0])
                else:
                    others = conn.execute(
                        "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                    ).fetchone()[0]
                    if others:
                        raise StoreError(
                            f"the file {self.path} is a SQLite database, "
                            "but not a messenger history"
                        )
                    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                    conn.execute("INSERT INTO schema_version (version) VALUES (0)")
                    version = 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"the store {self.path} was written by a newer version of the "
                        f"messenger (schema version {version}; this version reads up to "
                        f"{SCHEMA_VERSION}). Update the messenger to open this profile."
                    )
                for step in range(version, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[step]:
                        conn.execute(statement)
                    conn.execute("UPDATE schema_version SET version = ?", (step + 1,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {_describe(exc)}") from exc

    def close(self) -> None:
        """Close the store. Everything is already committed; this only releases the file."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                conn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass  # best effort; the data is committed already
            finally:
                conn.close()

    def __enter__(self) -> MessageStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    @property
    def schema_version(self) -> int:
        with self._db("read the schema version") as conn:
            return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])

    def check_integrity(self) -> list[str]:
        """Run ``PRAGMA integrity_check``: ``[]`` when the file is sound, else the problems."""
        with self._db("check the integrity") as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        return [] if rows == ["ok"] else rows

    # ---- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _db(self, what: str) -> Iterator[sqlite3.Connection]:
        """The connection under the lock; SQLite errors become a :class:`StoreError`."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError(f"cannot {what}: the store {self.path} is closed")
            try:
                yield conn
            except sqlite3.Error as exc:
                raise StoreError(f"cannot {what}: {_describe(exc)}") from exc

    @contextmanager
    def _tx(self, what: str) -> Iterator[sqlite3.Connection]:
        """A write transaction that is committed (and fsync-ed) when the block ends."""
        with self._db(what) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error is the one to report
                raise

    # ---- outgoing ---------------------------------------------------------------------

    def add_outgoing(
        self,
        *,
        peer: str,
        local: str,
        message_id: str,
        content_type: str,
        content: bytes,
        at: datetime,
        transport: str = "sip",
    ) -> StoredMessage:
        """Store a message the user sent as ``pending``; committed when this returns."""
        _text(peer, "peer")
        _text(local, "local")
        _text(message_id, "message_id")
        _text(transport, "transport")
        content_b = _blob(content, "content")
        at_us = _to_us(at)
        with self._db("store the outgoing message") as conn:
            try:
                cur = conn.execute(
                    _INSERT_MESSAGE,
                    (
                        "out",
                        peer,
                        local,
                        message_id,
                        content_type,
                        content_b,
                        None,
                        "pending",
                        None,
                        "",
                        at_us,
                        at_us,
                        at_us,
                        transport,
                        None,
                        None,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(
                    f"cannot store the outgoing message: an outgoing message with the "
                    f"message id {message_id!r} is already stored"
                ) from exc
            rowid = cur.lastrowid
        message = self.by_rowid(rowid)
        assert message is not None
        return message

    def set_delivery(
        self,
        message_id: str,
        state: str,
        *,
        at: datetime,
        status: int | None = None,
        reason: str = "",
        raw_request: bytes | None = None,
    ) -> None:
        """Record what happened to an outgoing message.

        ``raw_request`` is the request as it was sent (the last attempt); it replaces the
        one kept before, in the same transaction as the state.

        ``sent`` < ``delivered`` < ``displayed`` only move forward: a late ``sent`` (the 200
        after the IMDN) or a ``delivered`` after ``displayed`` leaves the state as it is
        (the status and reason are still recorded). Every other change is applied, so a
        ``failed`` message can go back to ``pending`` for a re-send. The status and reason
        of the last response stay until a call gives a new status or reason.
        """
        if state not in DELIVERY_STATES:
            raise ValueError(
                f"unknown delivery state {state!r}; expected one of {sorted(DELIVERY_STATES)}"
            )
        if status is not None and not isinstance(status, int):
            raise TypeError(f"status must be an int or None, not {type(status).__name__}")
        at_us = _to_us(at)
        with self._tx("record the delivery state") as conn:
            row = conn.execute(
                "SELECT id, delivery FROM messages WHERE direction = 'out' AND message_id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                raise UnknownMessageError(
                    f"no outgoing message with the message id {message_id!r} is stored"
                )
            rowid, current = row
            new_rank = _PROGRESS_RANK.get(state)
            old_rank = _PROGRESS_RANK.get(current)
            if new_rank is not None and old_rank is not None and new_rank < old_rank:
                state = current
            conn.execute(
                "UPDATE messages SET delivery = ?, delivery_at_us = ?, "
                "status = coalesce(?, status), "
                "reason = CASE WHEN ? IS NULL AND ? = '' THEN reason ELSE ? END WHERE id = ?",
                (state, at_us, status, status, reason, reason, rowid),
            )
            raw = _raw_params(rowid, raw_request, "sip-request")
            if raw is not None:
                conn.execute(_UPSERT_RAW, raw)

    def set_report(self, message_id: str, report: dict) -> None:
        """Attach a report to the message with this id (the outgoing one, if both exist)."""
        data = _json(report, "report")
        with self._db("store the report") as conn:
            cur = conn.execute(
                "UPDATE messages SET report = ? WHERE id = "
                "(SELECT id FROM messages WHERE message_id = ? "
                " ORDER BY direction = 'out' DESC, id DESC LIMIT 1)",
                (data, message_id),
            )
            if cur.rowcount == 0:
                raise UnknownMessageError(
                    f"no message with the message id {message_id!r} is stored"
                )

    def pending_outgoing(self) -> list[StoredMessage]:
        """Outgoing messages still ``pending`` (to re-send after a restart), oldest first."""
        with self._db("list the pending messages") as conn:
            rows = conn.execute(_SQL["pending"]).fetchall()
        return [_row_to_message(r) for r in rows]

    # ---- incoming ---------------------------------------------------------------------

    def add_incoming(
        self,
        *,
        peer: str,
        local: str,
        message_id: str | None,
        content_type: str | None,
        content: bytes | None,
        report: dict,
        at: datetime,
        raw: bytes | None = None,
        transport: str = "sip",
        outside: Iterable[OutsidePart | tuple[str | None, bytes]] | None = None,
        raw_request: bytes | None = None,
        raw_kind: str = "sip-request",
    ) -> StoredMessage:
        """Store a received message with its report; committed when this returns.

        Call it before the 200 is sent. Duplicates are stored too (the report says what
        the replay check found); :meth:`has_message_id` is the replay check. ``raw`` is
        the body entity of the request (what :meth:`raw` gives back), ``outside`` the
        unprotected parts that came beside the protected one, ``raw_request`` the bytes
        of the whole request (of kind ``raw_kind``); all go into the same transaction.
        """
        params = self._incoming_params(
            peer=peer,
            local=local,
            message_id=message_id,
            content_type=content_type,
            content=content,
            report=report,
            at=at,
            raw=raw,
            transport=transport,
            outside=outside,
        )
        with self._tx("store the incoming message") as conn:
            rowid = _insert_incoming(conn, params, raw_request, raw_kind)
        message = self.by_rowid(rowid)
        assert message is not None
        return message

    @staticmethod
    def _incoming_params(
        *,
        peer: str,
        local: str,
        message_id: str | None = None,
        content_type: str | None = None,
        content: bytes | None = None,
        report: dict | None = None,
        at: datetime,
        raw: bytes | None = None,
        transport: str = "sip",
        outside: Iterable[OutsidePart | tuple[str | None, bytes]] | None = None,
    ) -> tuple:
        _text(peer, "peer")
        _text(local, "local")
        _text(transport, "transport")
        if message_id is not None and not isinstance(message_id, str):
            raise TypeError(f"message_id must be a str or None, not {type(message_id).__name__}")
        at_us = _to_us(at)
        return (
            "in",
            peer,
            local,
            message_id,
            content_type,
            _blob(content, "content"),
            None if report is None else _json(report, "report"),
            RECEIVED,
            None,
            "",
            at_us,
            at_us,
            None,
            transport,
            _blob(raw, "raw"),
            _outside_json(outside),
        )

    @classmethod
    def _incoming_row(cls, row: Mapping[str, Any]) -> tuple[tuple, Any, str]:
        """The message parameters, the raw request and its kind of one incoming row."""
        fields = dict(row)
        raw_request = fields.pop("raw_request", None)
        raw_kind = fields.pop("raw_kind", "sip-request")
        return cls._incoming_params(**fields), raw_request, raw_kind

    def bulk_add_incoming(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store many incoming messages in one transaction (imports, tests, benchmarks).

        Each row holds the keyword arguments of :meth:`add_incoming`. Returns the count.
        """
        prepared = [self._incoming_row(row) for row in rows]
        with self._tx("store the incoming messages") as conn:
            if not any(raw is not None for _p, raw, _k in prepared):
                conn.executemany(_INSERT_MESSAGE, [p for p, _r, _k in prepared])
                return len(prepared)
            for params, raw_request, raw_kind in prepared:
                _insert_incoming(conn, params, raw_request, raw_kind)
            return len(prepared)

    def add_incoming_batch(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        """Store received messages in one transaction (one disk flush for all of them: the
        user agent's group commit) and return their row ids, in order.

        Each row holds the keyword arguments of :meth:`add_incoming`; committed when this
        returns, so each may then be answered 200.
        """
        prepared = [self._incoming_row(row) for row in rows]
        with self._tx("store the incoming messages") as conn:
            rowids = [_insert_incoming(conn, *row) for row in prepared]
        return rowids

    def has_message_id(self, peer: str, message_id: str) -> bool:
        """Whether a message with this id was already received from this peer (replay)."""
        with self._db("check for a replay") as conn:
            row = conn.execute(_SQL["has_message_id"], (peer, message_id)).fetchone()
        return row is not None

    def raw(self, rowid: int) -> bytes | None:
        """The body entity stored with an incoming message (its content headers and body,
        as the request carried them; not loaded by the other reads)."""
        with self._db("read the raw message") as conn:
            row = conn.execute("SELECT raw FROM messages WHERE id = ?", (rowid,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def raw_request(self, rowid: int) -> RawRequest | None:
        """The request that carried the message with this row id (received, or the last
        one sent), None when none was kept."""
        with self._db("read the raw request") as conn:
            row = conn.execute(
                "SELECT r.kind, r.data, r.size, r.shared, "
                "CASE WHEN r.shared > 0 THEN substr(m.raw, -r.shared) END "
                "FROM message_raw r JOIN messages m ON m.id = r.message WHERE r.message = ?",
                (rowid,),
            ).fetchone()
        if row is None:
            return None
        kind, data, size, shared, tail = row
        data = bytes(data)
        if shared:
            data += bytes(tail)
        return RawRequest(kind, data, size)

    def set_raw_request(self, rowid: int, data: bytes, *, kind: str = "sip-request") -> None:
        """Keep (or replace) the request that carried the message with this row id."""
        params = _raw_params(rowid, data, kind)
        assert params is not None
        with self._db("store the raw request") as conn:
            try:
                conn.execute(_UPSERT_RAW, params)
            except sqlite3.IntegrityError as exc:
                raise UnknownMessageError(f"no message with the row id {rowid} is stored") from exc

    def mark_read(self, peer: str, *, at: datetime) -> None:
        """Mark every unread incoming message of the conversation as read at ``at``."""
        at_us = _to_us(at)
        with self._db("mark the conversation read") as conn:
            conn.execute(_SQL["mark_read"], (at_us, peer))

    # ---- conversations ----------------------------------------------------------------

    def conversations(self) -> list[ConversationSummary]:
        """One summary per peer, the most recent conversation first."""
        summaries: list[ConversationSummary] = []
        with self._db("list the conversations") as conn:
            peers = [r[0] for r in conn.execute(_SQL["peers"]).fetchall()]
            for peer in peers:
                # 4 bytes per character at most: enough bytes for SUMMARY_CHARS characters
                head, report, at_us = conn.execute(
                    _SQL["last_message"], (SUMMARY_CHARS * 4, peer)
                ).fetchone()
                unread = conn.execute(_SQL["unread"], (peer,)).fetchone()[0]
                authenticity = None
                if report is not None:
                    value = json.loads(report)
                    if isinstance(value, dict):
                        found = value.get("authenticity")
                        authenticity = None if found is None else str(found)
                text = "" if head is None else bytes(head).decode("utf-8", errors="replace")
                summaries.append(
                    ConversationSummary(
                        peer=peer,
                        last_text=text[:SUMMARY_CHARS],
                        last_at=_from_us(at_us),
                        unread=unread,
                        last_authenticity=authenticity,
                    )
                )
        summaries.sort(key=lambda s: s.last_at, reverse=True)
        return summaries

    def count(self, peer: str) -> int:
        """How many messages the conversation with this peer holds."""
        with self._db("count the messages") as conn:
            return conn.execute(_SQL["count"], (peer,)).fetchone()[0]

    def messages(self, peer: str, *, offset: int = 0, limit: int = 100) -> list[StoredMessage]:
        """One page of the conversation, oldest first by (at, rowid)."""
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must not be negative (got {offset}, {limit})")
        with self._db("read the conversation") as conn:
            rows = conn.execute(_SQL["messages_page"], (peer, limit, offset)).fetchall()
        return [_row_to_message(r) for r in rows]

    def message(self, message_id: str) -> StoredMessage | None:
        """The message with this id: the outgoing one if there is one, else the latest."""
        with self._db("read the message") as conn:
            row = conn.execute(_SQL["message_by_id"], (message_id,)).fetchone()
        return None if row is None else _row_to_message(row)

    def by_rowid(self, rowid: int) -> StoredMessage | None:
        with self._db("read the message") as conn:
            row = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (rowid,)
            ).fetchone()
        return None if row is None else _row_to_message(row)

    # ---- peers ------------------------------------------------------------------------

    def learn_certificate(self, aor: str, der: bytes, *, at: datetime) -> None:
        """Remember the certificate of a peer; the latest wins, earlier ones stay in history.

        Learning the certificate that is already current only updates when it was seen.
        """
        _text(aor, "aor")
        der_b = _blob(der, "der")
        if not der_b:
            raise ValueError("der must be a non-empty certificate")
        at_us = _to_us(at)
        with self._tx("store the certificate") as conn:
            row = conn.execute("SELECT der FROM peer_certificates WHERE aor = ?", (aor,)).fetchone()
            if row is not None and bytes(row[0]) == der_b:
                conn.execute(
                    "UPDATE peer_certificates SET seen_at_us = ? WHERE aor = ?", (at_us, aor)
                )
                return
            conn.execute(
                "INSERT INTO certificate_history (aor, der, learned_at_us) VALUES (?, ?, ?)",
                (aor, der_b, at_us),
            )
            conn.execute(
                "INSERT INTO peer_certificates (aor, der, learned_at_us, seen_at_us) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (aor) DO UPDATE SET der = excluded.der, "
                "learned_at_us = excluded.learned_at_us, seen_at_us = excluded.seen_at_us",
                (aor, der_b, at_us, at_us),
            )

    def certificate(self, aor: str) -> bytes | None:
        """The latest certificate learned for this AoR."""
        with self._db("read the certificate") as conn:
            row = conn.execute("SELECT der FROM peer_certificates WHERE aor = ?", (aor,)).fetchone()
        return None if row is None else bytes(row[0])

    def certificate_history(self, aor: str) -> list[tuple[datetime, bytes]]:
        """Every distinct certificate learned for this AoR, oldest first."""
        with self._db("read the certificate history") as conn:
            rows = conn.execute(
                "SELECT learned_at_us, der FROM certificate_history WHERE aor = ? "
                "ORDER BY learned_at_us, id",
                (aor,),
            ).fetchall()
        return [(_from_us(at_us), bytes(der)) for at_us, der in rows]

    def set_capability(
        self, aor: str, name: str, value: bool, *, at: datetime, reason: str = ""
    ) -> None:
        """Remember what a peer can do, e.g. ``('smime', False)`` after a 415."""
        _text(aor, "aor")
        _text(name, "name")
        at_us = _to_us(at)
        with self._db("store the capability") as conn:
            conn.execute(
                "INSERT INTO capabilities (aor, name, value, at_us, reason) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (aor, name) DO UPDATE SET value = excluded.value, "
                "at_us = excluded.at_us, reason = excluded.reason",
                (aor, name, int(bool(value)), at_us, reason),
            )

    def capability(self, aor: str, name: str) -> bool | None:
        """What is known of the capability; ``None`` when nothing is."""
        with self._db("read the capability") as conn:
            row = conn.execute(
                "SELECT value FROM capabilities WHERE aor = ? AND name = ?", (aor, name)
            ).fetchone()
        return None if row is None else bool(row[0])

    def capabilities(self, aor: str) -> dict[str, tuple[bool, datetime, str]]:
        """Everything known of a peer: name -> (value, when it was learned, reason)."""
        with self._db("read the capabilities") as conn:
            rows = conn.execute(
                "SELECT name, value, at_us, reason FROM capabilities WHERE aor = ? ORDER BY name",
                (aor,),
            ).fetchall()
        return {name: (bool(value), _from_us(at_us), reason) for name, value, at_us, reason in rows}

    def set_peer_has_certificate(
        self, aor: str, has: bool = True, *, at: datetime, reason: str = ""
    ) -> None:
        """RFC 8591 7.1: once the peer is known to have our certificate, leave it out.

        Call :meth:`forget_peers_have_certificate` when our own certificate changes.
        """
        self.set_capability(aor, PEER_HAS_CERTIFICATE, has, at=at, reason=reason)

    def peer_has_certificate(self, aor: str) -> bool:
        return self.capability(aor, PEER_HAS_CERTIFICATE) is True

    def forget_peers_have_certificate(self) -> None:
        """Our certificate changed: no peer has the new one yet."""
        with self._db("reset the certificate knowledge") as conn:
            conn.execute("DELETE FROM capabilities WHERE name = ?", (PEER_HAS_CERTIFICATE,))

    # ---- trust store ------------------------------------------------------------------

    def save_trust(self, data: dict) -> None:
        """Replace the serialized trust store (atomically)."""
        text = _json(data, "the trust store")
        with self._db("save the trust store") as conn:
            conn.execute(
                "INSERT INTO trust (id, data) VALUES (1, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                (text,),
            )

    def load_trust(self) -> dict | None:
        with self._db("load the trust store") as conn:
            row = conn.execute("SELECT data FROM trust WHERE id = 1").fetchone()
        return None if row is None else json.loads(row[0])

    # ---- usability-study event log ----------------------------------------------------

    def log_event(self, kind: str, data: dict, *, at: datetime) -> None:
        """Append a warning shown or a trust decision made, with its time."""
        _text(kind, "kind")
        text = _json(data, "the event data")
        at_us = _to_us(at)
        with self._db("log the event") as conn:
            conn.execute(
                "INSERT INTO events (kind, at_us, data) VALUES (?, ?, ?)", (kind, at_us, text)
            )

    def events(self, *, since: datetime | None = None, kind: str | None = None) -> list[dict]:
        """The events at or after ``since`` (all if ``None``), oldest first.

        Each is ``{"id": int, "at": ISO-8601 UTC, "kind": str, "data": dict}``.
        """
        since_us = None if since is None else _to_us(since)
        with self._db("read the events") as conn:
            rows = conn.execute(
                "SELECT id, kind, at_us, data FROM events "
                "WHERE (? IS NULL OR at_us >= ?) AND (? IS NULL OR kind = ?) "
                "ORDER BY at_us, id",
                (since_us, since_us, kind, kind),
            ).fetchall()
        return [
            {
                "id": rowid,
                "at": _from_us(at_us).isoformat(timespec="microseconds"),
                "kind": kind_,
                "data": json.loads(data),
            }
            for rowid, kind_, at_us, data in rows
        ]

    def export_events_jsonl(self) -> str:
        """Every event as JSON lines (one object per line, oldest first)."""
        return "".join(
            json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n" for event in self.events()
        )

    # ---- settings ---------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        with self._db("read the setting") as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        _text(key, "key")
        text = _json(value, f"the setting {key!r}")
        with self._db("store the setting") as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def delete_setting(self, key: str) -> None:
        with self._db("delete the setting") as conn:
            conn.execute("DELETE FROM settings WHERE key = ?", (key,))
