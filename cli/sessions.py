"""`launch.py sessions ...` (list, show, search, export, import, delete saved chats) and
the part of `launch.py ask` that reads and writes a session.

Bad input raises EngineInputError (one line); launch.py prints it and exits 2."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Any

from cli.flags import DATA_FLAGS, REQUEST_FLAGS, add_flags
from engine.budget import RequestBudget
from engine.types import EngineInputError
from sessions.figures import row_metrics
from sessions.parts import describe_part, summarize_part
from sessions.rows import MessageRow, SessionRow
from sessions.store import Store
from sessions.transfer import export_text

EXIT_DECLINED = 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds `sessions` and its subcommands to launch.py's subparsers."""
    # SUPPRESS: a flag given before the subcommand is not reset by its default.
    common = argparse.ArgumentParser(add_help=False)
    add_flags(common, DATA_FLAGS, "data")
    sessions = commands.add_parser("sessions", parents=[common], help="saved chats: list, show, search, ...")
    sub = sessions.add_subparsers(dest="sessions_command", metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help, description=help)

    listing = command("list", "saved chats, newest first")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="one JSON object per chat")

    show = command("show", "a chat's current branch as a transcript")
    show.add_argument("id", help="session id (see `sessions list`)")
    show.add_argument("--json", action="store_true", help="the session and its messages as one JSON object")

    search = command("search", "full-text search over every message")
    search.add_argument("query", help="words that must all occur")
    search.add_argument("--limit", type=int, default=20, help="at most this many hits (default 20)")
    search.add_argument("--json", action="store_true", help="one JSON object per hit")

    export = command("export", "write a chat as Markdown (current branch) or JSON (everything)")
    export.add_argument("id", help="session id")
    export.add_argument("--format", choices=("md", "json"), default="json", help="default json")
    export.add_argument(
        "--out",
        type=Path,
        help="md: directory for the .md and its images (default: current directory); "
        "json: file (default: stdout)",
    )

    imported = command("import", "add a chat from a JSON export; prints the new id")
    add_flags(imported, REQUEST_FLAGS, "request budget")
    imported.add_argument("file", help="a file from `sessions export --format json` (- for stdin)")

    delete = command("delete", "delete a chat and its images")
    delete.add_argument("id", help="session id")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def run(settings: Any, args: argparse.Namespace) -> int:
    handler = HANDLERS.get(args.sessions_command or "")
    if handler is None:
        raise EngineInputError(f"choose a sessions command: {', '.join(HANDLERS)}")
    if handler is cmd_import:  # the one command that takes a request's content
        handler = functools.partial(cmd_import, budget=RequestBudget.of(settings))
    with Store(settings.data_dir) as store:
        return handler(store, args)


# Handlers


def cmd_list(store: Store, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise EngineInputError(f"--limit must be at least 1, not {args.limit}")
    rows = store.list_sessions(limit=args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(_session_json(row), ensure_ascii=False))
        return 0
    if not rows:
        print(f"No saved chats in {store.data_dir}.", file=sys.stderr)
        return 0
    width = max(len("MODEL"), *(len(row.model) for row in rows))
    print(f"{'ID':<12}  {'UPDATED':<16}  {'MODEL':<{width}}  {'MSGS':>4}  TITLE")
    for row in rows:
        print(
            f"{row.id:<12}  {_minute(row.updated):<16}  {row.model:<{width}}  "
            f"{row.message_count:>4}  {row.title or '(untitled)'}"
        )
    return 0


def cmd_show(store: Store, args: argparse.Namespace) -> int:
    session = store.get_session(args.id)
    rows = store.branch(args.id)
    if args.json:
        doc = {"session": _session_json(session), "messages": [_message_json(row) for row in rows]}
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0
    print(session.title or "(untitled)")
    model = f" · {session.model}" if session.model else ""
    print(
        f"session {session.id}{model} · updated {_minute(session.updated)} · {session.message_count} messages"
    )
    for row in rows:
        print()
        print(f"{row.role}: {transcript_text(row)}")
        if row.role == "assistant":
            print(f"  [{metrics_line(row)}]")
    return 0


def cmd_search(store: Store, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise EngineInputError(f"--limit must be at least 1, not {args.limit}")
    hits = store.search(args.query, limit=args.limit)
    if args.json:
        for hit in hits:
            print(json.dumps(dataclasses.asdict(hit), ensure_ascii=False))
        return 0
    if not hits:
        print(f"No saved message matches {args.query!r}.", file=sys.stderr)
    for hit in hits:
        snippet = " ".join(hit.snippet.split())
        print(f"{hit.session_id}  {hit.session_title or '(untitled)'}  {hit.role}: {snippet}")
    return 0


def cmd_export(store: Store, args: argparse.Namespace) -> int:
    if args.format == "md":
        directory = args.out or Path.cwd()
        if directory.exists() and not directory.is_dir():
            raise EngineInputError(f"--out for Markdown must be a directory: {directory} is a file")
        try:
            print(store.export_markdown(args.id, directory))
        except OSError as exc:
            raise EngineInputError(f"cannot write to {directory}: {exc.strerror or exc}") from None
        return 0
    text = export_text(store.export_json(args.id))
    if args.out is None or str(args.out) == "-":
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EngineInputError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(args.out)
    return 0


def cmd_import(store: Store, args: argparse.Namespace, budget: RequestBudget | None = None) -> int:
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise EngineInputError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    print(store.import_json(data, budget=budget))
    return 0


def cmd_delete(store: Store, args: argparse.Namespace) -> int:
    session = store.get_session(args.id)  # an unknown id fails before any question
    if not args.yes:
        if not sys.stdin.isatty():
            raise EngineInputError("not deleting without --yes when stdin is not a terminal")
        question = f"Delete {session.title or '(untitled)'!r} ({session.message_count} messages)? [y/N] "
        print(question, end="", file=sys.stderr, flush=True)  # stdout may be redirected
        reply = sys.stdin.readline()
        if reply.strip().lower() not in ("y", "yes"):
            print("Not deleted.", file=sys.stderr)
            return EXIT_DECLINED
    store.delete_session(args.id)
    print(f"Deleted {args.id}.", file=sys.stderr)
    return 0


HANDLERS = {
    "list": cmd_list,
    "show": cmd_show,
    "search": cmd_search,
    "export": cmd_export,
    "import": cmd_import,
    "delete": cmd_delete,
}


# Formatting


def transcript_text(row: MessageRow) -> str:
    """Text parts as they are, images and documents as one bracketed line each, in order."""
    return " ".join(piece for piece in map(describe_part, row.parts) if piece)


def metrics_line(row: MessageRow) -> str:
    return " · ".join(bit for bit in (row.engine_id, row_metrics(row)) if bit)


def _minute(stamp: str) -> str:
    return stamp[:16].replace("T", " ")


def _session_json(row: SessionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "model": row.model,
        "created": row.created,
        "updated": row.updated,
        "message_count": row.message_count,
        "settings": row.settings,
    }


def _message_json(row: MessageRow) -> dict[str, Any]:
    fields = dataclasses.asdict(row)
    del fields["attachments"], fields["session_id"]
    fields["parts"] = [summarize_part(part) for part in row.parts]
    return fields
