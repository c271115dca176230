"""SQLite connections shared safely by the threads of one process and by other
processes writing the same file: WAL, a reader connection per thread, a busy timeout,
and write transactions that take the write lock up front and are retried while the
database is locked."""

from __future__ import annotations

import functools
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

T = TypeVar("T")

BUSY_TIMEOUT_S = 5.0
# After SQLite's own busy handler gives up, keep retrying the whole transaction for
# this long; a write is only given up when something holds the lock for minutes.
RETRY_FOR_S = 60.0
PROGRESS_STEPS = 10_000  # SQLite VM steps between deadline checks (well under 1 ms)


def is_locked(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "database is locked" in message or "database is busy" in message


class QueryTooSlow(Exception):
    """A read ran past its deadline and was stopped (see `Connection.rows`)."""


class Connection:
    """One writer connection, used under a lock by every thread, and a reader
    connection per thread: in WAL mode readers never wait for the writer or for each
    other, so one user's slow read (a search over a huge message) holds no one else.
    A read inside `write` goes through the writer, to see that transaction's rows."""

    def __init__(self, path: Path):
        self.path = path
        conn = _connect(path)
        self.db = Database(conn, execute_plugins=False)
        self.db.enable_wal()
        # In WAL mode NORMAL survives a killed process; only power loss can cost the
        # last transactions, and never corrupts the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        self.conn = conn
        self._lock = threading.RLock()
        self._local = threading.local()  # .reader, .writing (depth of `write` calls)
        # Each thread's reader, held by that thread's local (closed when the thread
        # ends and its local goes) and weakly here (closed with the store).
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock, self._readers_lock:
            self._closed = True
            for reader in list(self._readers):
                reader.close()
            self.conn.close()

    def rows(self, sql: str, params: Any = (), deadline_s: float | None = None) -> list[dict[str, Any]]:
        """The rows of one read. With `deadline_s`, SQLite stops the query once it has
        run that long and QueryTooSlow is raised."""
        if getattr(self._local, "writing", 0):
            return _fetch(self.conn, sql, params)
        reader = self._reader()
        if deadline_s is None:
            return _fetch(reader, sql, params)
        stop_at = time.monotonic() + deadline_s
        # Called every N SQLite VM steps; a true return interrupts the statement.
        reader.set_progress_handler(lambda: time.monotonic() > stop_at, PROGRESS_STEPS)
        try:
            return _fetch(reader, sql, params)
        except sqlite3.OperationalError as exc:
            if "interrupt" in str(exc).lower():
                raise QueryTooSlow(f"the query ran past {deadline_s:g} s") from None
            raise
        finally:
            reader.set_progress_handler(None, PROGRESS_STEPS)

    def one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def _reader(self) -> sqlite3.Connection:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = _Reader(self.path)
            with self._readers_lock:
                if self._closed:
                    reader.close()
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                self._readers.add(reader)
            self._local.reader = reader
        return reader.conn

    def write(self, work: Callable[[], T]) -> T:
        """Run `work` (which executes through this connection) in one write transaction.
        `work` may run more than once, so any side effect outside SQL must be idempotent."""
        deadline = time.monotonic() + RETRY_FOR_S
        delay = 0.005
        while True:
            try:
                with self._lock, self._writing(), self._immediate_transaction():
                    return work()
            except sqlite3.OperationalError as exc:
                if not is_locked(exc) or time.monotonic() > deadline:
                    raise
            # Jitter keeps two retrying writers from colliding in lockstep.
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """For use inside `write`: the lock is already held."""
        return self.conn.execute(sql, params)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        self._local.writing = getattr(self._local, "writing", 0) + 1
        try:
            yield
        finally:
            self._local.writing -= 1

    @contextmanager
    def _immediate_transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock now, while the busy timeout still applies; a
        # deferred transaction that reads first can fail its upgrade without waiting.
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise


class _Reader:
    """A thread's read-only connection, closed when this holder is collected."""

    def __init__(self, path: Path):
        self.conn = _connect(path)
        # Only reads: a write through it would bypass the writer's lock.
        self.conn.execute("PRAGMA query_only = ON")
        self.close = weakref.finalize(self, self.conn.close)


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions. Reads then never pin an old
    # snapshot, and every write transaction is an explicit BEGIN IMMEDIATE below.
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _fetch(conn: sqlite3.Connection, sql: str, params: Any) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def process_identity(pid: int | None = None) -> str | None:
    """'pid:start-time' for a live process, None if it is gone. The start time tells a
    restarted app apart from its crashed predecessor that happened to have the same
    pid (common in containers)."""
    pid = os.getpid() if pid is None else pid
    if not _has_proc():
        return _identity_without_proc(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the ')' that closes the command name; state is the 3rd field of the
    # line, start time the 22nd.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return f"{pid}:{fields[19]}"


@functools.cache
def _has_proc() -> bool:
    return Path("/proc/self/stat").exists()


def _identity_without_proc(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"{pid}:"


def writer_is_alive(writer: str | None) -> bool:
    if not writer:
        return False
    pid_text = writer.split(":", 1)[0]
    if not pid_text.isdigit():
        return False
    return process_identity(int(pid_text)) == writer
