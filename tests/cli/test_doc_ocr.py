"""`launch.py doc` on a scanned PDF: its pages are read by OCR in the document workers,
and the summary says how many; `--no-ocr`-style settings (L4P_OCR=false) turn it off."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO
from tests.fixtures import scans
from tests.fixtures.cli import last_json


def doc(path, data_dir, **env) -> subprocess.CompletedProcess:
    command = [sys.executable, "launch.py", "doc", str(path), "--json", "--data-dir", str(data_dir)]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def test_doc_reads_a_scan_by_ocr_and_says_so(tmp_path):
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(scans.scanned_pdf(scans.udhr_pdf("en", 2), scans.POOR))
    result = doc(scan, tmp_path / "on")
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert (summary["pages"], summary["pages_with_text"], summary["pages_ocr"]) == (2, 2, 2)

    off = doc(scan, tmp_path / "off", L4P_OCR="false")
    assert off.returncode == 0, off.stderr
    summary = last_json(off.stdout)
    assert (summary["pages_with_text"], summary["pages_ocr"]) == (0, 0)
