"""One file from the hub, resumable and verified. huggingface_hub does the HTTP (its
HEAD /resolve for the file's location, its `http_get` for the bytes, Range included);
what it does not do we do here: keep the partial file across a crash, so the next
run asks for the rest with a Range request, and check the sha256 the hub advertises.

The bytes are hashed while they arrive, on a second thread (hashlib releases the GIL),
so verifying costs no extra read of a 40 GB file."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from errors import UserError
from hub.quants import RemoteFile

READ_CHUNK = 16 * 2**20
QUEUE_CHUNKS = 8  # bytes waiting for the hasher stay under 8 x huggingface_hub's 10 MB chunks


class PullCancelled(Exception):
    """Stopped on request; the partial file stays for the next pull to resume."""


class PullBusy(UserError):
    """The same file is being downloaded by another pull."""


class ChecksumMismatch(UserError):
    def __init__(self, file: RemoteFile, actual: str):
        super().__init__(
            f"{file.path} is corrupt (sha256 {actual[:12]}…, the hub says {file.sha256[:12]}…); "
            "deleted it, run the pull again"
        )


class _Sha256Thread:
    """sha256 of everything handed to `feed`, computed on its own thread."""

    def __init__(self):
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_CHUNKS)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)

    def feed(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        self._queue.put(None)
        self._thread.join()
        return self._hash.hexdigest()


class _HashingWriter:
    """The file object `http_get` writes to: appends to the partial file, hashes,
    reports bytes, and stops when cancelled."""

    def __init__(self, file, hasher: _Sha256Thread, on_bytes: Callable[[int], None], cancel):
        self._file, self._hasher, self._on_bytes, self._cancel = file, hasher, on_bytes, cancel
        self.restarted = False  # the server ignored the Range: the file was rewritten from 0

    def write(self, chunk: bytes) -> int:
        written = self._file.write(chunk)
        self._hasher.feed(bytes(chunk))
        self._on_bytes(len(chunk))
        if self._cancel is not None and self._cancel.is_set():
            raise PullCancelled()  # after the write: what arrived is kept for the resume
        return written

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        self.restarted = True
        return self._file.truncate(size)


def fetch(
    repo_id: str,
    remote: RemoteFile,
    commit: str,
    partial: Path,
    *,
    on_bytes: Callable[[int], None] = lambda n: None,
    cancel: threading.Event | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download `remote` into `partial`, continuing what a previous run left there;
    returns `partial` once its size and sha256 are right. A wrong sha256 deletes it."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    partial.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("ab") as file:
        _lock(file, remote)  # two pulls appending to one partial file would corrupt it
        done = os.fstat(file.fileno()).st_size
        if done > remote.size:  # not a prefix of this file
            file.truncate(0)
            done = 0
        hasher = _Sha256Thread()
        try:
            _hash_prefix(partial, done, hasher)
            url = hf_hub_url(repo_id, remote.path, revision=commit, endpoint=endpoint)
            location = get_hf_file_metadata(url, token=token, endpoint=endpoint).location
            writer = _HashingWriter(file, hasher, on_bytes, cancel)
            try:
                http_get(
                    location,
                    writer,  # type: ignore[arg-type]
                    resume_size=done,
                    headers=build_hf_headers(token=token),
                    expected_size=remote.size,
                    displayed_filename=remote.name,
                    tqdm_class=_Silent,
                )
            finally:
                file.flush()  # what arrived is on disk for the resume (no fsync: the sha256 judges)
        finally:
            digest = hasher.hexdigest()  # also ends the hashing thread when the download failed
    if writer.restarted:
        digest = sha256_of(partial)
    if remote.sha256 and digest != remote.sha256:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatch(remote, digest)
    return partial


def _lock(file, remote: RemoteFile) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one pull at a time is on the user
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        message = f"another pull is downloading {remote.name} right now; wait for it to finish"
        raise PullBusy(message) from None


def _hash_prefix(partial: Path, size: int, hasher: _Sha256Thread) -> None:
    if not size:
        return
    with partial.open("rb") as file:
        while chunk := file.read(READ_CHUNK):
            hasher.feed(chunk)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Silent:
    """A do-nothing progress bar for huggingface_hub: ours draws the bar."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
