"""Serving the UI: the runtime, the page, and Gradio's queue and launch options."""

from __future__ import annotations

from app.runtime import build_runtime
from engine.config import ASSETS_DIR, Settings


def serve(settings: Settings, block: bool = True, open_browser: bool = False):
    from app.ui import build_app

    runtime = build_runtime(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    demo = build_app(runtime)
    demo.queue(default_concurrency_limit=4)
    print(f"Llama 4 Playground on http://{settings.host}:{settings.port} (model: {runtime.default_model})")
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        css_paths=[ASSETS_DIR / "style.css"],
        js=(ASSETS_DIR / "citations.js").read_text(),
        max_file_size=f"{settings.max_file_mb}mb",
        show_error=False,
        prevent_thread_lock=not block,
        quiet=True,
        inbrowser=open_browser,
        allowed_paths=[str(runtime.store.blobs.root)],  # saved images, and nothing else on disk
    )
    return 0 if block else demo
