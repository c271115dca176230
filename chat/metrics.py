"""An answer's figures under a chat answer and a compare column, in the one format of
sessions.figures, with the context it used; the prompt's reading before it starts."""

from __future__ import annotations

from documents.context import page_ranges
from engine.types import Final, PromptProgress, Usage
from sessions.figures import format_metrics


def usage_metrics(usage: Usage, reason: str) -> str:
    return format_metrics(
        usage.ttft_s,
        usage.prompt_tps,
        usage.decode_tps,
        usage.prompt_tokens,
        usage.completion_tokens,
        reason,
        usage.cached_tokens,
    )


def context_line(info: dict) -> str:
    """The stored prompt_info of an answer (context used, pages sent, turns dropped)."""
    if not info or not info.get("n_ctx"):
        return ""
    from documents.context import cost_lines, selection_line

    bits = [f"context {info['context_used']:,} of {info['n_ctx']:,}"]
    chosen = {entry.get("name"): selection_line(entry) for entry in info.get("selection", [])}
    for name, pages in info.get("pages_sent", {}).items():
        bits.append(chosen.get(name) or f"{name} p. {page_ranges(pages)}")
    bits += cost_lines(info.get("costs", []))
    if info.get("dropped_turns"):
        bits.append(f"{info['dropped_turns']} oldest turn(s) dropped")
    return " · ".join(bits)


def metrics_footer(final: Final, prompt_info: dict | None = None) -> str:
    """The line under a finished answer."""
    footer = usage_metrics(final.usage, final.finish_reason)
    footer = f"error: {final.error} · {footer}" if final.error else footer
    return " · ".join(bit for bit in (footer, context_line(prompt_info or {})) if bit)


def reading_line(progress: PromptProgress) -> str:
    """ "reading the prompt: 3,100 of 6,928 tokens · 41 s left"; where the backend
    cannot see the reading (an endpoint), how long the wait has been."""
    if progress.done is None:
        about = f"about {progress.total:,} tokens"
        return f"the server is reading the prompt ({about}) · {progress.elapsed_s:.0f} s"
    line = f"reading the prompt: {progress.done:,} of {progress.total:,} tokens"
    left = progress.seconds_left
    if progress.done >= progress.total:
        return f"{line} · the answer starts"
    return f"{line} · {left:.0f} s left" if left is not None else line


TOKEN_NOTE = "a token is a word or a piece of one"


def live_speed(first_s: float, tokens: int, since_first_s: float) -> str:
    """While an answer streams: how long its first token took, and tokens per second
    since then (the first token starts the clock, so it is not counted)."""
    line = f"first token after {first_s:.1f} s"
    if tokens > 1 and since_first_s > 0:
        line += f" · {(tokens - 1) / since_first_s:.1f} tokens/s so far"
    return f"{line} ({TOKEN_NOTE}) · streaming…"
