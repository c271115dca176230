"""The chat's state and how it is shown. Pure functions: no Gradio calls here, so
they are tested directly and the UI module stays wiring only."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.images import load_image_file
from engine.types import Final, ImagePart, Message, Part, TextPart

# Where the user writes <image>, the next attached image goes; otherwise images come
# first, then the text (Meta's recommended layout for Llama 4).
IMAGE_SLOT = re.compile(r"<image>", re.IGNORECASE)


@dataclass
class Turn:
    message: Message
    files: list[str] = field(default_factory=list)  # display paths, in image order
    footer: str = ""  # metrics line under an answer
    status: str = "complete"  # streaming | complete | cancelled | error


def user_turn(text: str, files: list[str], max_pixels: int) -> Turn:
    """A user turn from the input box; raises EngineInputError on a bad file."""
    images = [load_image_file(path, max_pixels) for path in files]
    return Turn(Message("user", _place_images(text.strip(), images)), files=list(files))


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


def metrics_footer(final: Final) -> str:
    usage = final.usage
    bits = [
        f"TTFT {usage.ttft_s:.2f} s",
        f"prompt {usage.prompt_tps:.0f} tok/s",
        f"decode {usage.decode_tps:.1f} tok/s",
        f"{usage.prompt_tokens} + {usage.completion_tokens} tokens",
        final.finish_reason,
    ]
    return " · ".join(bits)


def to_chatbot(turns: list[Turn]) -> list[dict]:
    """Role/content dicts for gr.Chatbot; a user turn keeps its image order."""
    shown = []
    for turn in turns:
        if turn.message.role == "user":
            content, files = [], iter(turn.files)
            for part in turn.message.parts:
                content.append(part.text if isinstance(part, TextPart) else {"path": next(files, "")})
            shown.append({"role": "user", "content": content})
        else:
            text = turn.message.plain_text or ("…" if turn.status == "streaming" else "")
            if turn.footer:
                text += f"\n\n<span class='metrics'>{turn.footer}</span>"
            shown.append({"role": "assistant", "content": text})
    return shown


def assistant_turn(text: str, status: str, footer: str = "") -> Turn:
    return Turn(Message.text("assistant", text), footer=footer, status=status)
