"""What the tabs share about running models: how Gradio runs the callbacks that
generate, and which runs a Stop button ends. Who answers now and who waits is not
Gradio's queue but the model's lane (the chat service's): a request on one model never waits
behind another model's, and a waiting user sees their place in their model's line."""

from __future__ import annotations

import gradio as gr

# Generation callbacks open at once, waiting in lanes or answering; past this Gradio's
# queue holds the rest (and shows their place in it).
MAX_OPEN_RUNS = 64
ENGINE_RUN = {"concurrency_id": "engine", "concurrency_limit": MAX_OPEN_RUNS}
WORKER_THREADS = MAX_OPEN_RUNS + 16  # the page's other callbacks keep threads of their own


def run_scope(request: gr.Request | None, place: str) -> str:
    """What Stop in this browser tab ends: its runs in this place (chat or compare)."""
    return f"{place}:{(request.session_hash if request else '') or ''}"
