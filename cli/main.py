"""`launch.py [serve flags] [COMMAND ...]`: the parser, and one `error:` line with exit
status 2 for any bad input."""

from __future__ import annotations

import argparse
import sys

from cli import ask, compare, doc, doctor, models, pull, serve, sessions
from cli import eval as evaluate
from cli.flags import MODEL_FLAGS, REQUEST_FLAGS, SERVER_FLAGS, add_flags, settings_from
from errors import Cancelled, Fault, UserError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
COMMANDS = {
    "models": models,
    "ask": ask,
    "doc": doc,
    "compare": compare,
    "sessions": sessions,
    "doctor": doctor,
    "eval": evaluate,
    "pull": pull,
}


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes, like other bad input: one `error:` line, exit 2. No abbreviated
    flags: a subcommand's `--login` must not read as the server's `--login-attempts`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="launch.py", description="Llama 4 multimodal playground")
    parser.add_argument("--open", action="store_true", help="open the page in a browser tab")
    add_flags(parser, SERVER_FLAGS, "server")
    add_flags(parser, REQUEST_FLAGS, "request budget")
    add_flags(parser, MODEL_FLAGS)
    commands = parser.add_subparsers(dest="command")
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def configure_document_workers(settings) -> None:
    from documents import ocr, workers

    workers.configure(settings.doc_workers, settings.doc_worker_tasks, settings.doc_worker_memory_mb)
    ocr.configure(
        ocr.OcrSettings(
            settings.ocr,
            settings.ocr_max_pages,
            settings.ocr_dpi,
            settings.ocr_max_pixels,
            settings.ocr_page_seconds,
            settings.ocr_languages,
            settings.ocr_tessdata,
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    try:
        command = COMMANDS.get(args.command or "", serve)
        settings = settings_from(args)
        configure_document_workers(settings)
        if settings.hf and args.command in (None, "ask", "compare"):  # the commands that load it
            from hub.cli import resolve_hf

            settings = resolve_hf(settings)
        return command.run(settings, args)
    except (UserError, Fault) as exc:
        print(f"error: {exc}", file=sys.stderr)
        # Ctrl-C while a document is being read ends like Ctrl-C during an answer.
        return EXIT_INTERRUPTED if isinstance(exc, Cancelled) else EXIT_BAD_INPUT
