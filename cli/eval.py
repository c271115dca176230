"""`launch.py eval fidelity|suite|runs|export`: measure variants, not only vote.

    eval fidelity --model REF --model VARIANT [...] --file DOC [--json] [--plot kl.svg]
    eval fidelity --model REF.gguf:MMPROJ --model VARIANT.gguf:MMPROJ [--image FILE ...] --file DOC
    eval fidelity --model ... --image-suite builtin [--json]
    eval suite --model A [--model B ...] [--suite builtin|FILE.jsonl] [--json] [--resume RUN]
    eval runs
    eval leaderboard [--login NAME] [--json]
    eval export RUN --out run.csv

A --model is a preset or extra model name, the path of a GGUF file (GGUF:MMPROJ with
its projector) or a transformers checkpoint directory.
Runs are saved (eval_runs, eval_results) under the data dir."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from cli.eval_images import add_image_flags, image_fidelity, wants_images
from cli.flags import DATA_FLAGS, add_flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "eval", help="fidelity of quantized variants, multi-turn instruction suites"
    )
    kinds = evaluate.add_subparsers(dest="eval_command", required=True)
    fidelity = kinds.add_parser(
        "fidelity", help="KL divergence and agreement of variants against a reference"
    )
    _model_args(fidelity, "the reference first, then each variant")
    fidelity.add_argument("--file", type=Path, help="the document every model reads")
    fidelity.add_argument("--password", help="password of an encrypted PDF")
    fidelity.add_argument("--window", type=int, default=512, help="tokens per scored window (max 1024)")
    fidelity.add_argument("--plot", type=Path, help="write KL along the document as an SVG")
    add_image_flags(fidelity)
    suite = kinds.add_parser("suite", help="multi-turn conversations whose turns carry checks")
    _model_args(suite, "a model to run the suite on")
    suite.add_argument("--suite", default="builtin", help="builtin, or a JSONL file")
    suite.add_argument("--limit", type=int, help="only the first N conversations")
    suite.add_argument("--max-tokens", type=int, default=512, help="per answer")
    suite.add_argument("--resume", type=int, metavar="RUN", help="continue a saved run")
    board = kinds.add_parser("leaderboard", help="compare votes as ratings with 95%% intervals")
    board.add_argument("--login", help="only this login's votes (default: everyone's)")
    board.add_argument("--min-votes", type=int, help="votes a model needs to be ranked (default 5)")
    board.add_argument("--json", action="store_true", help="one JSON object per model")
    add_flags(board, DATA_FLAGS)
    runs = kinds.add_parser("runs", help="saved evaluation runs")
    add_flags(runs, DATA_FLAGS)
    export = kinds.add_parser("export", help="a run's results as CSV")
    export.add_argument("run", type=int)
    export.add_argument("--out", type=Path, required=True)
    add_flags(export, DATA_FLAGS)


def _model_args(parser, what: str) -> None:
    parser.add_argument("--model", dest="eval_models", action="append", default=[], metavar="NAME", help=what)
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    add_flags(parser, DATA_FLAGS)


def run(settings, args: argparse.Namespace) -> int:
    from sessions import Store

    with Store(settings.data_dir) as store:
        if args.eval_command == "runs":
            for found in store.evals.runs():
                models = ", ".join(found.models)
                print(f"{found.id:>5}  {found.created[:19]}  {found.kind:<8} {found.name:<24} {models}")
            return 0
        if args.eval_command == "leaderboard":
            return _leaderboard(store, args)
        if args.eval_command == "export":
            store.evals.run(args.run)  # a missing run: one line, exit 2
            args.out.write_text(store.evals.to_csv(args.run), encoding="utf-8")
            print(f"wrote {args.out}")
            return 0
        specs = _specs(settings, args.eval_models)
        if args.eval_command == "fidelity":
            return _fidelity(settings, args, specs, store)
        return _suite(settings, args, specs, store)


def _specs(settings, names: list[str]) -> dict:
    """Each --model as a ModelSpec, by preset name or by path."""
    from engine.types import EngineInputError
    from hub.local import add_pulled
    from models.catalogue import hf_model, load_registry, parse_extra_model, user_model

    registry = add_pulled(load_registry(settings), settings.resolved_models_dir)
    specs = {}
    for name in names:
        path, mmproj = parse_extra_model(name)
        path = path.expanduser()
        if name in registry.specs:
            specs[name] = registry.get(name)
        elif mmproj is not None:
            specs[name] = user_model(path, mmproj)
        elif path.is_dir():
            specs[name] = hf_model(path)
        elif path.is_file():
            specs[name] = user_model(path)
        else:
            raise EngineInputError(
                f"unknown model {name!r}: a preset (see `launch.py models`) or a GGUF path"
            )
    if len(specs) != len(names):
        raise EngineInputError("the same model is named twice")
    return specs


def _loader(specs, settings):
    """Fidelity's models, loaded one at a time: engines that hand out logits."""
    from models.engines import scoring_engine_for

    def load(name):
        engine = scoring_engine_for(specs[name], settings)
        engine.load()
        return engine

    return load


def _fidelity(settings, args, specs, store) -> int:
    from documents.reader import parse_document
    from engine.types import EngineInputError
    from evals.fidelity import FidelityError, run_fidelity, save_fidelity
    from evals.plot import kl_svg
    from evals.prechecks import check_fidelity

    if len(specs) < 2:
        raise EngineInputError(
            "fidelity needs a reference and at least one variant: --model REF --model VARIANT"
        )
    if args.file is not None and not args.file.is_file():
        raise EngineInputError(f"file not found: {args.file}")
    try:  # from the headers and listings, before any weights load
        check_fidelity(specs, with_images=wants_images(args))
    except FidelityError as exc:
        raise EngineInputError(str(exc)) from None
    if wants_images(args):
        return image_fidelity(settings, args, specs, store, _loader(specs, settings), _progress())
    if args.file is None:
        raise EngineInputError("name the document every model reads: --file DOC (or --image-suite builtin)")
    if not args.file.is_file():
        raise EngineInputError(f"file not found: {args.file}")
    doc = parse_document(
        args.file.read_bytes(), args.file.name, password=args.password, max_pages=settings.max_doc_pages
    )
    paged = doc.kind != "text"
    pages = [(page.number if paged else None, page.text) for page in doc.pages]
    reference, *variants = list(specs)
    try:
        results = run_fidelity(
            _loader(specs, settings),
            lambda e: e.unload(),
            reference,
            variants,
            pages,
            args.window,
            _progress(),
        )
    except FidelityError as exc:
        raise EngineInputError(str(exc)) from None
    save_fidelity(store, args.file.name, list(specs), args.window, results)
    if args.plot:
        args.plot.write_text(kl_svg({r.model: r.kl_curve for r in results}), encoding="utf-8")
    for r in results:
        if args.json:
            print(json.dumps(r.summary()))
            continue
        print(
            f"{r.model} vs {r.reference}: {r.tokens:,} tokens, KL mean {r.kl_mean:.4f} p99 {r.kl_p99:.4f}, "
            f"top-1 agreement {r.top1_agreement:.1%}, perplexity {r.ppl:.2f} "
            f"(reference {r.ppl_reference:.2f}), {r.seconds:.0f} s"
        )
        for p in r.diverging:
            print(f"  diverges most at {p.where} (KL {p.kl_mean:.3f}): {' '.join(p.text.split())[:100]}")
    return 0


def _suite(settings, args, specs, store) -> int:
    from engine.types import EngineInputError, SamplingParams
    from evals.prechecks import check_runnable
    from evals.suite_file import load_suite
    from evals.suite_run import run_suite, summarize
    from models.engines import engine_for

    if not specs and args.resume is None:
        raise EngineInputError("name at least one --model")
    if args.max_tokens < 1:
        raise EngineInputError(f"--max-tokens must be at least 1, not {args.max_tokens}")
    try:
        conversations = load_suite(args.suite)[: args.limit]
    except ValueError as exc:
        raise EngineInputError(str(exc)) from None
    if args.resume is not None:
        specs = specs or _specs(settings, list(store.evals.run(args.resume).models))
    check_runnable(specs)  # every model, before a run is saved or the first one answers
    run_id = args.resume
    if run_id is None:
        run_id = store.evals.start(
            "suite", args.suite, list(specs), {"max_tokens": args.max_tokens, "limit": args.limit}
        )
    print(f"run {run_id}", file=sys.stderr)
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    for name, spec in specs.items():
        engine = engine_for(spec, settings)
        engine.load()
        try:
            run_suite(
                store, run_id, engine, name, conversations, params, spec.system_prompt, _progress(), cancel
            )
        finally:
            engine.unload()
        if cancel.is_set():
            print(f"stopped: resume with `launch.py eval suite --resume {run_id}`", file=sys.stderr)
            return 130
    for report in summarize(store.evals.results(run_id), list(specs)):
        if args.json:
            print(json.dumps(report.summary()))
            continue
        turns = ", ".join(f"{a:.0%}" for a in report.turns)
        tokens = ", ".join(f"{t:.0f}" for t in report.tokens_per_turn)
        print(f"{report.model}: {report.accuracy:.1%} of checks over {report.conversations} conversations")
        print(f"  per turn: {turns}; tokens per turn: {tokens}")
        print("  by check: " + ", ".join(f"{k} {v:.0%}" for k, v in report.by_check.items()))
    return 0


def _leaderboard(store, args) -> int:
    """The compare tab's ratings, pooled over every login unless --login is given."""
    from chat.ratings import MIN_VOTES, json_row, rate
    from engine.types import EngineInputError

    min_votes = MIN_VOTES if args.min_votes is None else args.min_votes
    if min_votes < 1:
        raise EngineInputError(f"--min-votes must be at least 1, not {min_votes}")
    owner = args.login
    ratings = rate(store.comparisons.votes(owner), min_votes=min_votes)
    speeds = {row.engine_id: row for row in store.comparisons.speeds(owner)}
    if args.json:
        for rating in ratings.values():
            print(json.dumps(json_row(rating, speeds.get(rating.model))))
        return 0
    if not ratings:
        print("no votes yet" + (f" from {owner}" if owner else ""))
        return 0
    header = ("model", "votes", "wins", "ties", "Bradley–Terry", "95% interval", "tokens/s")
    cells = [header, *(_board_row(r, speeds.get(r.model)) for r in ratings.values())]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _board_row(rating, speed) -> tuple:
    rank = (f"{rating.rating:.0f}", rating.interval) if rating.ranked else ("too few votes to rank", "–")
    tps = f"{speed.decode_tps:.1f}" if speed and speed.decode_tps else "–"
    return (rating.model, rating.votes, rating.wins, rating.ties, *rank, tps)


def _progress():
    from cli.doc import terminal_progress

    return terminal_progress()
