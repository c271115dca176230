"""A chat's KV state saved with llama-server's own slot save/restore, so the next
turn after a reload, a restart or many other chats evaluates only its new tokens.

After a turn, the slot that answered is saved (POST /slots/{id}?action=save) into
the data directory's kv/ folder, which the child gets as --slot-save-path; when that
chat comes back to a slot that holds something else, the file is restored into it
first (action=restore). llama-server checks neither what a file was made by nor
whether it is whole, so the name says what it is valid for, and its content hash:

    <chat>-<model>-<valid for>-<login>-<sha256 of the content>.slot

- chat: a hash of the chat's id (deleting a chat deletes its files by this prefix);
- model: a hash of the model's name; valid for: a hash of its files, context size
  and the llama-server binary. Opening a model deletes its files made for anything
  else (a replaced GGUF, another -c), which would otherwise wait for eviction;
- login: a hash of the login, so one login's KV is never restored into another's;
- the content hash is taken after the server wrote the file (as `.saving`, then
  renamed), and checked before a restore: a damaged file is deleted, never loaded.

The folder is kept under the KV byte cap, least recently used first."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

SUFFIX = ".slot"
WRITING = ".saving"  # a file the server is writing, or left half-written by a crash
HASH_CHUNK = 1 << 22
HEAD_BYTES = 1 << 20  # identity of a model file: size, mtime and its first MiB


def file_identity(path: Path | None) -> str | None:
    """Cheap identity of a (possibly 30 GB) file: size, mtime and a hash of its head."""
    if path is None:
        return None
    stat = path.stat()
    with path.open("rb") as handle:
        head = hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()[:16]
    return f"{stat.st_size}:{stat.st_mtime_ns}:{head}"


def _session_stem(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()[:24]


def session_files(directory: Path, session_key: str) -> list[Path]:
    """Every file holding this chat's KV state, for any model (a save being written
    too): a deleted chat's token ids must not stay on disk."""
    return sorted(directory.glob(f"{_session_stem(session_key)}-*"))


def evict_oldest(directory: Path, suffix: str, max_bytes: int) -> list[Path]:
    """Deletes the least recently used `*suffix` files of a folder (oldest mtime first)
    until the rest fit in max_bytes; returns what it deleted."""
    files = []
    for path in directory.glob(f"*{suffix}"):
        with contextlib.suppress(OSError):
            stat = path.stat()
            files.append((stat.st_mtime_ns, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    removed = []
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed.append(path)
    return removed


def orphan_slot_files(directory: Path, session_ids: set[str]) -> list[Path]:
    """Slot files of chats not in `session_ids` (deleted while their last turn was
    still being saved, or by an older version). A file names its chat only by a hash,
    so the chats that exist are hashed the same way and compared."""
    kept = {_session_stem(session) for session in session_ids}
    found = [*directory.glob(f"*{SUFFIX}"), *directory.glob(f"*{WRITING}")]
    return [path for path in found if path.name.split("-", 1)[0] not in kept]


def slot_fingerprint(model: Path, mmproj: Path | None, n_ctx: int, binary: Path | None) -> str:
    facts = [file_identity(model), file_identity(mmproj), str(n_ctx), file_identity(binary)]
    return hashlib.sha256("\n".join(str(f) for f in facts).encode()).hexdigest()


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:16]


class SlotStates:
    def __init__(self, directory: Path, model_name: str, fingerprint: str, max_bytes: int):
        self.directory = directory
        self.model = _short(model_name)
        self.valid_for = _short(fingerprint)
        self.max_bytes = max_bytes
        self.drop_stale()

    def _stem(self, scope: str, session_key: str) -> str:
        return f"{_session_stem(session_key)}-{self.model}-{self.valid_for}-{_short(scope)}"

    def writing_name(self, scope: str, session_key: str) -> str:
        """The bare file name (llama-server takes no paths) the server saves into."""
        return self._stem(scope, session_key) + WRITING

    def seal(self, scope: str, session_key: str) -> Path | None:
        """The file the server just wrote, named with its content hash (replacing the
        chat's older one); None when there is none (the save failed)."""
        written = self.directory / self.writing_name(scope, session_key)
        try:
            sealed = written.with_name(f"{self._stem(scope, session_key)}-{content_hash(written)}{SUFFIX}")
        except OSError:
            return None
        for older in self._saved(scope, session_key):
            older.unlink(missing_ok=True)
        os.replace(written, sealed)
        return sealed

    def restorable(self, scope: str, session_key: str) -> str | None:
        """The bare name of this chat's saved state when it is whole (its content hash
        matches); a damaged file is deleted."""
        for path in self._saved(scope, session_key):
            try:
                whole = path.stem.rsplit("-", 1)[1] == content_hash(path)
            except (OSError, IndexError):
                whole = False
            if whole:
                with contextlib.suppress(OSError):
                    path.touch()  # recently used: evicted last
                return path.name
            path.unlink(missing_ok=True)
        return None

    def _saved(self, scope: str, session_key: str) -> list[Path]:
        return sorted(self.directory.glob(f"{self._stem(scope, session_key)}-*{SUFFIX}"))

    def drop_stale(self) -> list[Path]:
        """This model's files made for other model files, another context size or
        another build, and writes a crash left unfinished; other models' files stay."""
        dropped = []
        for path in [*self.directory.glob(f"*{SUFFIX}"), *self.directory.glob(f"*{WRITING}")]:
            parts = path.name.split("-")
            if (
                len(parts) >= 4
                and parts[1] == self.model
                and (parts[2] != self.valid_for or path.suffix == WRITING)
            ):
                path.unlink(missing_ok=True)
                dropped.append(path)
        return dropped

    def evict(self) -> None:
        """Oldest files first until the folder is under the cap (0: no cap)."""
        if self.max_bytes > 0:
            evict_oldest(self.directory, SUFFIX, self.max_bytes)
