"""`launch.py compare --model A --model B [--model-path X --mmproj Y] [--image ...] [--json]
PROMPT`: one prompt to
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

from chat.comparison import MAX_MODELS, MIN_MODELS, Column, Comparison, metrics_line, new_comparison, run_turn
from cli.flags import MODEL_FLAGS, REQUEST_FLAGS, add_flags

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def add_parser(commands: argparse._SubParsersAction) -> None:
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
        "--provider",
        dest="compare_providers",
        action="append",
        default=[],
        metavar="NAME",
        help="a hosted provider (groq, together, ...) or one of its presets, as one more model (repeatable)",
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
    # The same model flags as every command; --model repeats here, one per model, and
    # --model-path/--hf-path/--endpoint add that model as one more column; so does
    # each --provider.
    add_flags(compare, tuple(flag for flag in MODEL_FLAGS if flag.field not in ("model", "provider")))
    add_flags(compare, REQUEST_FLAGS, "request budget")


def run(settings, args: argparse.Namespace) -> int:
    from chat.question import read_question
    from cli.doc import library_for, terminal_progress
    from engine.budget import RequestBudget
    from engine.types import EngineInputError
    from models.manager import ModelManager

    if args.max_tokens < 1:
        raise EngineInputError(f"--max-tokens must be at least 1, not {args.max_tokens}")
    registry, names = _models(settings, args.compare_models, args.compare_providers)
    comparison = new_comparison(registry, names, blind=False)
    if settings.n_ctx:
        for column in comparison.columns:
            column.n_ctx = settings.n_ctx
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C stops every model within a token
    library = library_for(settings)  # documents are kept by sha256 even with --no-save
    try:
        question = read_question(
            library,
            args.prompt,
            args.image,
            args.file,
            mode="auto",  # each model later gets the pages it can see (text, or page images too)
            vision=True,
            password=args.password,
            max_pages=settings.max_doc_pages,
            max_pixels=settings.max_image_pixels,
            max_chars=settings.max_text_chars,
            budget=RequestBudget.of(settings),
            progress=terminal_progress(),
            cancel=cancel,
        )
    except BaseException:
        library.store.close()
        raise
    manager = ModelManager(registry, settings)
    store = None if args.no_save else library.store
    printed: set[int] = set()
    try:
        for state in run_turn(
            comparison, question, registry, manager, store, cancel, args.max_tokens, library=library
        ):
            if not args.json:
                _print_finished(state, printed)
    finally:
        manager.close()
        library.store.close()
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


def _models(settings, names: list[str], providers: list[str]):
    """The registry and the models to compare: each --model, then each --provider's
    preset, after the one given by --model-path, --hf-path or --endpoint (whose served
    model is the first --provider, else the first --model)."""
    from models.catalogue import hosted_preset, load_registry

    settings = settings.model_copy(update={"provider": None})  # columns are named here only
    if settings.endpoint and not settings.model and providers:
        settings, providers = settings.model_copy(update={"provider": providers[0]}), providers[1:]
    elif settings.endpoint and not settings.model and names:
        settings, names = settings.model_copy(update={"model": names[0]}), names[1:]
    from hub.local import add_pulled

    registry = add_pulled(load_registry(settings), settings.resolved_models_dir)  # REPO:QUANT pulls too
    own = settings.model_path or settings.hf_path or settings.endpoint
    hosted = [hosted_preset(registry.specs, provider).name for provider in providers]
    return registry, ([registry.default] if own else []) + list(names) + hosted


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
