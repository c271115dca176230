"""A chat's KV state saved with llama-server's own slot save/restore, so the next
turn after a reload, a restart or many other chats evaluates only its new tokens
(as engine/kv_state.py does in-process).

After a turn, the slot that answered is saved (POST /slots/{id}?action=save) into
the data directory's kv/ folder, which the child gets as --slot-save-path; when that
chat comes back to a slot that holds something else, the file is restored into it
first (action=restore). A file is named after the chat (kv_state's stem, so deleting
a chat deletes it too) and a hash of what it is valid for: these model files, this
context size, this llama-server binary, and the login it belongs to. The folder is
kept under the KV byte cap, least recently used first."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from engine.kv_state import _session_stem, evict_oldest, file_identity

SUFFIX = ".slot"


def orphan_slot_files(directory: Path, session_ids: set[str]) -> list[Path]:
    """Slot files of chats not in `session_ids` (deleted while their last turn was
    still being saved, or by an older version). A file names its chat only by a hash,
    so the chats that exist are hashed the same way and compared."""
    kept = {_session_stem(session) for session in session_ids}
    return [path for path in directory.glob(f"*{SUFFIX}") if path.name.split("-", 1)[0] not in kept]


def slot_fingerprint(model: Path, mmproj: Path | None, n_ctx: int, binary: Path | None) -> str:
    facts = [file_identity(model), file_identity(mmproj), str(n_ctx), file_identity(binary)]
    return hashlib.sha256("\n".join(str(f) for f in facts).encode()).hexdigest()


class SlotStates:
    def __init__(self, directory: Path, fingerprint: str, max_bytes: int):
        self.directory = directory
        self.fingerprint = fingerprint
        self.max_bytes = max_bytes

    def filename(self, scope: str, session_key: str) -> str:
        """A bare file name (llama-server takes no paths) for this login's chat."""
        valid_for = hashlib.sha256(f"{self.fingerprint}\0{scope}".encode()).hexdigest()[:16]
        return f"{_session_stem(session_key)}-{valid_for}{SUFFIX}"

    def saved(self, scope: str, session_key: str) -> bool:
        path = self.directory / self.filename(scope, session_key)
        if not path.is_file():
            return False
        with contextlib.suppress(OSError):
            path.touch()  # recently used: evicted last
        return True

    def evict(self) -> None:
        """Oldest files first until the folder is under the cap (0: no cap)."""
        if self.max_bytes > 0:
            evict_oldest(self.directory, SUFFIX, self.max_bytes)
