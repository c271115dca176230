"""Saved images and documents reach the page only through `/blobs/<sha256>`, which
serves a file to a logged-in user whose chats hold it and answers 404 to everyone
else, exactly as for bytes nobody stored. The blobs folder is not among Gradio's
allowed paths, and chat files get this route's URLs (see `blob_link`), so Gradio
neither serves the folder nor keeps copies of it in its own cache.

Only raster images are served inline; every other blob is a sandboxed download, so
nothing stored (an SVG with a script, an HTML page in an import) runs in this origin."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse

ROUTE = "/blobs"
SHA256 = re.compile(r"[0-9a-f]{64}")
NOT_FOUND = "Not found"
# Raster images by their first bytes: the only blobs shown inline, under the type the
# bytes are, whatever type was stored with them (an import names its own).
RASTER_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
ATTACHMENT_SUFFIX = {"application/pdf": ".pdf", "image/svg+xml": ".svg", "text/plain": ".txt"}


def blob_routes(runtime) -> list:
    router = APIRouter(prefix=ROUTE)

    @router.get("/{sha256}")
    async def blob(sha256: str, request: Request):
        user = page_user(request)
        found = None
        if user is not None and SHA256.fullmatch(sha256):
            found = runtime.store.readable_blob(sha256, user)
        if found is None:
            return PlainTextResponse(NOT_FOUND, status_code=404)
        path, _stored_mime = found
        # Another login's browser must not get it from a shared cache either.
        headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
        raster = raster_type(path)
        if raster:
            return FileResponse(path, media_type=raster, headers=headers, content_disposition_type="inline")
        # Anything else (SVG, HTML, XML, a PDF, bytes under a crafted MIME type) could run
        # script in this origin if a browser rendered it: a download, sandboxed even so.
        headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
        return FileResponse(
            path,
            media_type="application/octet-stream",
            headers=headers,
            filename=f"{sha256[:16]}{ATTACHMENT_SUFFIX.get(_stored_mime, '.bin')}",
            content_disposition_type="attachment",
        )

    return router.routes


def raster_type(path: Path) -> str | None:
    """The image type of a PNG, JPEG, GIF, WebP or BMP file by its header; None for
    anything else."""
    with open(path, "rb") as file:
        head = file.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in RASTER_MAGIC if head.startswith(magic)), None)


def page_user(request: Request) -> str | None:
    """The page's logged-in user (Gradio's login cookie); '' when the app runs
    without logins; None for a request without a valid login."""
    app = request.app
    if getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None:
        return ""
    cookie = getattr(app, "cookie_id", "")
    cookies = request.cookies
    token = cookies.get(f"access-token-{cookie}") or cookies.get(f"access-token-unsecure-{cookie}")
    return app.tokens.get(token) if token else None


def blob_link(request) -> Callable[[str], str]:
    """sha256 -> the absolute URL of its blob for this page (a gr.Request). Absolute,
    because Gradio copies any file it is given by a relative path into its cache."""
    from gradio import route_utils

    raw = request.request
    try:
        root = route_utils.get_root_url(raw, route_utils.get_api_call_path(raw), raw.app.root_path or None)
    except (ValueError, AttributeError):  # not called through the page's queue (a test)
        root = str(raw.base_url).rstrip("/") if raw is not None else ""
    return lambda sha256: f"{root}{ROUTE}/{sha256}"


def gradio_copies(store, shas) -> dict[str, Path]:
    """Where Gradio keeps its own copies of these blobs (the uploads they came from,
    files it served): a folder per file named by Gradio's seeded hash of the bytes."""
    from gradio import processing_utils
    from gradio.utils import get_upload_folder

    root = Path(get_upload_folder())
    copies = {}
    for sha256 in shas:
        path = store.blob_path(sha256)
        if path.is_file():
            copies[sha256] = root / processing_utils.hash_file(path)
    return copies


def remove_gradio_copies(store, copies: dict[str, Path]) -> None:
    """Removes the copies of blobs the store no longer has: a blob another chat still
    holds keeps its copies, which that chat's page may be showing."""
    for sha256, folder in copies.items():
        if not store.blob_path(sha256).exists():
            shutil.rmtree(folder, ignore_errors=True)
