"""`launch.py ask --file` against a real OpenAI-compatible server on loopback: a question
that is only a document (no --system) reaches the server, and a document too long for
the context says, under the answer and in --json, which pages went and why."""

from __future__ import annotations

import re

import pytest

from tests.documents.test_documents_context import SECRET_PAGE, long_report
from tests.fixtures.cli import last_json, run
from tests.fixtures.scripted_openai import Script, ScriptedServer


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(first_s=0.01)) as served:
        yield served


def ask(server, path, *flags: str):
    endpoint = ["--endpoint", server.url, "--model", "scripted"]
    return run("ask", *endpoint, "--no-save", "--file", str(path), *flags)


def test_a_document_alone_reaches_the_endpoint_without_a_system_prompt(server, tmp_path):
    short = tmp_path / "short.pdf"
    short.write_bytes(_short_pdf())
    result = ask(server, short, "--json", "What is the launch code?")
    assert result.returncode == 0, result.stderr
    assert "nothing to send" not in result.stderr
    sent = server.script.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["user"]
    text = content_text(sent[0]["content"])
    assert "MAGENTA-7" in text and "[p. 2]" in text and "What is the launch code?" in text
    assert last_json(result.stdout)["pages_chosen"] == []  # it all fit: nothing to say


def content_text(content) -> str:
    """A chat message's text: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part["type"] == "text")


def _short_pdf() -> bytes:
    from tests.fixtures.documents import text_pdf

    return text_pdf(["An introduction.", "The launch code for the falcon project is MAGENTA-7."])


@pytest.fixture(scope="module")
def long_pdf(tmp_path_factory):
    path = tmp_path_factory.mktemp("docs") / "report.pdf"
    path.write_bytes(long_report(SECRET_PAGE + 3))
    return path


def test_a_long_document_says_which_pages_went_and_why(server, long_pdf):
    question = "What is the launch code for the falcon project?"
    result = ask(server, long_pdf, "-c", "2048", "--json", question)
    assert result.returncode == 0, result.stderr
    chosen = last_json(result.stdout)["pages_chosen"]
    assert len(chosen) == 1
    entry = chosen[0]
    assert entry["name"] == "report.pdf" and entry["total"] == SECRET_PAGE + 3
    assert SECRET_PAGE in entry["pages"] and 0 < len(entry["pages"]) < entry["total"]
    assert entry["why"] == "relevant"
    sent_of = f"sent {len(entry['pages'])} of {SECRET_PAGE + 3} pages"
    pattern = rf"report\.pdf: {sent_of}: .*{SECRET_PAGE}.* — most relevant"
    assert re.search(pattern, entry["line"])
    # What the server got is what the line says.
    sent = server.script.bodies[-1]["messages"][-1]["content"]
    text = content_text(sent)
    assert sorted(int(n) for n in re.findall(r"\[p\. (\d+)\]", text)) == entry["pages"]

    plain = ask(server, long_pdf, "-c", "2048", question)
    assert plain.returncode == 0, plain.stderr
    footer = plain.stderr.strip().splitlines()
    assert any(line == entry["line"] for line in footer), plain.stderr


def test_a_range_says_the_pages_were_asked_for(server, long_pdf):
    result = ask(server, long_pdf, "--pages", "1-3, 137", "--json", "Summarise.")
    assert result.returncode == 0, result.stderr
    (entry,) = last_json(result.stdout)["pages_chosen"]
    assert entry["pages"] == [1, 2, 3, 137] and entry["why"] == "range"
    assert entry["line"] == f"report.pdf: sent 4 of {SECRET_PAGE + 3} pages: 1–3, 137 — the pages asked for"
