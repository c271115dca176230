"""The built-in image prompts for fidelity (evals/suites/images.jsonl): charts, a
table, a sign and a document page, drawn here with PIL and PyMuPDF (nothing is
downloaded). Each prompt comes twice: with its picture, and as a text twin whose
question carries the same facts in words, so a report can tell a variant that
strays on images from one that strays everywhere."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from engine.types import ImagePart, Message, TextPart

SUITE = Path(__file__).parent / "suites" / "images.jsonl"
SIZE = (480, 320)
CHARS_PER_TOKEN = 4  # a window's worth of document text, roughly, cut at spaces


@dataclass(frozen=True)
class ScoredPrompt:
    """A prompt (images, then the question) and the answer whose tokens are scored."""

    name: str
    images: tuple[ImagePart, ...]
    question: str
    answer: str

    @property
    def kind(self) -> str:
        return "image" if self.images else "text"

    def messages(self) -> list[Message]:
        parts = (*self.images, TextPart(self.question)) if self.question else self.images
        return [Message("user", tuple(parts))]


def load_image_prompts(path: Path = SUITE, twins: bool = True) -> list[ScoredPrompt]:
    prompts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        draw = entry["draw"]
        image = ImagePart(render(draw), "image/png", entry["id"] + ".png", *SIZE)
        prompts.append(ScoredPrompt(entry["id"], (image,), entry["question"], entry["answer"]))
        if twins:
            question = f"{described(draw)}\n\n{entry['question']}"
            prompts.append(ScoredPrompt(entry["id"] + "/text", (), question, entry["answer"]))
    return prompts


def described(draw: dict) -> str:
    """The picture's facts in words (the text twin's context)."""
    kind = draw["kind"]
    if kind in ("bars", "line"):
        values = ", ".join(f"{k} {v}" for k, v in draw["values"].items())
        return f"{draw['title']}: {values}."
    if kind == "table":
        return "\n".join(" | ".join(row) for row in draw["rows"])
    return "\n".join(draw["lines"])


def render(draw: dict) -> bytes:
    if draw["kind"] == "page":
        return _page(draw["lines"])
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", SIZE, "white")
    pen = ImageDraw.Draw(picture)
    {"bars": _bars, "line": _line, "table": _table, "text": _text}[draw["kind"]](pen, draw)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def _plot_area(pen, draw: dict) -> tuple[int, int, int, int, float]:
    pen.text((20, 10), draw["title"], fill="black")
    left, top, right, bottom = 50, 40, SIZE[0] - 20, SIZE[1] - 40
    pen.line([(left, top), (left, bottom), (right, bottom)], fill="black", width=2)
    scale = (bottom - top) / max(draw["values"].values())
    return left, top, right, bottom, scale


def _bars(pen, draw: dict) -> None:
    left, _top, right, bottom, scale = _plot_area(pen, draw)
    step = (right - left) / len(draw["values"])
    for i, (label, value) in enumerate(draw["values"].items()):
        x = left + i * step + step * 0.2
        pen.rectangle([x, bottom - value * scale, x + step * 0.6, bottom], fill="steelblue")
        pen.text((x, bottom + 8), label, fill="black")
        pen.text((x, bottom - value * scale - 14), str(value), fill="black")


def _line(pen, draw: dict) -> None:
    left, _top, right, bottom, scale = _plot_area(pen, draw)
    step = (right - left) / len(draw["values"])
    points = []
    for i, (label, value) in enumerate(draw["values"].items()):
        x = left + i * step + step / 2
        points.append((x, bottom - value * scale))
        pen.text((x - 10, bottom + 8), label, fill="black")
    pen.line(points, fill="darkred", width=3)


def _table(pen, draw: dict) -> None:
    for r, row in enumerate(draw["rows"]):
        for c, cell in enumerate(row):
            box = [20 + c * 140, 20 + r * 50, 160 + c * 140, 70 + r * 50]
            pen.rectangle(box, outline="black", fill="lightgrey" if r == 0 else "white")
            pen.text((box[0] + 10, box[1] + 18), cell, fill="black")


def _text(pen, draw: dict) -> None:
    for i, line in enumerate(draw["lines"]):
        pen.text((40, 60 + i * 60), line, fill="black", font_size=36)


def _page(lines: list[str]) -> bytes:
    """A PDF page with the lines on it, rendered as a document page is (PyMuPDF)."""
    import pymupdf

    with pymupdf.open() as doc:
        page = doc.new_page(width=SIZE[0], height=SIZE[1])
        for i, line in enumerate(lines):
            page.insert_text((40, 50 + i * 40), line, fontsize=18 if i else 26)
        return page.get_pixmap(alpha=False).tobytes("png")


def document_prompts(images: tuple, pages, window: int) -> list:
    """The document's text in pieces of about `window` tokens, each read after the images."""
    from engine.types import EngineInputError

    prompts, size = [], max(window, 8) * CHARS_PER_TOKEN
    for number, text in pages:
        words, piece = text.split(), []
        for word in [*words, None]:
            if word is not None and sum(len(w) + 1 for w in piece) + len(word) < size:
                piece.append(word)
                continue
            if piece:
                name = f"p. {number}" if number else f"part {len(prompts) + 1}"
                prompts.append(ScoredPrompt(name, images, "", " ".join(piece)))
            piece = [word] if word is not None else []
    if not prompts:
        raise EngineInputError("the document has no text to score (scanned pages have none: OCR it first)")
    return prompts
