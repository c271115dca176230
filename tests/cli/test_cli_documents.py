"""`launch.py doc` and `launch.py ask --file`: real subprocesses, real PDFs, real model."""

from __future__ import annotations

import pytest

from tests.documents.test_documents_context import SECRET_PAGE, long_report
from tests.fixtures.bad_documents import PASSWORDS, bad_documents, encrypted_pdf
from tests.fixtures.cli import last_json, run


@pytest.fixture(scope="module")
def report_pdf(tmp_path_factory):
    path = tmp_path_factory.mktemp("docs") / "report.pdf"
    path.write_bytes(long_report(300))
    return path


def test_doc_prints_the_summary_once_parsed(report_pdf):
    result = run("doc", str(report_pdf), "--json")
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["pages"] == 300 and summary["pages_with_text"] == 300
    assert summary["pages_needing_vision"] == 0 and summary["kind"] == "pdf"
    assert summary["estimated_tokens"] > 300 * 50 and len(summary["sha256"]) == 64
    table = run("doc", str(report_pdf))  # stored: the second read is the same document
    assert (
        table.returncode == 0
        and summary["sha256"] in table.stdout
        and "pages needing vision  0" in table.stdout
    )


BAD = bad_documents()


@pytest.mark.parametrize("label", sorted(set(BAD) - {"image"}))
def test_doc_refuses_bad_documents_with_one_line(tmp_path, label):
    name, data, expected = BAD[label]
    path = tmp_path / name
    path.write_bytes(data)
    extra = ["--password", PASSWORDS[label]] if label in PASSWORDS else []
    if label == "decompression-bomb":
        pytest.skip("a bomb is refused when its page is rendered, not when its text is read")
    result = run("doc", str(path), *extra)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_ask_with_a_page_range(report_pdf):
    result = run("ask", "--file", str(report_pdf), "--pages", "2-4", "--max-tokens", "8", "--json", "Sum up.")
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["pages_sent"] == {"report.pdf": [2, 3, 4]}
    assert 0 < summary["context_used"] < summary["n_ctx"] == 8192
    assert "context used:" in result.stderr


def test_ask_about_a_long_pdf_picks_the_relevant_page_and_answers(report_pdf):
    result = run(
        "ask", "--file", str(report_pdf), "-c", "1024", "--max-tokens", "32", "--json",
        "What is the launch code for the falcon project?",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["pages_sent"]["report.pdf"] == [SECRET_PAGE] and summary["n_ctx"] == 1024
    assert "MAGENTA" in summary["text"].upper()
    assert "most relevant pages" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pages", "5-2"], "page range '5-2' is backwards"),
        (["--pages", "1-200"], "the prompt needs"),
        (["--pages", "299-301"], "has 300 pages; no page 301"),
        (["--pdf-mode", "images"], "pages as images need a model that sees"),
    ],
)
def test_ask_refuses_what_cannot_be_sent(report_pdf, args, message):
    result = run("ask", "--file", str(report_pdf), *args, "--no-save", "Sum up.")
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_ask_with_an_encrypted_pdf(tmp_path):
    path = tmp_path / "locked.pdf"
    path.write_bytes(encrypted_pdf("s3cret"))
    refused = run("ask", "--file", str(path), "--no-save", "What is it?")
    assert refused.returncode == 2 and "locked.pdf is encrypted; give its password" in refused.stderr
    result = run("ask", "--file", str(path), "--password", "s3cret", "--max-tokens", "8", "--json", "Sum up.")
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["pages_sent"]["locked.pdf"]
