"""Model output cannot act: every payload of the corpus, rendered as the chat renders
an answer, leaves only allow-listed tags and attributes, no inline style, no script
URL, no image from outside; and what an answer legitimately holds (code, tables,
links, emphasis, the metrics line) stays."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from app.render import to_chatbot
from app.safe_markdown import ATTRIBUTES, BLOB_SRC, TAGS
from chat.turns import assistant_turn
from tests.app.xss_corpus import PAYLOADS

ALLOWED_ATTRIBUTES = {tag: {*names, "class"} for tag, names in ATTRIBUTES.items()}
ALLOWED_ATTRIBUTES["a"] |= {"rel", "target"}
ALLOWED_ATTRIBUTES.update(span={"class"}, code={"class"})


class Elements(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def shown(answer: str) -> str:
    (message,) = to_chatbot([assistant_turn(answer, "complete")])
    return message["content"]


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.found


def test_the_corpus_is_broad():
    assert len(PAYLOADS) >= 40


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_keeps_anything_that_acts(payload):
    html = shown(f"Sure, here it is:\n\n{payload}\n\nDone.")
    for tag, attrs in elements(html):
        assert tag in TAGS, (tag, html)
        assert set(attrs) <= ALLOWED_ATTRIBUTES.get(tag, set()), (tag, attrs)
        for value in attrs.values():
            assert "javascript:" not in value.lower().replace(" ", "") and "data:" not in value.lower()
        if tag == "a":
            # A scheme the browser would run is gone; a relative link (a path here) may stay.
            assert urlsplit(attrs.get("href", "")).scheme in ("", "http", "https", "mailto"), attrs
            assert {"noopener", "noreferrer"} <= set(attrs["rel"].split())
        if tag == "img":
            assert BLOB_SRC.fullmatch(attrs.get("src", "/blobs/" + "0" * 64)), attrs
    assert "Sure, here it is:" in html  # the text before it survives
    if "<style>" not in payload:  # an unclosed style swallows the rest, as a browser's would
        assert "Done." in html


def test_what_an_answer_legitimately_holds_stays():
    blob = "/blobs/" + "ab" * 32
    answer = (
        "# Title\n\n**bold** and *em* and `x < y`\n\n"
        "```python\nif a < b:\n\n    print('<b>hi</b>')\n```\n\n"
        "| name | value |\n|---|---|\n| a | 1 |\n\n"
        f"- one\n- two\n\n> quoted\n\n[docs](https://example.org/docs) ![chart]({blob})\n\nH<sub>2</sub>O"
    )
    html = shown(answer)
    tags = [tag for tag, _ in elements(html)]
    for tag in (
        "h1",
        "strong",
        "em",
        "code",
        "pre",
        "table",
        "th",
        "td",
        "ul",
        "li",
        "blockquote",
        "a",
        "sub",
    ):
        assert tag in tags, (tag, html)
    assert "if a &lt; b:" in html and "print('&lt;b&gt;hi&lt;/b&gt;')" in html  # code shows markup as text
    assert f'<img src="{blob}" alt="chart">' in html
    link = next(attrs for tag, attrs in elements(html) if tag == "a")
    assert link["href"] == "https://example.org/docs" and link["target"] == "_blank"


def test_the_metrics_line_and_citations_keep_their_markup():
    (message,) = to_chatbot([assistant_turn("Answer.", "complete", footer="12 tok/s")])
    assert '<span class="metrics">12 tok/s</span>' in message["content"]


def test_a_citation_to_a_page_the_document_lacks_is_not_a_link():
    from app.render import link_citations
    from documents.parts import DocumentPart

    report = DocumentPart("ab" * 32, "report.pdf", 137, text_pages=(1, 2, 3))
    text = link_citations("See [p. 2], [p. 120] and [p. 200].", (report,))
    assert f"[[p. 2]](#page-{'ab' * 8}-2)" in text and f"[[p. 120]](#page-{'ab' * 8}-120)" in text
    assert "[p. 200]." in text and "-200)" not in text  # page 200 of 137: plain text


@pytest.mark.parametrize(
    ("markdown", "plain"),
    [
        ("## Results\n- the **zeppelin** flew", "Results the zeppelin flew"),
        ("see [the manual](https://example.org) and `launch.py`", "see the manual and launch.py"),
        ("> quoted *emphasis* and __strong__ text", "quoted emphasis and strong text"),
        ("2 * 3 = 6 and snake_case_name stay", "2 * 3 = 6 and snake_case_name stay"),
    ],
)
def test_a_search_result_shows_plain_words(markdown, plain):
    from app.render import plain_text

    assert plain_text(markdown) == plain
