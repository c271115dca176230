"""Chat text (a model's answer, an imported chat's turns) as HTML that cannot act.

The text is rendered as Markdown here and the HTML passed through nh3 (the Rust
`ammonia` allow-list sanitizer) before the page sees it: what remains is text, code,
tables, lists, quotes, links and images of this app's own /blobs/ route. Inline
styles (a full-page overlay), forms and their fields (a fake login posting
elsewhere), frames, objects, embeds, SVG and scripts are dropped, whatever spelling
or nesting the model found; links open in a new tab with noopener/noreferrer.

The page's Chatbot then gets HTML blocks, which Markdown passes through as they are
(its own sanitizer runs after ours and can only remove more)."""

from __future__ import annotations

import functools
import re

BLOB_SRC = re.compile(r"/blobs/[0-9a-f]{64}")
PRE_BLOCK = re.compile(r"(<pre\b.*?</pre>)", re.DOTALL)
BLANK_LINES = re.compile(r"\n\s*\n")
LINK_SCHEMES = {"http", "https", "mailto"}
TAGS = {
    *("p", "br", "hr", "div", "span", "blockquote", "pre", "code", "kbd", "samp", "var"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd"),
    *("em", "strong", "b", "i", "u", "s", "del", "ins", "mark", "sub", "sup", "small", "abbr"),
    *("table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption"),
    *("details", "summary", "a", "img"),
}
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"align", "colspan", "rowspan"},
    "td": {"align", "colspan", "rowspan"},
    "ol": {"start"},
    "abbr": {"title"},
}
# Our own markup in chat text (app/render.py): the metrics footer, the reading line,
# and code blocks' language (the page's highlighter reads it).
CLASSES = {"span": {"metrics", "reading"}}
CODE_LANGUAGE = re.compile(r"language-[\w+#.-]{1,40}")
# Whose content goes too, not just the tag: what it holds is not text for the reader.
DROPPED_WITH_CONTENT = {"script", "style", "template", "textarea", "select", "option", "title", "noscript"}


CACHED_CHARS = 100_000  # longer texts are rendered each time, not kept


def safe_html(markdown_text: str) -> str:
    """`markdown_text` rendered and sanitized; its text (never its markup) kept."""
    if len(markdown_text) > CACHED_CHARS:
        return _safe_html(markdown_text)
    return _cached_safe_html(markdown_text)


@functools.lru_cache(maxsize=512)  # a chat re-renders its older turns on every token
def _cached_safe_html(markdown_text: str) -> str:
    return _safe_html(markdown_text)


def _safe_html(markdown_text: str) -> str:
    import nh3

    html = _markdown().render(markdown_text)
    clean = nh3.clean(
        html,
        tags=TAGS,
        attributes={**ATTRIBUTES, "code": {"class"}, "span": {"class"}},
        clean_content_tags=DROPPED_WITH_CONTENT,
        url_schemes=LINK_SCHEMES,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        attribute_filter=_keep_attribute,
        strip_comments=True,
    )
    return _one_html_block(clean.strip())


def _one_html_block(html: str) -> str:
    """The page's Markdown ends an HTML block at a blank line and reads what follows as
    Markdown again (a code block with an empty line fell apart): no blank line is
    left. Inside <pre> newlines become &#10;, which the browser reads back as newlines;
    elsewhere a run of them is whitespace, so one does."""
    pieces = PRE_BLOCK.split(html)
    return "".join(
        piece.replace("\n", "&#10;") if index % 2 else BLANK_LINES.sub("\n", piece)
        for index, piece in enumerate(pieces)
    )


def _keep_attribute(tag: str, name: str, value: str) -> str | None:
    if tag == "img" and name == "src":
        return value if BLOB_SRC.fullmatch(value) else None  # nothing fetched from elsewhere
    if name == "class":
        allowed = CLASSES.get(tag, set())
        kept = [c for c in value.split() if c in allowed or (tag == "code" and CODE_LANGUAGE.fullmatch(c))]
        return " ".join(kept) or None
    return value


@functools.cache
def _markdown():
    from markdown_it import MarkdownIt

    # CommonMark with raw HTML on (nh3 decides what of it stays), GFM tables and
    # strikethrough; bare URLs stay text, as the model wrote them.
    return MarkdownIt("commonmark", {"html": True, "breaks": True}).enable(["table", "strikethrough"])
