"""`launch.py doc PATH` and the documents of `launch.py ask --file`: read into the store
once per sha256, with progress on a terminal and Ctrl-C to stop."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cli.flags import MODEL_FLAGS, add_flags
from documents.reader import IngestCancelled
from sessions.library import DocumentLibrary
from sessions.store import Store

EXIT_INTERRUPTED = 130


def library_for(settings: Any, store: Store | None = None) -> DocumentLibrary:
    return DocumentLibrary(
        store or Store(settings.data_dir),
        dpi=settings.page_dpi,
        max_side_px=settings.page_max_side_px,
        max_pixels=settings.max_image_pixels,
    )


def add_parser(commands: argparse._SubParsersAction) -> None:
    doc = commands.add_parser("doc", help="read a document into the store and print its summary")
    add_flags(doc, MODEL_FLAGS)
    doc.add_argument("path", type=Path, help="PDF, EPUB, XPS, MOBI, FB2, CBZ, SVG, text or Markdown")
    doc.add_argument("--password", help="password of an encrypted PDF")
    doc.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run(settings: Any, args: argparse.Namespace) -> int:
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
        # Pages whose text was read off the image (scans): documents/ocr.py.
        summary = {**row.summary(), "pages_ocr": sum(page.ocr for page in store.document_pages(row.sha256))}
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
