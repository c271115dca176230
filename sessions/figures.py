"""The one way an answer's figures are written, live (under a chat answer, a compare
column) or stored (`sessions show`, the Markdown export): time to first token, prompt
and decode speed, tokens (and how many were reused), and why it stopped."""

from __future__ import annotations

from .rows import MessageRow


def format_metrics(
    ttft_s, prompt_tps, decode_tps, prompt_tokens, completion_tokens, reason, cached_tokens=0
) -> str:
    # Reused prompt tokens cost nothing; say how many so a fast follow-up makes sense.
    reuse = f"cached {cached_tokens:,} / new {prompt_tokens - cached_tokens:,} · " if cached_tokens else ""
    # In words a newcomer reads (no TTFT, no tok/s): when the answer began, how fast the
    # prompt was read and the answer written.
    # A figure never measured (an answer stopped before its first token) is left out
    # rather than shown as "0.00 s" or "0 tokens/s".
    speeds = [
        f"first token after {ttft_s:.2f} s" if ttft_s else "",
        f"prompt read at {prompt_tps:,.0f} tokens/s" if prompt_tps else "",
        f"answer at {decode_tps:.1f} tokens/s" if decode_tps else "",
    ]
    counts = f"{prompt_tokens} + {completion_tokens} tokens · {reuse}{reason}"
    return " · ".join([*(bit for bit in speeds if bit), counts])


def row_metrics(row: MessageRow) -> str:
    """A stored answer's figures; an error says what went wrong first."""
    line = format_metrics(
        row.ttft_s or 0,
        row.prompt_tps or 0,
        row.decode_tps or 0,
        row.prompt_tokens or 0,
        row.completion_tokens or 0,
        row.finish_reason or row.status,
        row.cached_tokens or 0,
    )
    return f"error: {row.error} · {line}" if row.error else line
