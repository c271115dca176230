"""What a crash or an old version can leave behind in the data dir, removed when the
server starts: temporary files of writes that never finished, documents and blobs no
message holds, KV state files of chats that are gone.

Rows and files are removed under the store's write lock, which every writer of a
blob holds from its file to its row: a file written by another process at the same
moment is never taken for an orphan. Temporary files and unused documents count as
stale only after STALE_AFTER_S, so a write or an upload in progress keeps its own."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .blobs import Blobs
from .connection import Connection

STALE_AFTER_S = 3600.0
KV_DIR = "kv"  # where the engine saves chats' KV state (Settings.kv_dir)


@dataclass
class Swept:
    temporary: int = 0
    documents: int = 0
    blobs: int = 0
    kv_states: int = 0
    bytes: int = 0
    removed: list[Path] = field(default_factory=list)

    def line(self) -> str:
        """One line for stderr; '' when nothing was removed."""
        counts = [
            (self.temporary, "stale temporary file"),
            (self.documents, "unused document"),
            (self.blobs, "unreferenced blob"),
            (self.kv_states, "KV state of a deleted chat"),
        ]
        said = [f"{n} {what}{'s' if n != 1 and not what.startswith('KV') else ''}" for n, what in counts if n]
        return f"swept {', '.join(said)} ({self.bytes / 1e6:.1f} MB)" if said else ""

    def remove(self, path: Path) -> bool:
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            path.unlink()
            self.bytes += size
            self.removed.append(path)
            return True
        return False


def sweep(conn: Connection, blobs: Blobs, data_dir: Path, stale_after_s: float = STALE_AFTER_S) -> Swept:
    swept = Swept()
    cutoff = time.time() - stale_after_s
    kv_dir = data_dir / KV_DIR
    for path in [*blobs.root.glob("*/.tmp-*"), *kv_dir.glob("*.tmp*")]:
        if _older(path, cutoff):
            swept.temporary += swept.remove(path)
    conn.write(lambda: _unused_documents(conn, blobs, swept, stale_after_s))
    conn.write(lambda: _orphan_blobs(conn, blobs, swept))
    _gone_chats_states(conn, kv_dir, swept)
    return swept


def _unused_documents(conn: Connection, blobs: Blobs, swept: Swept, stale_after_s: float) -> None:
    """Documents read (an upload, `launch.py doc`) but held by no message since."""
    before = (datetime.now(UTC) - timedelta(seconds=stale_after_s)).isoformat(timespec="microseconds")
    unused = conn.rows(
        """
        SELECT sha256 FROM documents d WHERE created < ?
        AND NOT EXISTS (SELECT 1 FROM message_attachments l WHERE l.sha256 = d.sha256)
        """,
        (before,),
    )
    shas = json.dumps([row["sha256"] for row in unused])
    for table in ("document_pages", "documents", "attachments"):
        conn.execute(f"DELETE FROM {table} WHERE sha256 IN (SELECT value FROM json_each(?))", (shas,))
    for row in unused:
        swept.documents += swept.remove(blobs.path(row["sha256"]))


def _orphan_blobs(conn: Connection, blobs: Blobs, swept: Swept) -> None:
    """Blob files without an attachment row, and image rows no message links to."""
    conn.execute(
        """
        DELETE FROM attachments WHERE
        NOT EXISTS (SELECT 1 FROM message_attachments l WHERE l.sha256 = attachments.sha256)
        AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.sha256 = attachments.sha256)
        """
    )
    known = {row["sha256"] for row in conn.rows("SELECT sha256 FROM attachments")}
    for path in blobs.root.glob("*/*"):
        if not path.name.startswith(".") and path.name not in known:
            swept.blobs += swept.remove(path)


def _gone_chats_states(conn: Connection, kv_dir: Path, swept: Swept) -> None:
    from engine.slot_state import orphan_slot_files

    sessions = {row["id"] for row in conn.rows("SELECT id FROM sessions")}
    for path in kv_dir.glob("*.kvstate"):  # an older version's in-process state: nothing reads it
        swept.kv_states += swept.remove(path)
    for path in orphan_slot_files(kv_dir, sessions):  # llama-server's
        swept.kv_states += swept.remove(path)


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False
