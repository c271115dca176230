"""The chat's state and how it is shown. Pure functions: no Gradio calls here, so
they are tested directly and the UI module stays wiring only."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.context import CITATION, page_ranges
from engine.images import load_image_file
from engine.types import DocumentPart, Final, ImagePart, Message, Part, TextPart
from sessions.parts import blob_sha256

# Where the user writes <image>, the next attached image goes; otherwise images come
# first, then the text (Meta's recommended layout for Llama 4).
IMAGE_SLOT = re.compile(r"<image>", re.IGNORECASE)
# The settings panel's fields, in order, as saved with a session and restored from it.
SETTING_NAMES = ("system", "temperature", "top_p", "max_tokens", "n_ctx", "seed")


@dataclass
class Turn:
    message: Message
    files: list[str] = field(default_factory=list)  # display paths of images and documents, in order
    footer: str = ""  # metrics line under an answer
    status: str = "complete"  # streaming | complete | cancelled | error | interrupted
    id: int | None = None  # the stored message this turn is
    branch: str = ""  # "2/3" when this answer has siblings to move between


def turns_from_rows(rows, blob_path) -> list[Turn]:
    """A stored branch as chat turns: images from the blob store, metrics from the row."""
    turns = []
    for row in rows:
        if row.role == "user":
            files = [str(blob_path(sha)) for sha in map(blob_sha256, row.parts) if sha]
            turns.append(Turn(Message("user", row.parts), files=files, id=row.id))
        elif row.role == "assistant":
            footer = ""
            if row.finish_reason or row.status != "complete":
                footer = format_metrics(
                    row.ttft_s or 0,
                    row.prompt_tps or 0,
                    row.decode_tps or 0,
                    row.prompt_tokens or 0,
                    row.completion_tokens or 0,
                    row.finish_reason or row.status,
                    row.cached_tokens or 0,
                )
                if row.error:
                    footer = f"error: {row.error} · {footer}"
                footer = " · ".join(bit for bit in (footer, context_line(row.prompt_info)) if bit)
            turns.append(
                Turn(Message.text("assistant", row.text), footer=footer, status=row.status, id=row.id)
            )
    return turns


def user_turn(
    text: str,
    files: list[str],
    max_pixels: int,
    documents: tuple[DocumentPart, ...] = (),
    document_files: tuple[str, ...] = (),
) -> Turn:
    """A user turn from the input box: documents first, then images and text; raises
    EngineInputError on a bad file."""
    images = [load_image_file(path, max_pixels) for path in files]
    parts = (*documents, *_place_images(text.strip(), images))
    return Turn(Message("user", parts), files=[*document_files, *files])


def context_line(info: dict) -> str:
    """The stored prompt_info of an answer, as its footer shows it."""
    if not info or not info.get("n_ctx"):
        return ""
    bits = [f"context {info['context_used']:,} of {info['n_ctx']:,}"]
    bits += [f"{name} p. {page_ranges(pages)}" for name, pages in info.get("pages_sent", {}).items()]
    if info.get("dropped_turns"):
        bits.append(f"{info['dropped_turns']} oldest turn(s) dropped")
    return " · ".join(bits)


def _place_images(text: str, images: list[ImagePart]) -> tuple[Part, ...]:
    pieces = IMAGE_SLOT.split(text)
    if len(pieces) == 1:
        return (*images, TextPart(text)) if text else tuple(images)
    parts: list[Part] = []
    queue = list(images)
    for index, piece in enumerate(pieces):
        if index > 0 and queue:
            parts.append(queue.pop(0))
        if piece:
            parts.append(TextPart(piece))
    return (*parts, *queue)


def engine_messages(turns: list[Turn], system_prompt: str) -> list[Message]:
    messages = [Message.text("system", system_prompt.strip())] if system_prompt.strip() else []
    return messages + [t.message for t in turns if t.status != "error" or t.message.role == "user"]


def metrics_footer(final: Final, prompt_info: dict | None = None) -> str:
    u = final.usage
    footer = format_metrics(
        u.ttft_s,
        u.prompt_tps,
        u.decode_tps,
        u.prompt_tokens,
        u.completion_tokens,
        final.finish_reason,
        u.cached_tokens,
    )
    footer = f"error: {final.error} · {footer}" if final.error else footer
    return " · ".join(bit for bit in (footer, context_line(prompt_info or {})) if bit)


def format_metrics(
    ttft_s, prompt_tps, decode_tps, prompt_tokens, completion_tokens, reason, cached_tokens=0
) -> str:
    # Reused prompt tokens cost nothing; say how many so a fast follow-up makes sense.
    reuse = f"cached {cached_tokens:,} / new {prompt_tokens - cached_tokens:,} · " if cached_tokens else ""
    return (
        f"TTFT {ttft_s:.2f} s · prompt {prompt_tps:.0f} tok/s · decode {decode_tps:.1f} tok/s · "
        f"{prompt_tokens} + {completion_tokens} tokens · {reuse}{reason}"
    )


def to_chatbot(turns: list[Turn]) -> list[dict]:
    """Role/content dicts for gr.Chatbot; a user turn keeps its image order."""
    shown = []
    documents: tuple[DocumentPart, ...] = ()  # what page citations in answers point into
    for turn in turns:
        if turn.message.role == "user":
            content, files = [], iter(turn.files)
            for part in turn.message.parts:
                if isinstance(part, TextPart):
                    content.append(part.text)
                elif isinstance(part, DocumentPart):
                    content.append(_document_content(part, next(files, "")))
                else:
                    content.append(_image_content(part, next(files, "")))
            documents = turn.message.documents or documents
            shown.append({"role": "user", "content": content})
        else:
            text = link_citations(turn.message.plain_text, documents) or (
                "…" if turn.status == "streaming" else ""
            )
            footer = " · ".join(
                bit
                for bit in (
                    turn.footer,
                    turn.status if turn.status == "interrupted" else "",
                    f"answer {turn.branch}" if turn.branch else "",
                )
                if bit
            )
            if footer:
                text += f"\n\n<span class='metrics'>{footer}</span>"
            shown.append({"role": "assistant", "content": text})
    return shown


def link_citations(text: str, documents: tuple[DocumentPart, ...]) -> str:
    """ "[p. 12]" becomes a link the page opens in the page viewer (see assets/citations.js)."""
    if not documents:
        return text

    def link(match) -> str:
        number = int(match[1])
        doc = next((d for d in documents if number in d.pages), documents[-1])
        return f"[{match[0]}](#page-{doc.sha256[:16]}-{number})"

    return CITATION.sub(link, text)


def _document_content(part: DocumentPart, path: str) -> dict:
    label = f"{part.name} · {part.total_pages} pages"
    return {"file": {"path": path, "mime_type": "application/pdf", "orig_name": part.name}, "alt_text": label}


def _image_content(part: ImagePart, path: str) -> dict:
    # Stored blobs have no file extension: the MIME type tells the page it is an image.
    return {"file": {"path": path, "mime_type": part.mime, "orig_name": part.name}, "alt_text": part.name}


def assistant_turn(text: str, status: str, footer: str = "") -> Turn:
    return Turn(Message.text("assistant", text), footer=footer, status=status)
