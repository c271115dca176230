"""`launch.py ask PROMPT`: one chat turn through the chat service, streamed to stdout;
`--json` adds a summary line. Saved as a chat unless --no-save; --session continues one.
While the model reads the prompt, a progress bar on stderr (on a terminal only)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cli.doc import library_for, terminal_progress
from cli.flags import MODEL_FLAGS, add_flags
from documents.context import selection_line
from documents.parts import DocumentPart, documents_of
from engine.types import Message, PromptProgress, SamplingParams
from sessions import Store
from sessions.rows import MessageRow, SessionRow
from sessions.store import engine_messages

EXIT_INTERRUPTED = 130


def add_parser(commands) -> None:
    ask = commands.add_parser("ask", help="stream one answer to stdout")
    add_flags(ask, MODEL_FLAGS)
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
    ask.add_argument("--password", help="password of an encrypted PDF")
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--max-tokens", type=int, default=512)
    ask.add_argument("--temperature", type=float)
    ask.add_argument("--top-p", type=float)
    ask.add_argument("--seed", type=int)
    ask.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    ask.add_argument("--session", metavar="ID", help="continue this saved chat (see `sessions list`)")
    ask.add_argument("--no-save", action="store_true", help="do not save the turn (saved by default)")


def run(settings, args) -> int:
    from chat.question import read_question
    from chat.service import Answered, ChatService, Prepared
    from engine import TextDelta, create_engine, load_registry
    from engine.protocol import check_messages
    from engine.types import EngineLoadError
    from hub.local import add_pulled

    spec = add_pulled(load_registry(settings), settings.resolved_models_dir).resolve(settings)
    strategy, page_range = _page_strategy(args.pages)
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C stops reading or answering
    # Documents are cached in the store by sha256 even when the chat itself is not saved.
    with Store(settings.data_dir) as store:
        library = library_for(settings, store)
        service = ChatService(store, library)
        chat = AskSession(store, args.session, save=not args.no_save)  # unknown id: exit 2
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
            progress=terminal_progress(),
            cancel=cancel,
        )
        messages = chat.messages(question.message, args.system, spec.system_prompt)
        params = spec.sampling_params(
            max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
        )
        engine = create_engine(spec, settings)
        # Images in the history too; documents are checked when their pages are read.
        check_messages(engine, [without_documents(m) for m in messages])
        saved = chat.save_question(service, question.message, spec.name, params)  # before the model starts
        text: list[str] = []
        bar = ReadingBar(sys.stderr)
        try:
            try:
                engine.load()
            except EngineLoadError as exc:
                service.record_failure(saved, spec.name, str(exc))
                raise
            for event in service.answer(
                engine, messages, params, cancel, saved=saved, strategy=strategy, page_range=page_range
            ):
                if isinstance(event, Prepared) and documents_of(question.message):
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
            engine.unload()
    final, report = done.final, done.report
    sys.stdout.write("\n")
    if final.error:
        print(f"error: {final.error}", file=sys.stderr)
    if not args.json:  # which pages of a long document went, under the answer
        for entry in report.selection:
            print(selection_line(entry), file=sys.stderr)
    if saved and not args.json:
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
                    "pages_chosen": [{**e, "line": selection_line(e)} for e in report.selection],
                    "dropped_turns": report.dropped_turns,
                    **chat.summary(done.answer_id),
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


def without_documents(message: Message) -> Message:
    """The message less its documents (a question that is only a document stays, empty):
    what check_messages can judge before the pages are read."""
    return Message(message.role, tuple(p for p in message.parts if not isinstance(p, DocumentPart)))


def _page_strategy(pages: str) -> tuple[str, str]:
    """--pages: auto -> the most relevant pages; all -> drop oldest turns; else a range."""
    if pages == "auto":
        return "relevant", ""
    if pages == "all":
        return "drop_oldest", ""
    from documents.context import parse_page_range

    parse_page_range(pages)  # a malformed range: exit 2 before any work
    return "range", pages


class AskSession:
    """The saved chat one `ask` belongs to: `session_id` continues that session (its
    current branch is the history), None starts a new one; save=False reads the
    history but writes nothing."""

    def __init__(self, store: Store, session_id: str | None, save: bool):
        self.save = save
        self.session_id = session_id
        self.user_message_id: int | None = None
        self.system = ""  # the system prompt used, set by `messages`
        self._store = store
        self._session: SessionRow | None = None
        self._rows: list[MessageRow] = []
        if session_id is not None:
            self._session = store.get_session(session_id)  # SessionNotFound: exit 2
            self._rows = store.branch(session_id)

    def messages(self, user: Message, system: str | None, default_system: str) -> list[Message]:
        """What the model gets: system prompt, the stored branch, the new turn. The
        system prompt is --system, else the session's (the UI's "system" setting, ''
        meaning none), else the model's; none is added when the branch has its own."""
        history = engine_messages(self._rows)
        stored = self._session.settings if self._session else {}
        if system is not None:
            self.system = system
        else:
            self.system = str(stored.get("system", default_system) or "")
        if any(message.role == "system" for message in history) or not self.system.strip():
            return [*history, user]
        return [Message.text("system", self.system.strip()), *history, user]

    def save_question(self, service, user: Message, model: str, params: SamplingParams):
        """Commits the question (with the model and settings on the session, as the UI
        records them) before the model starts; None with save=False."""
        if not self.save:
            return None
        used = {"system": self.system, "temperature": params.temperature, "top_p": params.top_p}
        used["max_tokens"] = params.max_tokens
        if params.seed is not None:
            used["seed"] = params.seed
        saved = service.save_question(
            user,
            session_id=self.session_id,
            parent_id=self._rows[-1].id if self._rows else None,
            owner=None,  # the command line is the machine's owner: any chat may be continued
            model=model,
            settings={**(self._session.settings if self._session else {}), **used},
        )
        self.session_id, self.user_message_id = saved.session_id, saved.message_id
        return saved

    def summary(self, answer_id: int | None) -> dict[str, Any]:
        return {
            "session_id": self.session_id if self.save else None,
            "user_message_id": self.user_message_id,
            "answer_message_id": answer_id,
        }
