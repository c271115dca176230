"""`launch.py pull NAME | --hf REPO[:QUANT]`: download a preset or any GGUF repo from
Hugging Face, verified and resumable (the work is in hub/)."""

from __future__ import annotations

from cli.flags import MODEL_FLAGS, add_flags


def add_parser(commands) -> None:
    from hub.cli import add_pull_parser

    add_pull_parser(commands, lambda parser: add_flags(parser, MODEL_FLAGS))


def run(settings, args) -> int:
    from hub.cli import run_pull

    return run_pull(settings, args)
