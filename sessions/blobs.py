"""Attachment bytes as plain files under <data_dir>/blobs/<sha[:2]>/<sha>, stored once
however many messages hold them. Rows in `attachments` describe them; the store keeps
the two in step by writing and removing files only while it holds the write lock."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Blobs:
    def __init__(self, root: Path):
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes, sha256: str) -> None:
        """Write the file unless it is already there. Written to a temporary name and
        renamed, so a crash never leaves a truncated blob under the real name."""
        final = self.path(sha256)
        if final.exists():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                # The row that points here commits right after; the bytes must be on
                # disk before it, or a power cut could leave a row with an empty file.
                os.fsync(file.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def remove(self, sha256: str) -> None:
        path = self.path(sha256)
        path.unlink(missing_ok=True)
        # Fails while other blobs share the folder, which is fine.
        with contextlib.suppress(OSError):
            path.parent.rmdir()
