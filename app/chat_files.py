"""Export and import in the page, in the CLI's formats and with its checks: the open
chat as Markdown (the branch on screen, its images and documents beside it) or JSON
(every branch), and a JSON export read back as a new chat (sessions/transfer.py,
Store.import_json). app/history.py wires these to the saved-chats panel."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

from chat.runtime import Runtime
from engine.budget import RequestBudget
from engine.types import EngineInputError
from sessions.transfer import export_stem, export_text

EXPORT_PREFIX = "l4p-export-"  # a folder per download, in the system's temp folder
EXPORT_KEEP_S = 3600  # Gradio serves its own copy; ours go once this old


def build_export() -> tuple[gr.Button, gr.Button, gr.File]:
    with gr.Row():
        markdown = gr.Button("Export Markdown", size="sm", elem_id="export-markdown")
        json = gr.Button("Export JSON", size="sm", elem_id="export-json")
    download = gr.File(
        label="Download", file_count="multiple", interactive=False, visible=False, elem_id="export-file"
    )
    return markdown, json, download


def build_import() -> gr.UploadButton:
    return gr.UploadButton(
        "Import a chat (JSON)", file_types=[".json"], file_count="single", size="sm", elem_id="import-chat"
    )


def markdown_files(runtime: Runtime, session_id: str, leaf_id: int | None) -> list[str]:
    """The branch ending at `leaf_id` as <title>.md, then the images and documents it
    links to (each a download of its own)."""
    folder = _export_folder()
    document = runtime.store.export_markdown(session_id, folder, leaf_id)
    beside = sorted(str(path) for path in folder.iterdir() if path != document)
    return [str(document), *beside]


def json_file(runtime: Runtime, session_id: str) -> str:
    """Every branch of the chat, images and documents inline, as the CLI writes it."""
    folder = _export_folder()
    path = folder / f"{export_stem(runtime.store.get_session(session_id))}.json"
    path.write_text(export_text(runtime.store.export_json(session_id)), encoding="utf-8")
    return str(path)


def import_file(runtime: Runtime, path: str, owner: str) -> str:
    """A JSON export as a new chat of `owner`; its id. The checks are the CLI's
    (`sessions import`): one line (EngineInputError) for a damaged file, one past the
    upload limit, or one that would not fit the request budget."""
    limits = runtime.settings
    size = Path(path).stat().st_size
    if size > limits.max_file_mb * 1024 * 1024:
        megabytes = f"{size / 1e6:.1f} MB; the limit is {limits.max_file_mb} MB"
        raise EngineInputError(f"{Path(path).name} is too large to import ({megabytes})")
    return runtime.store.import_json(
        Path(path).read_bytes(),
        owner=owner,
        max_image_pixels=limits.max_image_pixels,
        budget=RequestBudget.of(limits),
    )


def _export_folder() -> Path:
    """A new folder for one export; those of exports an hour old are removed first."""
    cutoff = time.time() - EXPORT_KEEP_S
    for old in Path(tempfile.gettempdir()).glob(f"{EXPORT_PREFIX}*"):
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # another server removed it first
            pass
    return Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX))
