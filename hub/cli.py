"""`launch.py pull` and the `--hf REPO[:QUANT]` flag of ask and the server."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from config import Settings
from hub.progress import human_bytes, stderr_bar
from hub.pull import Plan, PullError, parse_hf_ref, plan_hf, plan_preset, run

EXIT_INTERRUPTED = 130


def add_pull_parser(commands, model_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    pull = commands.add_parser(
        "pull",
        help="download a preset or any GGUF repo (--hf) from Hugging Face, verified and resumable",
    )
    model_flags(pull)
    pull.add_argument("name", nargs="?", help="a preset (see `launch.py models`)")


def run_pull(settings: Settings, args) -> int:
    from models.catalogue import load_registry

    if bool(args.name) == bool(settings.hf):
        raise PullError("pull needs a preset NAME or --hf REPO[:QUANT] (one of them)")
    models_dir = settings.resolved_models_dir
    if settings.hf:
        repo, quant = parse_hf_ref(settings.hf)
        plan = plan_hf(repo, quant, models_dir, machine_budget(settings))
    else:
        plan = plan_preset(load_registry(settings).get(args.name))
    try:
        pull_with_bar(plan, models_dir)
    except KeyboardInterrupt:
        print("\ninterrupted; run the same pull again to resume where it stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(plan.model_path)
    if plan.mmproj_path is not None:
        print(plan.mmproj_path)
    return 0


def pull_with_bar(plan: Plan, models_dir, say_present: bool = True) -> None:
    missing = plan.missing
    if not missing:
        if say_present:
            print(f"{plan.repo} {plan.quant}: already on disk", file=sys.stderr)
        return
    size = human_bytes(sum(f.remote.size for f in missing))
    print(f"pulling {plan.repo} {plan.quant}: {len(missing)} file(s), {size}", file=sys.stderr)
    try:
        run(plan, models_dir, stderr_bar)
    finally:
        sys.stderr.write("\n")
    print(f"verified (sha256) and saved in {plan.model_path.parent}", file=sys.stderr)


def resolve_hf(settings: Settings) -> Settings:
    """--hf on ask or the server: pull the model if it is not on disk (nothing is
    asked of the network once it is), then load it as --model-path/--mmproj would."""
    if settings.model_path or settings.hf_path or settings.endpoint:
        raise PullError("--hf cannot be combined with --model-path, --hf-path or --endpoint")
    repo, quant = parse_hf_ref(settings.hf)
    plan = plan_hf(repo, quant, settings.resolved_models_dir, machine_budget(settings))
    try:
        pull_with_bar(plan, settings.resolved_models_dir, say_present=False)
    except KeyboardInterrupt:
        print("\ninterrupted; run it again to resume the download where it stopped", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    return settings.model_copy(update={"model_path": plan.model_path, "mmproj": plan.mmproj_path, "hf": None})


def machine_budget(settings: Settings) -> int | None:
    from models.memory import memory_budget

    return memory_budget(settings, use_gpu=True)
