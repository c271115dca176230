"""`launch.py ask PROMPT`: one chat turn through the chat service, streamed to stdout;
`--json` adds a summary line. Saved as a chat unless --no-save; --session continues one.
While the model reads the prompt, a progress bar on stderr (on a terminal only)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cli.doc import library_for, terminal_progress
from cli.flags import MODEL_FLAGS, REQUEST_FLAGS, add_flags
from documents.context import selection_line
from engine.budget import RequestBudget
from engine.types import PromptProgress, SamplingParams, TextDelta
from sessions import Store

EXIT_INTERRUPTED = 130


def add_parser(commands) -> None:
    ask = commands.add_parser("ask", help="stream one answer to stdout")
    add_flags(ask, MODEL_FLAGS)
    add_flags(ask, REQUEST_FLAGS, "request budget")
    ask.add_argument("prompt", help="the question (write <image> to place each image)")
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
    ask.add_argument(
        "--page-mode",
        default="",
        metavar="PAGES=HOW",
        help='send single pages as text, image or both whatever --pdf-mode says, like "3=image,5-7=both"',
    )
    ask.add_argument("--password", help="password of an encrypted PDF")
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--max-tokens", type=int, help="longest answer in tokens (default: the model's, 1024)")
    ask.add_argument("--temperature", type=float)
    ask.add_argument("--top-p", type=float)
    ask.add_argument("--seed", type=int)
    ask.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    ask.add_argument("--session", metavar="ID", help="continue this saved chat (see `sessions list`)")
    ask.add_argument("--no-save", action="store_true", help="do not save the turn (saved by default)")


def run(settings, args) -> int:
    from chat.conversation import TurnRequest
    from chat.question import read_question
    from chat.service import ChatService

    registry, spec = _catalogue(settings)
    strategy, page_range = _page_strategy(args.pages)
    if args.page_mode.strip():
        from documents.page_modes import parse_page_modes

        parse_page_modes(args.page_mode)  # malformed: exit 2 before any work
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C stops reading or answering
    # Documents are cached in the store by sha256 even when the chat itself is not saved.
    with Store(settings.data_dir) as store, _models(registry, settings) as models:
        library = library_for(settings, store)
        service = ChatService(store, library, models)
        parent = _continued(store, args.session)  # unknown id: exit 2
        question = read_question(
            library,
            args.prompt,
            args.image,
            args.file,
            mode=args.pdf_mode,
            vision=spec.vision,
            password=args.password,
            max_pages=settings.max_doc_pages,
            max_pixels=settings.max_image_pixels,
            max_chars=settings.max_text_chars,
            label=spec.label,
            budget=RequestBudget.of(settings, spec),
            progress=terminal_progress(),
            cancel=cancel,
            page_modes=args.page_mode,
        )
        params = spec.sampling_params(
            max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
        )
        turn = TurnRequest(
            model=spec.name,
            question=question.message,
            params=params,
            session_id=args.session,
            parent_id=parent,
            system=args.system,
            owner=None,  # the command line is the machine's owner: any chat may be continued
            strategy=strategy,
            page_range=page_range,
            save=not args.no_save,
            settings=_used_settings(store, args.session, params),
        )
        done, text = _stream(service.respond(turn, cancel), bool(question.message.documents))
    return _finish(done, text, spec.name, args)


def _catalogue(settings):
    from hub.local import add_pulled
    from models.catalogue import load_registry

    registry = add_pulled(load_registry(settings), settings.resolved_models_dir)
    spec = registry.resolve(settings)
    registry.add(spec)  # carries the -c override under its own name
    return registry, spec


@contextlib.contextmanager
def _models(registry, settings):
    from models.manager import ModelManager

    models = ModelManager(registry, settings)
    try:
        yield models
    finally:
        models.close()


def _continued(store: Store, session_id: str | None) -> int | None:
    """The message a continued chat's new turn follows: its current branch's last."""
    if session_id is None:
        return None
    store.get_session(session_id)  # SessionNotFound: exit 2
    rows = store.branch(session_id)
    return rows[-1].id if rows else None


def _used_settings(store: Store, session_id: str | None, params: SamplingParams) -> dict[str, Any]:
    """What the session records, as the page does (the system prompt is added by the
    service: the one used)."""
    stored = store.get_session(session_id).settings if session_id else {}
    used = {k: getattr(params, k) for k in ("temperature", "top_p", "max_tokens")}
    if params.seed is not None:
        used["seed"] = params.seed
    return {**stored, **used}


def _stream(events, has_documents: bool):
    from chat.service import Answered, Prepared

    text: list[str] = []
    done = None
    bar = ReadingBar(sys.stderr)
    try:
        for event in events:
            if isinstance(event, Prepared) and has_documents:
                print(event.report.line(), file=sys.stderr)
            elif isinstance(event, PromptProgress):
                bar.show(event)
            elif isinstance(event, TextDelta):
                bar.clear()
                text.append(event.text)
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif isinstance(event, Answered):
                done = event
    finally:
        bar.clear()
    return done, "".join(text)


def _finish(done, text: str, model: str, args) -> int:
    if done is None:  # stopped before the model started
        return EXIT_INTERRUPTED
    final, report = done.final, done.report
    sys.stdout.write("\n")
    if final.error:
        print(f"error: {final.error}", file=sys.stderr)
    if not args.json:  # which pages of a long document went, under the answer
        for entry in report.selection:
            print(selection_line(entry), file=sys.stderr)
    saved = done.question
    if saved and not args.json:
        print(f"(saved; continue with --session {saved.session_id})", file=sys.stderr)
    if args.json:
        usage = final.usage
        print(
            json.dumps(
                {
                    "text": text,
                    "model": model,
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
                    "pages_chosen": [{**e, "line": selection_line(e)} for e in report.selection],
                    "page_costs": report.costs,
                    "dropped_turns": report.dropped_turns,
                    "session_id": saved.session_id if saved else None,
                    "user_message_id": saved.message_id if saved else None,
                    "answer_message_id": done.answer_id,
                }
            )
        )
    if final.finish_reason == "cancelled":
        return EXIT_INTERRUPTED
    return 1 if final.finish_reason == "error" else 0


class ReadingBar:
    """How far the model has read the prompt, as a bar on one rewritten line of
    `stream`; nothing unless it is a terminal. Wiped when the answer starts."""

    WIDTH = 30

    def __init__(self, stream):
        self.stream = stream
        self.enabled = stream.isatty()
        self.shown = False

    def show(self, progress: PromptProgress) -> None:
        if not self.enabled:
            return
        from chat.metrics import reading_line

        line = reading_line(progress)
        if progress.done is not None and progress.total > 0:
            filled = self.WIDTH * min(progress.done, progress.total) // progress.total
            line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {line}"
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def _page_strategy(pages: str) -> tuple[str, str]:
    """--pages: auto -> the most relevant pages; all -> drop oldest turns; else a range."""
    if pages == "auto":
        return "relevant", ""
    if pages == "all":
        return "drop_oldest", ""
    from documents.context import parse_page_range

    parse_page_range(pages)  # a malformed range: exit 2 before any work
    return "range", pages
