"""A chat's KV cache saved to disk, so a restarted server (or the next `ask
--session`) evaluates only the new tokens of the next turn.

One file per (session, model) under `<data-dir>/kv/`: a JSON header with the
fingerprint of what produced it (model and projector file identity, n_ctx,
llama.cpp version), the ledger of what each KV position holds, then llama.cpp's
sequence state. A file whose fingerprint, size or checksum does not match is
deleted, never loaded. The directory is kept under a byte cap, least recently used
files going first (state for a long context on a big model is gigabytes)."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.prefix import ImageSpan, Ledger, reusable_prefix

MAGIC = b"L4PKV\n"
FORMAT_VERSION = 1
SUFFIX = ".kvstate"
HEAD_BYTES = 1 << 20  # identity of a model file: size, mtime and its first MiB
_LENGTH = struct.Struct("<Q")


def file_identity(path: Path | None) -> str | None:
    """Cheap identity of a (possibly 30 GB) file: size, mtime and a hash of its head."""
    if path is None:
        return None
    stat = path.stat()
    with path.open("rb") as handle:
        head = hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()[:16]
    return f"{stat.st_size}:{stat.st_mtime_ns}:{head}"


def fingerprint(model_path: Path, mmproj_path: Path | None, n_ctx: int) -> str:
    """What a saved state is only valid for: these exact files, this context size,
    this llama.cpp build's state format (and its mtmd library: a rebuild with other
    patches may lay images out or encode them differently)."""
    import llama_cpp

    mtmd = Path(llama_cpp.__file__).parent / "lib" / "libmtmd.so"
    facts = {
        "format": FORMAT_VERSION,
        "llama_cpp": llama_cpp.__version__,
        "mtmd": file_identity(mtmd) if mtmd.is_file() else None,
        "model": file_identity(model_path),
        "mmproj": file_identity(mmproj_path),
        "n_ctx": n_ctx,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _session_stem(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()[:24]


def session_files(directory: Path, session_key: str) -> list[Path]:
    """Every file holding this chat's KV state, for any model (with a write's
    temporary file): a deleted chat's token ids must not stay on disk."""
    return sorted(directory.glob(f"{_session_stem(session_key)}-*"))


def saved_session(path: Path) -> str | None:
    """The session a state file was saved for (from its header); None for a file
    that is not one."""
    try:
        with path.open("rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                return None
            (header_len,) = _LENGTH.unpack(handle.read(_LENGTH.size))
            session = json.loads(handle.read(min(header_len, HEAD_BYTES))).get("session")
    except (OSError, ValueError, struct.error, AttributeError):
        return None
    return session if isinstance(session, str) else None


@dataclass
class SavedState:
    ledger: Ledger
    data: bytearray  # llama.cpp sequence state, as llama_state_seq_get_data wrote it


class StateStore:
    """State files for one loaded model (`model_name` + `fingerprint`)."""

    def __init__(self, directory: Path, model_name: str, fingerprint: str, max_bytes: int):
        self.directory = directory
        self.model_name = model_name
        self.fingerprint = fingerprint
        self.max_bytes = max_bytes

    def path(self, session_key: str) -> Path:
        model = hashlib.sha256(self.model_name.encode()).hexdigest()[:8]
        return self.directory / f"{_session_stem(session_key)}-{model}{SUFFIX}"

    def save(self, session_key: str, ledger: Ledger, data) -> bool:
        """Writes atomically (temp file + rename); False when it cannot fit the cap."""
        tokens = np.asarray(ledger.tokens, dtype=np.int32).tobytes()
        header = json.dumps(
            {
                "fingerprint": self.fingerprint,
                "session": session_key,
                "model": self.model_name,
                "n_tokens": len(ledger.tokens),
                "spans": [[s.start, s.n_pos, s.key] for s in ledger.spans],
                "state_bytes": len(data),
                "crc32": zlib.crc32(data, zlib.crc32(tokens)),
            }
        ).encode()
        total = len(MAGIC) + _LENGTH.size + len(header) + len(tokens) + len(data)
        target = self.path(session_key)
        if total > self.max_bytes:
            self.delete(session_key)  # an older, shorter state would now be misleading
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = target.with_suffix(f".tmp{os.getpid()}")
        try:
            with temp.open("wb") as handle:
                handle.write(MAGIC + _LENGTH.pack(len(header)) + header)
                handle.write(tokens)
                handle.write(data)
            os.replace(temp, target)
        except OSError:
            temp.unlink(missing_ok=True)
            return False
        self.evict(keep=target)
        return True

    def load(self, session_key: str) -> SavedState | None:
        """The saved state, or None; a file that does not match is deleted."""
        path = self.path(session_key)
        try:
            with path.open("rb") as handle:
                state = self._read(handle, os.fstat(handle.fileno()).st_size, session_key)
        except FileNotFoundError:
            return None
        except OSError:
            state = None
        if state is None:
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used: evicted last
        return state

    def _read(self, handle, size: int, session_key: str) -> SavedState | None:
        if handle.read(len(MAGIC)) != MAGIC:
            return None
        prefix = handle.read(_LENGTH.size)
        if len(prefix) != _LENGTH.size:
            return None
        (header_len,) = _LENGTH.unpack(prefix)
        try:
            header = json.loads(handle.read(min(header_len, size)))
            n_tokens, state_bytes = int(header["n_tokens"]), int(header["state_bytes"])
        except (ValueError, KeyError, TypeError):
            return None
        mine = (header.get("fingerprint"), header.get("session"), header.get("model"))
        if mine != (self.fingerprint, session_key, self.model_name):
            return None
        if size != len(MAGIC) + _LENGTH.size + header_len + 4 * n_tokens + state_bytes:
            return None  # truncated or padded
        tokens = handle.read(4 * n_tokens)
        data = bytearray(state_bytes)  # read in place: state can be gigabytes
        if handle.readinto(data) != state_bytes:
            return None
        if zlib.crc32(data, zlib.crc32(tokens)) != header.get("crc32"):
            return None
        spans = [ImageSpan(int(a), int(n), str(k)) for a, n, k in header.get("spans", [])]
        ledger = Ledger(np.frombuffer(tokens, dtype=np.int32).tolist(), spans)
        return SavedState(ledger, data)

    def delete(self, session_key: str) -> None:
        self.path(session_key).unlink(missing_ok=True)

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Deletes least recently used state files until the directory fits the cap."""
        return evict_oldest(self.directory, SUFFIX, self.max_bytes, keep)


def evict_oldest(directory: Path, suffix: str, max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Deletes the least recently used `*suffix` files of a folder (oldest mtime first,
    never `keep`) until the rest fit in max_bytes; returns what it deleted."""
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
        if path == keep:
            continue
        path.unlink(missing_ok=True)
        total -= size
        removed.append(path)
    return removed


def capture_sequence(llm) -> ctypes.Array:
    """llama.cpp's state of sequence 0 (its KV cells), as a byte buffer."""
    import llama_cpp

    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
    if written != size:
        raise RuntimeError(f"llama.cpp wrote {written} of {size} state bytes")
    return buffer


def restore_sequence(llm, data: bytearray) -> bool:
    """Loads a captured sequence into an emptied KV cache; False if llama.cpp refuses it."""
    import llama_cpp

    llm._ctx.kv_cache_clear()
    if not data:
        return False
    buffer = (ctypes.c_uint8 * len(data)).from_buffer(data)
    return llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buffer, len(data), 0) == len(data)


class KVContext:
    """What the one llama.cpp context holds and for which chat: the image spans beside
    llm.input_ids (which has the token ids), the resident session, and its saving and
    restoring. Several chats share the context: the most recent one stays resident."""

    def __init__(self, store: StateStore | None = None):
        self.store = store
        self.spans: list[ImageSpan] = []
        self.session: str | None = None  # whose turns the KV cache holds
        self.scope = ""  # the login those turns came from: only its requests reuse them
        self.unsaved = False
        self._writer: threading.Thread | None = None

    def enter(self, llm, session: str | None, scope: str = "") -> None:
        """Make `session` resident: save the outgoing chat, restore the incoming one's
        saved state if it has one (else its prompt reuses whatever prefix matches,
        but only a prefix left by the same `scope`: another login's context is
        emptied first, so its tokens are neither reused nor counted as cached)."""
        if scope != self.scope:
            self.save(llm)
            self.forget(llm)
            self.scope = scope
        if session == self.session:
            return
        self.save(llm)
        self.session = session
        if session is None or self.store is None:
            return
        self.wait()
        saved = self.store.load(session)
        if saved is None:
            return
        if len(saved.ledger) < llm.n_ctx() and restore_sequence(llm, saved.data):
            n = len(saved.ledger)
            llm.input_ids[:n] = saved.ledger.tokens
            llm.n_tokens, llm._requires_eval = n, True
            self.spans = saved.ledger.spans
        else:
            self.store.delete(session)
            self.forget(llm)
            self.session = session

    def keep_prefix(self, llm, wanted: Ledger) -> int:
        """Drops the KV tail that `wanted` does not share; returns positions kept."""
        n_keep = reusable_prefix(llm.input_ids[: llm.n_tokens], self.spans, wanted)
        if n_keep < llm.n_tokens and not (n_keep > 0 and llm._ctx.kv_cache_seq_rm(-1, n_keep, -1)):
            n_keep = 0  # nothing shared, or a cache that cannot drop a tail (recurrent)
            llm.reset()
            llm._ctx.kv_cache_clear()
        llm.n_tokens = n_keep
        self.spans = [span for span in self.spans if span.end <= n_keep]
        return n_keep

    def end_turn(self, llm, prompt_end: int) -> None:
        """Keeps the prompt, drops the answer: its tokens were decoded one at a time,
        and the next turn's prompt evaluates them as a batch, as a cold prefill does."""
        if llm.n_tokens > prompt_end:
            llm._ctx.kv_cache_seq_rm(-1, prompt_end, -1)
            llm.n_tokens = prompt_end
        self.unsaved = True
        self.save(llm)

    def forget(self, llm) -> None:
        llm.reset()
        llm._ctx.kv_cache_clear()
        self.spans, self.session, self.unsaved = [], None, False

    def save(self, llm) -> None:
        """Writes the resident chat's state if it changed: captured here (a memory copy,
        under the engine lock), written to disk on a thread so the answer is not held up."""
        if not (self.unsaved and self.session and self.store):
            return
        self.unsaved = False
        session, store = self.session, self.store
        try:
            data = capture_sequence(llm)
        except RuntimeError:
            store.delete(session)  # an older state would not match this chat any more
            return
        ledger = Ledger(llm.input_ids[: llm.n_tokens].tolist(), list(self.spans))
        self.wait()
        self._writer = threading.Thread(target=store.save, args=(session, ledger, data), name="kv-save")
        self._writer.start()

    def wait(self) -> None:
        if self._writer is not None:
            self._writer.join()
            self._writer = None
