"""What the tabs share about running models: one queue for every generation (one model,
one answer at a time; others wait in line and see their place), and which runs a Stop
button ends."""

from __future__ import annotations

import gradio as gr

ENGINE_QUEUE = "engine"
ENGINE_RUN = {"concurrency_id": ENGINE_QUEUE, "concurrency_limit": 1}


def run_scope(request: gr.Request | None, place: str) -> str:
    """What Stop in this browser tab ends: its runs in this place (chat or compare)."""
    return f"{place}:{(request.session_hash if request else '') or ''}"
