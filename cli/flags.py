"""Every command's flags, made from the typed settings (config/settings.py): a field
with flags in its metadata is a flag, with the field's help, and its type, choices and
repetition come from the field's annotation. Every command takes the model flags; the
server flags belong to `serve`; the request budget's flags to every command that serves or
asks.

No defaults here: `settings_from` keeps only what was given, so `launch.py --data-dir X
ask` keeps X instead of having the subcommand's default reset it, and the rest comes
from L4P_* variables or the Settings defaults."""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from errors import UserError


@dataclass(frozen=True)
class Flag:
    field: str  # the Settings field it sets
    names: tuple[str, ...]
    help: str
    metavar: str | None = None


def _flags(group: str) -> tuple[Flag, ...]:
    found = []
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra or {}
        if extra.get("flags") and extra.get("group") == group:
            found.append(Flag(name, tuple(extra["flags"]), info.description or "", extra.get("metavar")))
    return tuple(found)


MODEL_FLAGS = _flags("model")
SERVER_FLAGS = _flags("server")
# One request's budget (engine/budget.py): on `serve` (the top level), `ask`, `compare`, `sessions import`.
REQUEST_FLAGS = _flags("request")
DATA_FLAGS = tuple(flag for flag in MODEL_FLAGS if flag.field == "data_dir")


def add_flags(parser: argparse.ArgumentParser, flags: tuple[Flag, ...], title: str = "model") -> None:
    group = parser.add_argument_group(title, argument_default=argparse.SUPPRESS)
    for flag in flags:
        extra = {"metavar": flag.metavar} if flag.metavar else {}
        group.add_argument(*flag.names, dest=flag.field, help=flag.help, **extra, **_kind(flag))


def _kind(flag: Flag) -> dict:
    """argparse's type/action/choices for the field's annotation."""
    if flag.field == "n_gpu_layers":  # int | "auto"
        return {"type": _gpu_layers}
    kind = Settings.model_fields[flag.field].annotation
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None: the X
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind is bool:
        return {"action": "store_true"}
    if typing.get_origin(kind) is list:
        return {"action": "append", "type": typing.get_args(kind)[0]}
    if typing.get_origin(kind) is typing.Literal:
        return {"choices": typing.get_args(kind)}
    return {"type": kind if kind in (int, float, Path) else str}


def _gpu_layers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def settings_from(args: argparse.Namespace) -> Settings:
    flags = (*MODEL_FLAGS, *SERVER_FLAGS, *REQUEST_FLAGS)
    given = {flag.field: value for flag in flags if (value := getattr(args, flag.field, None)) is not None}
    from pydantic import ValidationError

    try:
        return Settings(**given)
    except ValidationError as exc:  # a value out of range, from a flag or an L4P_* variable
        problem = exc.errors()[0]
        names = {flag.field: flag.names[-1] for flag in flags}
        field = str(problem["loc"][0]) if problem["loc"] else ""
        raise UserError(f"{names.get(field, field)}: {problem['msg'].lower()}") from None
