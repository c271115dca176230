"""No active content from the app's origin: /blobs serves a stored file inline only when
its bytes are a raster image, under the type the bytes are. SVG, HTML, XML, XHTML, a
PDF, and bytes stored under a raster type they are not (a crafted import, a polyglot)
come as sandboxed downloads; every blob answer carries nosniff. The page's own policy
forbids framing it."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import httpx
import pytest

from documents.parts import ChatMessage
from engine.types import ImagePart, TextPart
from sessions import Store
from tests.conftest import png_bytes, start_app, stop_app

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>window.__xss=1</script></svg>'
HTML = b"<!doctype html><html><body><script>window.__xss=1</script></body></html>"
XML = b'<?xml version="1.0"?><x:script xmlns:x="http://www.w3.org/1999/xhtml">window.__xss=1</x:script>'
STORED = {  # name: (bytes, the MIME type stored with them)
    "svg": (SVG, "image/svg+xml"),
    "svg-as-png": (SVG, "image/png"),
    "html": (HTML, "text/html"),
    "html-as-jpeg": (HTML, "image/jpeg"),
    "xml": (XML, "application/xml"),
    "xhtml": (XML, "application/xhtml+xml"),
    "pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "application/pdf"),
    "gif-html-polyglot": (b"GIF89a/*" + HTML, "text/html"),  # a real GIF header: shown as a GIF
    "png": (png_bytes(), "image/png"),
    "png-as-svg": (png_bytes(color="blue"), "image/svg+xml"),
}
RASTER = {"png": "image/png", "png-as-svg": "image/png", "gif-html-polyglot": "image/gif"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = tmp_path_factory.mktemp("blob-types")
    with Store(data) as store:
        session = store.create_session(title="blobs of every kind")
        parts = [ImagePart(raw, mime, name) for name, (raw, mime) in STORED.items()]
        store.add_user_message(session, None, ChatMessage("user", (TextPart("look"), *parts)))
    proc, url = start_app("--data-dir", str(data))
    yield SimpleNamespace(url=url.rstrip("/"))
    stop_app(proc)


@pytest.mark.parametrize("name", list(STORED))
def test_only_raster_images_are_shown_inline(served, name):
    raw, _ = STORED[name]
    reply = httpx.get(f"{served.url}/blobs/{hashlib.sha256(raw).hexdigest()}", timeout=10)
    assert reply.status_code == 200 and reply.content == raw
    assert reply.headers["x-content-type-options"] == "nosniff"
    disposition = reply.headers.get("content-disposition", "")
    if name in RASTER:
        assert reply.headers["content-type"] == RASTER[name]
        assert not disposition.startswith("attachment")  # shown in the page
    else:
        assert reply.headers["content-type"] == "application/octet-stream"
        assert disposition.startswith("attachment")
        policy = reply.headers["content-security-policy"]
        assert "sandbox" in policy and "default-src 'none'" in policy


def test_the_page_cannot_be_framed_by_another_site(served):
    policy = httpx.get(served.url + "/", timeout=10).headers["content-security-policy"]
    assert "frame-ancestors 'self'" in policy
    assert "object-src 'none'" in policy and "base-uri 'self'" in policy and "form-action 'self'" in policy
