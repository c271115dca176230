"""Gradio's temporary copies of uploads, removed once nothing needs them.

Gradio keeps every upload in its own folder (`<upload dir>/<hash>/<name>`) for the
server's life, and an upload the client aborts leaves its half-written temp file
(`<upload dir>/tmpXXXX`, 150 MB in the attack) behind. Here:
- a stored chat remembers the copies its uploads made (a GIF is stored re-encoded as
  PNG, so the copy cannot be found from the blob), removed when the chat is deleted;
- an upload request that fails or is aborted has its temp files removed."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SETTLE_S = 2.0  # a temp file untouched this long is no live upload's


def upload_folder() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def copies_of(paths: Iterable[str]) -> list[Path]:
    """The Gradio upload folders among `paths` (a path elsewhere is not Gradio's)."""
    root = upload_folder()
    found = []
    for path in paths:
        folder = Path(path).resolve().parent
        if folder.parent == root:
            found.append(folder)
    return found


class ChatUploads:
    """chat id -> the upload copies its turns were read from (this server's life)."""

    def __init__(self):
        self._copies: dict[str, set[Path]] = {}
        self._lock = threading.Lock()

    def remember(self, session_id: str, paths: Iterable[str]) -> None:
        if folders := copies_of(paths):
            with self._lock:
                self._copies.setdefault(session_id, set()).update(folders)

    def forget(self, session_id: str) -> None:
        """Removes the chat's upload copies (the chat is deleted)."""
        with self._lock:
            folders = self._copies.pop(session_id, set())
            still_used = set().union(*self._copies.values()) if self._copies else set()
        for folder in folders - still_used:
            shutil.rmtree(folder, ignore_errors=True)


CHAT_UPLOADS = ChatUploads()


def upload_sweep() -> Middleware:
    return Middleware(UploadSweep)


class UploadSweep:
    """After a POST to Gradio's /upload that fails or is aborted, the temp files that
    appeared in the upload folder during it are removed once they settle (a file
    still being written by another upload is left alone)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/upload"):
            await self.app(scope, receive, send)
            return
        root = Path(getattr(scope.get("app"), "uploaded_file_dir", None) or upload_folder())
        before = _temp_files(root)
        status: dict[str, int] = {}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if status.get("code") != 200:  # refused, failed or cut off: nothing will move them
                left = _temp_files(root) - before
                if left:
                    threading.Thread(target=_remove_settled, args=(left,), daemon=True).start()


def _temp_files(root: Path) -> set[Path]:
    """Gradio's upload temp files: plain files directly in the upload folder."""
    try:
        with os.scandir(root) as entries:
            return {Path(e.path) for e in entries if e.is_file(follow_symlinks=False)}
    except OSError:
        return set()


def _remove_settled(paths: set[Path]) -> None:
    time.sleep(SETTLE_S)
    for path in paths:
        try:
            if time.time() - path.stat().st_mtime >= SETTLE_S:
                path.unlink()
        except OSError:
            pass  # moved into its folder meanwhile, or already gone
