"""`launch.py eval fidelity` with images: `--image FILE` (repeatable, read before the
document's text) or `--image-suite builtin` (charts, a table, a sign and a page, each
with a text twin), on models given as GGUF:MMPROJ."""

from __future__ import annotations

import json
from pathlib import Path


def add_image_flags(fidelity) -> None:
    fidelity.add_argument(
        "--image", type=Path, action="append", default=[], metavar="FILE",
        help="an image every model sees before the document's text (repeatable)",
    )  # fmt: skip
    fidelity.add_argument(
        "--image-suite", metavar="builtin|FILE.jsonl",
        help="score answers to image prompts (charts, tables, text) and their text twins",
    )  # fmt: skip


def wants_images(args) -> bool:
    return bool(args.image or args.image_suite)


def image_fidelity(settings, args, specs, store, load, progress) -> int:
    from engine.types import EngineInputError
    from evals.fidelity import FidelityError, save_fidelity
    from evals.fidelity_images import run_image_fidelity

    prompts = _prompts(settings, args)
    reference, *variants = list(specs)
    try:
        results = run_image_fidelity(load, lambda e: e.unload(), reference, variants, prompts, progress)
    except FidelityError as exc:
        raise EngineInputError(str(exc)) from None
    name = args.file.name if args.file else f"images:{args.image_suite}"
    save_fidelity(store, name, list(specs), args.window, results)
    for r in results:
        if args.json:
            print(json.dumps(r.summary()))
            continue
        print(
            f"{r.model} vs {r.reference}: {r.tokens:,} answer tokens after {r.image_tokens:,} image tokens "
            f"(reference {r.image_tokens_reference:,}), KL mean {r.kl_mean:.4f} p99 {r.kl_p99:.4f}, "
            f"top-1 agreement {r.top1_agreement:.1%}, "
            f"perplexity {r.ppl:.2f} (reference {r.ppl_reference:.2f})"
        )
        for kind, row in r.by_kind.items():
            print(
                f"  after {'images' if kind == 'image' else 'text only'}: {row['tokens']:,} tokens, "
                f"KL mean {row['kl_mean']:.4f}, top-1 agreement {row['top1_agreement']:.1%}"
            )
        for gap in r.worst[:5]:
            print(f"  differs most at {gap.text!r} in {gap.prompt} ({gap.kind}, KL {gap.kl:.3f})")
    return 0


def _prompts(settings, args) -> list:
    from engine.types import EngineInputError
    from evals.image_suite import SUITE, load_image_prompts

    if args.image_suite:
        if args.image or args.file:
            raise EngineInputError("--image-suite scores its own prompts: leave out --image and --file")
        path = SUITE if args.image_suite == "builtin" else Path(args.image_suite)
        if not path.is_file():
            raise EngineInputError(f"image suite not found: {args.image_suite} (builtin, or a JSONL file)")
        try:
            return load_image_prompts(path)
        except (ValueError, KeyError) as exc:
            raise EngineInputError(f"{path}: not an image suite ({exc})") from None
    if args.file is None:
        raise EngineInputError("--image needs --file: the text every model reads after the images")
    from evals.image_suite import document_prompts

    return document_prompts(_images(args.image), _pages(settings, args), args.window)


def _images(paths) -> tuple:
    from engine.images import load_image_file

    return tuple(load_image_file(path) for path in paths)


def _pages(settings, args) -> list[tuple[int | None, str]]:
    from documents.reader import parse_document

    doc = parse_document(
        args.file.read_bytes(), args.file.name, password=args.password, max_pages=settings.max_doc_pages
    )
    paged = doc.kind != "text"
    return [(page.number if paged else None, page.text) for page in doc.pages]
