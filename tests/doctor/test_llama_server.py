"""`doctor`'s llama-server check: the real binary starts on the tiny model; a missing
one and one that cannot start are each one line."""

from __future__ import annotations

import pytest

from doctor.llama_server import check_llama_server
from engine.server_process import server_binary


@pytest.mark.skipif(server_binary() is None, reason="llama-server is not built (make setup)")
def test_the_built_llama_server_starts_and_answers_health():
    report = check_llama_server()
    assert report.ok, report.message
    assert str(server_binary()) in report.message and "answers /health" in report.message


def test_a_missing_llama_server_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("L4P_LLAMA_SERVER", str(tmp_path / "absent"))
    report = check_llama_server()
    assert not report.ok and "\n" not in report.message and "make setup" in report.message


def test_a_binary_that_cannot_serve_is_reported(monkeypatch, tmp_path):
    broken = tmp_path / "llama-server"
    broken.write_text("#!/bin/sh\necho 'error: this build is broken' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("L4P_LLAMA_SERVER", str(broken))
    report = check_llama_server()
    assert not report.ok and "did not start" in report.message
