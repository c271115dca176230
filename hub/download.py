"""One file from the hub, resumable and verified, on huggingface_hub's public API: its
HEAD /resolve (`get_hf_file_metadata`) for the file's location and its HTTP session
(`get_session`, with the hub's headers, proxies and retries) for the bytes. Its own
`hf_hub_download` writes to a temporary file it deletes when a download fails, so a
40 GB pull cut at 39 GB would start again from 0; what we add is that resume — the
partial file kept across a crash, the rest asked for with a Range request — and the
sha256 check against what the hub advertises.

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
QUEUE_CHUNKS = 8  # bytes waiting for the hasher stay under 8 network chunks
NETWORK_CHUNK = 4 * 2**20


class PullCancelled(Exception):
    """Stopped on request; the partial file stays for the next pull to resume."""


class DownloadCut(UserError):
    """The connection ended before the whole file arrived; what came is kept."""


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
    """Appends to the partial file, hashes, reports bytes, and stops when cancelled."""

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

    def restart(self) -> None:
        """The server sent the whole file, not the rest: write it again from 0."""
        self.restarted = True
        self._file.seek(0)
        self._file.truncate(0)


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
    from huggingface_hub.utils import build_hf_headers

    partial.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("ab") as file:
        _lock(file, remote)  # two pulls appending to one partial file would corrupt it
        done = os.fstat(file.fileno()).st_size
        if done > remote.size:  # not a prefix of this file
            file.truncate(0)
            done = 0
        hasher = _Sha256Thread()
        writer = _HashingWriter(file, hasher, on_bytes, cancel)
        try:
            _hash_prefix(partial, done, hasher)
            if done < remote.size:
                url = hf_hub_url(repo_id, remote.path, revision=commit, endpoint=endpoint)
                location = get_hf_file_metadata(url, token=token, endpoint=endpoint).location
                try:
                    _get_rest(location, build_hf_headers(token=token), done, writer)
                finally:
                    file.flush()  # what arrived is on disk for the resume (no fsync: the sha256 judges)
            got = file.tell()
        finally:
            digest = hasher.hexdigest()  # also ends the hashing thread when the download failed
    if got != remote.size:
        raise DownloadCut(
            f"the download of {remote.name} stopped at {got:,} of {remote.size:,} bytes; "
            "run the pull again to continue it"
        )
    if writer.restarted:
        digest = sha256_of(partial)
    if remote.sha256 and digest != remote.sha256:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatch(remote, digest)
    return partial


def _get_rest(location: str, headers: dict[str, str], done: int, writer: _HashingWriter) -> None:
    """GET the bytes from `done` on; a server that ignores the Range (200, the whole
    file, as some CDNs do) has the file written again from 0."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session, hf_raise_for_status

    if done:
        headers = {**headers, "Range": f"bytes={done}-"}
    request = get_session().stream(
        "GET", location, headers=headers, follow_redirects=True, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT
    )
    with request as response:
        hf_raise_for_status(response)
        if done and response.status_code != 206:
            writer.restart()
        for chunk in response.iter_bytes(NETWORK_CHUNK):
            writer.write(chunk)


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
