"""`launch.py compare --model A --model B [--image ...] [--json] PROMPT`: one prompt to
several models, answered at once where memory allows; prints each answer and a
metrics table, or with --json one JSON object per model. Saved like the Compare tab
(--no-save to skip). Bad input raises EngineInputError: launch.py prints one
`error:` line and exits 2."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from app.comparison import MAX_MODELS, MIN_MODELS, Column, Comparison, metrics_line, new_comparison, run_turn

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def add_compare_parser(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare", help="one prompt to several models side by side, with speed figures"
    )
    compare.add_argument("prompt", help="the question every model gets")
    compare.add_argument(
        "--model",
        dest="compare_models",
        action="append",
        default=[],
        metavar="NAME",
        help=f"a model to compare (repeat: {MIN_MODELS} to {MAX_MODELS}; see `launch.py models`)",
    )
    compare.add_argument(
        "--image", type=Path, action="append", default=[], help="attach an image (repeatable, in order)"
    )
    compare.add_argument(
        "--file", type=Path, action="append", default=[], help="attach a document (PDF, EPUB, text, ...)"
    )
    compare.add_argument("--password", help="password of an encrypted PDF")
    compare.add_argument("--max-tokens", type=int, default=512)
    compare.add_argument("--json", action="store_true", help="one JSON object per model")
    compare.add_argument("--no-save", action="store_true", help="do not save the comparison")
    # Same names as the top-level flags, no defaults: settings_from reads what is there.
    flags = compare.add_argument_group("models", argument_default=argparse.SUPPRESS)
    flags.add_argument("-c", "--ctx", type=int, dest="n_ctx", help="context size for every model")
    flags.add_argument("-ngl", "--n-gpu-layers", type=int, dest="n_gpu_layers")
    flags.add_argument("-t", "--threads", type=int, dest="n_threads")
    flags.add_argument("--data-dir", type=Path)
    flags.add_argument("--models-dir", type=Path)
    flags.add_argument("--extra-model", action="append", dest="extra_models", metavar="GGUF[:MMPROJ]")
    flags.add_argument("--memory-budget-gb", type=float, help="memory the models may take together")


def run_compare(settings, args: argparse.Namespace) -> int:
    from app.chat import Turn
    from engine.images import load_image_file
    from engine.limits import check_text
    from engine.manager import ModelManager
    from engine.registry import load_registry
    from engine.types import EngineInputError, Message, TextPart
    from hub.local import add_pulled
    from sessions import Store

    check_text(args.prompt, settings.max_text_chars)
    if args.max_tokens < 1:
        raise EngineInputError(f"--max-tokens must be at least 1, not {args.max_tokens}")
    registry = add_pulled(load_registry(settings), settings.resolved_models_dir)  # REPO:QUANT pulls too
    comparison = new_comparison(registry, args.compare_models, blind=False)
    if settings.n_ctx:
        for column in comparison.columns:
            column.n_ctx = settings.n_ctx
    images = [load_image_file(path, settings.max_image_pixels) for path in args.image]
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C stops every model within a token
    library, documents = _documents(settings, args, cancel)
    files = [str(library.store.blob_path(d.sha256)) for d in documents] if library else []
    question = Turn(
        Message("user", (*documents, *images, TextPart(args.prompt))), files=[*files, *map(str, args.image)]
    )
    manager = ModelManager(registry, settings)
    store = None if args.no_save else Store(settings.data_dir)
    printed: set[int] = set()
    try:
        for state in run_turn(
            comparison, question, registry, manager, store, cancel, args.max_tokens, library=library
        ):
            if not args.json:
                _print_finished(state, printed)
    finally:
        manager.close()
        for opened in (store, library.store if library else None):
            if opened is not None:
                opened.close()
    if comparison.notice:
        print(f"note: {comparison.notice}", file=sys.stderr)
    if args.json:
        for column in comparison.columns:
            print(json.dumps(_column_json(column, comparison), ensure_ascii=False))
    else:
        _print_table(comparison)
        if comparison.session_id:
            print(f"(saved as session {comparison.session_id})", file=sys.stderr)
    if cancel.is_set():
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(_failed(c) for c in comparison.columns) else 0


def _documents(settings, args: argparse.Namespace, cancel: threading.Event):
    """Each model later gets the pages it can see (text, or page images too)."""
    if not args.file:
        return None, []
    from sessions.doc_cli import read_cli_documents

    return read_cli_documents(
        settings, args.file, mode="auto", vision=True, password=args.password, cancel=cancel
    )


def _print_finished(comparison: Comparison, printed: set[int]) -> None:
    """Answers stream at the same time, so each is printed whole as it finishes."""
    for index, column in enumerate(comparison.columns):
        if index in printed or column.streaming:
            continue
        printed.add(index)
        print(f"== {comparison.title(index)} ==")
        print(f"error: {column.refused}" if column.refused else column.text.strip())
        print(flush=True)


def _print_table(comparison: Comparison) -> None:
    header = ("MODEL", "TTFT S", "PROMPT TOK/S", "DECODE TOK/S", "TOKENS", "CONTEXT", "FINISH")
    rows = [header]
    for column in comparison.columns:
        if column.final is None:
            rows.append((column.model, "-", "-", "-", "-", "-", "refused"))
            continue
        u = column.final.usage
        rows.append(
            (
                column.model,
                f"{u.ttft_s:.3f}",
                f"{u.prompt_tps:.0f}",
                f"{u.decode_tps:.1f}",
                f"{u.prompt_tokens}+{u.completion_tokens}",
                f"{u.prompt_tokens + u.completion_tokens}/{column.n_ctx}",
                column.final.finish_reason,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _column_json(column: Column, comparison: Comparison) -> dict:
    final = column.final
    usage = final.usage if final else None
    return {
        "model": column.model,
        "label": column.label,
        "text": column.text,
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
        "ttft_s": round(usage.ttft_s, 4) if usage else None,
        "prompt_tps": round(usage.prompt_tps, 2) if usage else None,
        "decode_tps": round(usage.decode_tps, 2) if usage else None,
        "context_used": (usage.prompt_tokens + usage.completion_tokens) if usage else 0,
        "n_ctx": column.n_ctx,
        "finish_reason": final.finish_reason if final else "error",
        "error": column.refused or (final.error if final else None),
        "metrics": metrics_line(column),
        "session_id": comparison.session_id or None,
        "comparison_id": comparison.comparison_id,
    }


def _failed(column: Column) -> bool:
    return bool(column.refused) or column.final is None or column.final.finish_reason == "error"
