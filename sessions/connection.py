"""One SQLite connection, shared safely by the threads of one process and by other
processes writing the same file: WAL, a busy timeout, and write transactions that
take the write lock up front and are retried while the database is locked."""

from __future__ import annotations

import functools
import os
import random
import sqlite3
import threading
import time
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


def is_locked(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "database is locked" in message or "database is busy" in message


class Connection:
    def __init__(self, path: Path):
        # isolation_level=None: no implicit transactions. Reads then never pin an old
        # snapshot, and every write transaction is an explicit BEGIN IMMEDIATE below.
        conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self.db = Database(conn, execute_plugins=False)
        self.db.enable_wal()
        # In WAL mode NORMAL survives a killed process; only power loss can cost the
        # last transactions, and never corrupts the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self.conn = conn
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self.conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def write(self, work: Callable[[], T]) -> T:
        """Run `work` (which executes through this connection) in one write transaction.
        `work` may run more than once, so any side effect outside SQL must be idempotent."""
        deadline = time.monotonic() + RETRY_FOR_S
        delay = 0.005
        while True:
            try:
                with self._lock, self._immediate_transaction():
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
