"""`launch.py doc PATH` and the documents of `launch.py ask --file`: read into the store
once per sha256, with progress on a terminal and Ctrl-C to stop."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from engine.documents import IngestCancelled
from engine.types import DocumentPart
from sessions.library import DocumentLibrary, read_documents
from sessions.store import Store

EXIT_INTERRUPTED = 130


def library_for(settings: Any, store: Store | None = None) -> DocumentLibrary:
    return DocumentLibrary(
        store or Store(settings.data_dir),
        dpi=settings.page_dpi,
        max_side_px=settings.page_max_side_px,
        max_pixels=settings.max_image_pixels,
    )


def read_cli_documents(
    settings: Any,
    paths: list,
    *,
    mode: str,
    vision: bool,
    password: str | None,
    cancel: threading.Event,
) -> tuple[DocumentLibrary, list[DocumentPart]]:
    """The page source and the documents at `paths`, every page the mode sends (the
    context budget picks which fit once the model is loaded). Documents are cached in
    the store by sha256 even when the chat itself is not saved."""
    library = library_for(settings)
    documents = read_documents(
        library.store,
        [str(path) for path in paths],
        mode=mode,
        vision=vision,
        password=password,
        max_pages=settings.max_doc_pages,
        progress=terminal_progress(),
        cancel=cancel,
    )
    return library, documents


def run_doc(args: argparse.Namespace, settings: Any) -> int:
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())
    if not args.path.is_file():
        print(f"error: file not found: {args.path}", file=sys.stderr)
        return 2
    with Store(settings.data_dir) as store:
        try:
            row = store.ingest_document(
                args.path.read_bytes(),
                args.path.name,
                password=args.password,
                max_pages=settings.max_doc_pages,
                progress=terminal_progress(),
                cancel=cancel,
            )
        except IngestCancelled as exc:
            print(f"\n{exc}", file=sys.stderr)
            return EXIT_INTERRUPTED
    summary = row.summary()
    if args.json:
        print(json.dumps(summary))
        return 0
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        shown = f"{value:,}" if isinstance(value, int) and key != "sha256" else value
        print(f"{key.replace('_', ' '):<{width}}  {shown}")
    return 0


def terminal_progress():
    """Progress on one rewritten stderr line, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    last = [-1]

    def show(fraction: float, what: str) -> None:
        percent = int(fraction * 100)
        if percent != last[0]:
            last[0] = percent
            end = "\n" if percent >= 100 else ""
            sys.stderr.write(f"\r{what} ({percent}%)\x1b[K{end}")
            sys.stderr.flush()

    return show
