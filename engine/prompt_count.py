"""A text prompt's token count for a llama-server child, counted here: the GGUF's own
vocabulary and chat template loaded without its weights (llama.cpp's vocab_only:
milliseconds and a few MB), so fitting a turn into the context costs no round trip to
a server that is busy decoding for others (~0.25 s each with 8 users on 2 cores).

Honesty is checked after the fact: every answer brings the server's own count of the
prompt it read (usage.prompt_tokens); a model whose count here ever differs from it
is counted by the server from then on (engine/llama_server.py)."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

COUNTS_KEPT = 256  # prompts whose local count is kept to check against the server's
# Where an image sits in the rendered prompt: unguessable, so no text can fake one.
MARKER = f"\x00{secrets.token_hex(8)}\x00"


def _flatten(content: str | list[dict]) -> str:
    """A content array as llama-server hands it to the template (common/chat.cpp):
    text parts joined by newlines, none before or after an image's marker."""
    if isinstance(content, str):
        return content
    text, after_image = "", False
    for part in content:
        if part.get("type") == "text":
            text += ("\n" if text and not after_image else "") + part.get("text", "")
            after_image = False
        else:
            text += MARKER
            after_image = True
    return text


class LocalCounter:
    def __init__(self, model_path: Path):
        from llama_cpp import Llama
        from llama_cpp._utils import suppress_stdout_stderr

        from engine.llamacpp import _chat_formatter

        # A tiny context: the vocabulary is all that is used. llama.cpp warns on stderr
        # that a weightless model has no training context: true, and nothing to show.
        with suppress_stdout_stderr(disable=False):
            self._llm = Llama(
                model_path=str(model_path), vocab_only=True, n_ctx=32, n_batch=32, verbose=False
            )
        self._formatter = _chat_formatter(self._llm)
        self._lock = threading.Lock()
        self._counted: OrderedDict[str, int] = OrderedDict()  # prompt key -> count here
        self.agrees = True  # False once the server counted a prompt otherwise

    def count(self, key: str, wire: list[dict], image_costs: Sequence[int] = ()) -> int:
        """Messages as sent (`wire`), rendered and tokenized as the server does: its
        template sees each image as a marker, and mtmd tokenizes the text between
        markers piece by piece (BOS on the first only), each image costing its tiles."""
        from engine.llamacpp import prompt_tokens

        turns = [{"role": m["role"], "content": _flatten(m["content"])} for m in wire]
        with self._lock:
            first, *rest = self._formatter(messages=turns).prompt.split(MARKER)
            count = len(prompt_tokens(self._llm, first)) + sum(image_costs)
            for piece in rest:
                count += len(self._llm.tokenize(piece.encode("utf-8"), add_bos=False, special=True))
            self._counted[key] = count
            self._counted.move_to_end(key)
            while len(self._counted) > COUNTS_KEPT:
                self._counted.popitem(last=False)
        return count

    def check(self, key: str, server_count: int) -> None:
        """The server's count of a prompt counted here; a difference ends local counting."""
        with self._lock:
            mine = self._counted.get(key)
        if mine is not None and server_count and mine != server_count:
            self.agrees = False

    def close(self) -> None:
        self._llm.close()


def open_counter(model_path: Path) -> LocalCounter | None:
    """None where the vocabulary or template cannot be read here (the server counts)."""
    try:
        return LocalCounter(model_path)
    except Exception:  # any failure only means asking the server, as before
        return None
