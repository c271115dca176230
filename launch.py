"""Entry point: `python launch.py` serves the UI; `models`, `ask` and `compare` script the
same engine, `sessions` lists, shows, searches, exports, imports and deletes saved chats.

Bad input prints one line on stderr and exits with status 2."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes, like other bad input: one `error:` line, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see `{self.prog} --help`)\n")


def _model_flags(parser: argparse.ArgumentParser) -> None:
    # No defaults (settings_from reads what is there): `launch.py --data-dir X ask` keeps X
    # instead of having the subcommand's own default reset it.
    group = parser.add_argument_group("model", argument_default=argparse.SUPPRESS)
    group.add_argument(
        "--model", help="preset name (see `launch.py models`); with --endpoint, the served model"
    )
    group.add_argument("--model-path", type=Path, help="a GGUF file of your own")
    group.add_argument("--mmproj", type=Path, help="vision projector GGUF for --model-path")
    group.add_argument(
        "--hf-path", type=Path, help="a transformers checkpoint directory (runs on torch, GPUs if any)"
    )
    group.add_argument(
        "--hf", metavar="REPO[:QUANT]", help="a GGUF repo on Hugging Face, pulled if not on disk yet"
    )
    group.add_argument(
        "--hf-dtype", choices=("auto", "bfloat16", "float16", "float32"), help="weights dtype for --hf-path"
    )
    group.add_argument(
        "--endpoint", help="an OpenAI-compatible server (vLLM, llama-server), e.g. http://host:8000/v1"
    )
    group.add_argument("--api-key-env", help="environment variable holding the --endpoint API key")
    group.add_argument("--max-images", type=int, help="images per request the --endpoint accepts")
    group.add_argument(
        "--extra-model",
        action="append",
        dest="extra_models",
        metavar="GGUF[:MMPROJ]",
        help="offer another GGUF of your own in the model pickers (repeatable)",
    )
    group.add_argument("-c", "--ctx", type=int, dest="n_ctx", help="context size in tokens")
    group.add_argument(
        "-ngl",
        "--n-gpu-layers",
        type=_gpu_layers,
        dest="n_gpu_layers",
        help="layers on the GPU (-1 = all, auto = as many as the free VRAM holds)",
    )
    group.add_argument("-t", "--threads", type=int, dest="n_threads", help="CPU threads")
    group.add_argument(
        "--memory-budget-gb",
        type=float,
        help="memory models may take together (default: free RAM, + free VRAM with -ngl)",
    )
    group.add_argument("--data-dir", type=Path, help="where sessions, uploads and models live")
    group.add_argument("--models-dir", type=Path, help="where preset GGUF files are looked for")


def _gpu_layers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from app.compare_cli import add_compare_parser
    from hub.cli import add_pull_parser
    from sessions.cli import add_sessions_parser

    parser = OneLineParser(prog="launch.py", description="Llama 4 multimodal playground")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    parser.add_argument("--open", action="store_true", help="open the page in a browser tab")
    parser.add_argument(
        "--auth",
        action="append",
        metavar="USER:PASS",
        help="require this login (repeatable); needed for a non-loopback --host or --share",
    )
    parser.add_argument("--auth-file", type=Path, help="logins, one user:password per line (# comments)")
    parser.add_argument(
        "--share", action="store_true", default=None, help="public gradio.live link (needs --auth)"
    )
    _model_flags(parser)
    commands = parser.add_subparsers(dest="command")

    models = commands.add_parser("models", help="list models: on disk or not, size, memory, vision")
    _model_flags(models)
    models.add_argument("--json", action="store_true", help="one JSON object per model")

    ask = commands.add_parser("ask", help="stream one answer to stdout")
    _model_flags(ask)
    ask.add_argument("prompt", help="the question")
    ask.add_argument(
        "--image", type=Path, action="append", default=[], help="attach an image (repeatable, in order)"
    )
    ask.add_argument(
        "--file",
        type=Path,
        action="append",
        default=[],
        help="attach a document: PDF, EPUB, XPS, MOBI, FB2, CBZ, SVG, text, Markdown (repeatable)",
    )
    ask.add_argument(
        "--pages",
        default="auto",
        metavar="auto|all|RANGE",
        help="when the document does not fit: auto = the pages most relevant to the question; "
        "all = every page, dropping the oldest turns instead; RANGE like 1-20,31 = those pages",
    )
    ask.add_argument("--pdf-mode", choices=("auto", "text", "images"), default="auto", help="pages as")
    ask.add_argument("--password", help="password of an encrypted PDF")
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--max-tokens", type=int, default=512)
    ask.add_argument("--temperature", type=float)
    ask.add_argument("--top-p", type=float)
    ask.add_argument("--seed", type=int)
    ask.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    ask.add_argument("--session", metavar="ID", help="continue this saved chat (see `sessions list`)")
    ask.add_argument("--no-save", action="store_true", help="do not save the turn (saved by default)")
    doc = commands.add_parser("doc", help="read a document into the store and print its summary")
    _model_flags(doc)
    doc.add_argument("path", type=Path, help="PDF, EPUB, XPS, MOBI, FB2, CBZ, SVG, text or Markdown")
    doc.add_argument("--password", help="password of an encrypted PDF")
    doc.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_sessions_parser(commands)
    add_compare_parser(commands)
    add_pull_parser(commands, _model_flags)
    return parser


def settings_from(args: argparse.Namespace):
    from engine.config import Settings

    overrides = {
        key: value
        for key in (
            "host",
            "port",
            "auth",
            "auth_file",
            "share",
            "model",
            "model_path",
            "mmproj",
            "hf_path",
            "hf",
            "hf_dtype",
            "endpoint",
            "api_key_env",
            "max_images",
            "n_ctx",
            "n_gpu_layers",
            "n_threads",
            "data_dir",
            "models_dir",
            "extra_models",
            "memory_budget_gb",
        )
        if (value := getattr(args, key, None)) is not None
    }
    return Settings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from engine.types import EngineInputError, EngineLoadError

    try:
        settings = settings_from(args)
        if args.command == "pull":
            from hub.cli import run_pull

            return run_pull(settings, args)
        if settings.hf and args.command in (None, "ask", "compare"):  # the commands that load it
            from hub.cli import resolve_hf

            settings = resolve_hf(settings)
        if args.command == "models":
            return cmd_models(settings, args)
        if args.command == "ask":
            return cmd_ask(settings, args)
        if args.command == "doc":
            from sessions.doc_cli import run_doc

            return run_doc(args, settings)
        if args.command == "compare":
            from app.compare_cli import run_compare

            return run_compare(settings, args)
        if args.command == "sessions":
            from sessions.cli import run_sessions

            return run_sessions(args, settings)
        return cmd_serve(settings, open_browser=args.open)
    except (EngineInputError, EngineLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        # Ctrl-C while a document is being read ends like Ctrl-C during an answer.
        return EXIT_INTERRUPTED if type(exc).__name__ == "IngestCancelled" else EXIT_BAD_INPUT


def cmd_models(settings, args) -> int:
    from engine.fit import fit, memory_budget
    from engine.memory import free_vram_bytes
    from engine.registry import load_registry
    from hub.local import add_pulled

    registry = add_pulled(load_registry(settings), settings.resolved_models_dir)
    budget, vram = memory_budget(settings), free_vram_bytes()  # measured once for every row
    rows = [
        {
            **_model_row(spec, settings.n_ctx),
            **fit(spec, settings, settings.n_ctx, budget=budget, vram=vram).as_dict(),
        }
        for spec in registry.specs.values()
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'NAME':<22} {'ON DISK':<8} {'SIZE':>9} {'MEMORY':>9} {'CTX':>8} {'FITS':<4} {'VISION':<6} LABEL")
    for row in rows:
        remote = row["backend"] == "openai"
        size = f"{row['size_gb']:.1f} GB" if row["size_gb"] is not None else "?" if not remote else "-"
        memory = f"{row['memory_gb']:.1f} GB" if row["memory_gb"] is not None else "?"
        where = ("remote" if remote else "yes") if row["available"] else "missing"
        fits = {True: "yes", False: "no", None: "?"}[row["fits"]]
        print(
            f"{row['name']:<22} {where:<8} {size:>9} {memory:>9} "
            f"{row['n_ctx']:>8} {fits:<4} {'yes' if row['vision'] else 'no':<6} {row['label']}"
        )
        if row["fits"] is False:
            print(f"{'':<22} {_too_big(row)}")
        if remote and row["endpoint"]:
            print(f"{'':<22} served at {row['endpoint']} as {row['remote_model']}")
        for what in row["missing"]:
            print(f"{'':<22} {'needs' if remote else 'expected at'} {what}")
        if row["missing"] and row["hf_repo"]:
            print(f"{'':<22} get it with: launch.py pull {row['name']}")
    return 0


def _too_big(row: dict) -> str:
    free = f"{row['budget_gb']:.1f} GB free"
    if row["max_ctx_that_fits"]:
        return f"needs {row['needs_gb']:.1f} GB, {free}: fits with -c {row['max_ctx_that_fits']}"
    return f"needs {row['needs_gb']:.1f} GB, {free}: the weights alone do not fit"


def _model_row(spec, n_ctx: int | None) -> dict:
    size = spec.file_bytes()
    memory = spec.estimated_memory(n_ctx)
    return {
        "name": spec.name,
        "label": spec.label,
        "backend": spec.backend,
        "available": spec.available,
        "missing": spec.missing(),
        "endpoint": spec.endpoint,
        "remote_model": spec.remote_model,
        "max_images": spec.max_images,
        "size_gb": round(size / 1e9, 2) if size is not None else None,
        "memory_gb": round(memory / 1e9, 2) if memory is not None else None,
        "n_ctx": n_ctx or spec.n_ctx,
        "max_context": spec.max_context,
        "vision": spec.vision,
        "hf_repo": spec.hf_repo,
    }


def cmd_ask(settings, args) -> int:
    from engine import Message, TextDelta, create_engine, load_registry
    from engine.context import expand_documents, fit_context
    from engine.images import load_image_file
    from engine.limits import check_text
    from engine.protocol import check_messages
    from engine.types import TextPart
    from hub.local import add_pulled
    from sessions.cli import AskSession
    from sessions.doc_cli import read_cli_documents

    check_text(args.prompt, settings.max_text_chars)
    images = [load_image_file(path, settings.max_image_pixels) for path in args.image]
    spec = add_pulled(load_registry(settings), settings.resolved_models_dir).resolve(settings)
    strategy, page_range = _page_strategy(args.pages)
    engine = create_engine(spec, settings)
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C stops reading or answering
    library, documents = read_cli_documents(
        settings, args.file, mode=args.pdf_mode, vision=spec.vision, password=args.password, cancel=cancel
    )
    saved = AskSession(settings.data_dir, args.session, save=not args.no_save)  # unknown id: exit 2
    user = Message("user", (*documents, *images, TextPart(args.prompt)))
    messages = saved.messages(user, args.system, spec.system_prompt)
    params = spec.sampling_params(
        max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
    )
    text = []
    try:
        check_messages(engine, [m for m in messages if not m.documents])  # refuse images before loading
        engine.load()
        has_documents = any(m.documents for m in messages)
        messages, report = fit_context(engine, messages, library, strategy, page_range, params.max_tokens)
        user = messages[-1]  # its documents now hold the pages chosen
        messages = expand_documents(messages, library)
        check_messages(engine, messages)
        if has_documents:
            print(report.line(), file=sys.stderr)
        saved.start(user, spec.name, params, report.as_dict())  # the user turn is committed here
        with saved.answer as answer:  # an exception leaves the answer stored as 'error'
            # A saved chat's KV state comes back from disk: only the new turn is evaluated.
            key = saved.session_id if saved.save else None
            for event in engine.stream(messages, params, cancel, session_key=key):
                if isinstance(event, TextDelta):
                    text.append(event.text)
                    answer.append(event.text)
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                else:
                    final = event
                    answer.finish(final)  # 'cancelled' after Ctrl-C
    finally:
        engine.unload()
        saved.close()
    sys.stdout.write("\n")
    if final.error:
        print(f"error: {final.error}", file=sys.stderr)
    if saved.session_id and saved.save and not args.json:
        print(f"(saved; continue with --session {saved.session_id})", file=sys.stderr)
    if args.json:
        usage = final.usage
        print(
            json.dumps(
                {
                    "text": "".join(text),
                    "model": spec.name,
                    "prompt_tokens": usage.prompt_tokens,
                    "cached_tokens": usage.cached_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "ttft_s": round(usage.ttft_s, 4),
                    "prompt_tps": round(usage.prompt_tps, 2),
                    "decode_tps": round(usage.decode_tps, 2),
                    "finish_reason": final.finish_reason,
                    "context_used": report.context_used,
                    "n_ctx": report.n_ctx,
                    "pages_sent": report.pages_sent,
                    "dropped_turns": report.dropped_turns,
                    **saved.summary(),
                }
            )
        )
    if final.finish_reason == "cancelled":
        return EXIT_INTERRUPTED
    return 1 if final.finish_reason == "error" else 0


def _page_strategy(pages: str) -> tuple[str, str]:
    """--pages: auto -> the most relevant pages; all -> drop oldest turns; else a range."""
    if pages == "auto":
        return "relevant", ""
    if pages == "all":
        return "drop_oldest", ""
    from engine.context import parse_page_range

    parse_page_range(pages)  # a malformed range: exit 2 before any work
    return "range", pages


def cmd_serve(settings, open_browser: bool = False) -> int:
    from app.server import serve

    return serve(settings, open_browser=open_browser)


if __name__ == "__main__":
    sys.exit(main())
