"""Measure, under the Compare tab: the models picked there, compared by numbers
rather than votes. Fidelity: how far each variant's next-token distributions stray
from the first model's on a document you give (KL, top-1 agreement, perplexity, KL
along the document, where it strays most). Suite: multi-turn conversations whose
turns carry checks, per-turn accuracy and tokens spent. Wiring only: the work is in
evals/, runs are saved by sessions/ (resume and CSV export from `launch.py eval`)."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import pandas as pd

from app import history
from app.queues import ENGINE_RUN, run_scope
from chat.runtime import Runtime
from engine.types import EngineInputError, SamplingParams
from errors import Fault, UserError

FIDELITY_COLUMNS = [
    "model",
    "tokens",
    "KL mean",
    "KL p99",
    "top-1 agreement",
    "perplexity",
    "reference ppl",
    "s",
]
SUITE_COLUMNS = ["model", "accuracy", "per turn", "tokens per turn", "by check"]
KL_SMOOTH = 32  # tokens a point of the KL plot averages


def build_panel(runtime: Runtime, models: gr.CheckboxGroup) -> None:
    """Call inside the Compare tab; `models` is its model picker (first = reference)."""
    with gr.Accordion("Measure: fidelity and instruction suites", open=False, elem_id="measure-panel"):
        notice = gr.Markdown("", elem_id="measure-notice")
        with gr.Tab("Fidelity"):
            gr.Markdown(
                "The **first** model picked above is the reference; every other one is measured "
                "against it on the same tokens of your document (quants of one model)."
            )
            document = gr.File(
                label="Document (PDF, EPUB, text, ...)", type="filepath", elem_id="fidelity-file"
            )
            window = gr.Slider(64, 1024, value=512, step=64, label="Tokens per scored window")
            with gr.Row():
                images = gr.File(
                    label="Images every model sees before the document's text (vision models)",
                    file_count="multiple", type="filepath", file_types=["image"], elem_id="fidelity-images",
                )  # fmt: skip
                image_suite = gr.Checkbox(
                    label="Built-in image prompts (charts, a table, a sign, a page; each with a text twin)",
                    elem_id="fidelity-image-suite",
                )
            measure = gr.Button("Measure fidelity", variant="primary", elem_id="fidelity-run")
            table = gr.Dataframe(headers=FIDELITY_COLUMNS, interactive=False, elem_id="fidelity-table")
            curve = gr.LinePlot(
                x="token", y="KL", color="model", title="KL along the document", visible=False
            )
            passages = gr.Markdown("", elem_id="fidelity-passages")
        with gr.Tab("Suite"):
            suite_file = gr.File(label="Suite JSONL (empty: the built-in suite)", type="filepath")
            limit = gr.Number(value=6, precision=0, label="Conversations (0 = all)")
            max_tokens = gr.Slider(32, 1024, value=256, step=32, label="Max new tokens per answer")
            run = gr.Button("Run suite", variant="primary", elem_id="suite-run")
            results = gr.Dataframe(headers=SUITE_COLUMNS, interactive=False, elem_id="suite-table")
            export = gr.File(label="Results (CSV)", visible=False)
    measure.click(
        _fidelity(runtime), [models, document, window, images, image_suite], [notice, table, curve, passages],
        api_name="fidelity", **ENGINE_RUN,
    )  # fmt: skip
    run.click(
        _suite(runtime), [models, suite_file, limit, max_tokens], [notice, results, export],
        api_name="suite", **ENGINE_RUN,
    )  # fmt: skip


def _fidelity(runtime: Runtime):
    def measure(
        names,
        path,
        window,
        images=None,
        image_suite=False,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        from documents.reader import parse_document
        from evals.fidelity import FidelityError, run_fidelity, save_fidelity
        from evals.prechecks import check_fidelity

        try:
            if not names or len(names) < 2:
                raise EngineInputError(
                    "Pick a reference and at least one variant above (the first is the reference)."
                )
            with_images = bool(images or image_suite)
            check_fidelity({name: runtime.spec(name) for name in names}, with_images)  # nothing loads
            if with_images:
                return _image_fidelity(runtime, names, path, int(window), images, request, progress)
            if not path:
                raise EngineInputError("Attach the document every model reads.")
            data = Path(path).read_bytes()
            doc = parse_document(data, Path(path).name, max_pages=runtime.settings.max_doc_pages)
            pages = [(p.number if doc.kind != "text" else None, p.text) for p in doc.pages]
            with _lanes(runtime, names, request):
                found = run_fidelity(
                    lambda name: _scoring(runtime, name), lambda engine: engine.unload(),
                    names[0], names[1:], pages, int(window), lambda f, what: progress(f, desc=what),
                )  # fmt: skip
        except (FidelityError, UserError, Fault) as exc:
            return f"⚠ {exc}", gr.Dataframe(), gr.LinePlot(visible=False), ""
        save_fidelity(runtime.store, Path(path).name, names, int(window), found, history.user_of(request))
        return "", _fidelity_table(found), gr.LinePlot(_kl_frame(found), visible=True), _passages(found)

    return measure


def _image_fidelity(runtime: Runtime, names, path, window: int, images, request, progress):
    """Fidelity on image prompts: the built-in set, or the document's text after the images."""
    from evals.fidelity import save_fidelity
    from evals.fidelity_images import run_image_fidelity
    from evals.image_suite import load_image_prompts

    if images:
        if not path:
            raise EngineInputError("Attach the document every model reads after the images.")
        prompts = _document_prompts(runtime, path, window, images)
    else:
        prompts = load_image_prompts()
    with _lanes(runtime, names, request):
        found = run_image_fidelity(
            lambda name: _scoring(runtime, name), lambda engine: engine.unload(),
            names[0], names[1:], prompts, lambda f, what: progress(f, desc=what),
        )  # fmt: skip
    label = Path(path).name if images else "images:builtin"
    save_fidelity(runtime.store, label, names, window, found, history.user_of(request))
    return "", _fidelity_table(found), gr.LinePlot(visible=False), image_report(found)


def _document_prompts(runtime: Runtime, path, window: int, images) -> list:
    from documents.reader import parse_document
    from engine.images import load_image_file
    from evals.image_suite import document_prompts

    doc = parse_document(Path(path).read_bytes(), Path(path).name, max_pages=runtime.settings.max_doc_pages)
    pages = [(p.number if doc.kind != "text" else None, p.text) for p in doc.pages]
    return document_prompts(tuple(load_image_file(image) for image in images), pages, window)


def image_report(found) -> str:
    """Image tokens each model read, KL after images vs after text only, and the answer
    tokens where each variant strays most."""
    lines = []
    for r in found:
        kinds = "; ".join(
            f"after {'images' if kind == 'image' else 'text only'}: KL {row['kl_mean']:.4f}, "
            f"top-1 {row['top1_agreement']:.1%} over {row['tokens']} tokens"
            for kind, row in r.by_kind.items()
        )
        read = f"{r.image_tokens:,} image tokens (reference {r.image_tokens_reference:,})"
        lines.append(f"- **{r.model}**: {read}; {kinds}")
        gaps = ", ".join(f"“{g.text.strip() or g.text}” in {g.prompt} (KL {g.kl:.3f})" for g in r.worst[:5])
        if gaps:
            lines.append(f"  - differs most at {gaps}")
    return "**Image prompts**\n\n" + "\n".join(lines)


@dataclass
class _Pinned:
    cancel: threading.Event
    names: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _lanes(runtime: Runtime, names, request) -> Iterator[_Pinned]:
    """A measurement holds the lanes of every model it runs, and keeps the models it
    loads from being unloaded under it, until it is done."""
    scope = run_scope(request, "compare")
    with runtime.runs.run(scope) as cancel, runtime.service.seated(names, cancel) as seat:
        if not seat.wait():
            raise EngineInputError("Stopped before the models started.")
        pinned = _Pinned(cancel)
        try:
            yield pinned
        finally:
            runtime.models.unpin(pinned.names)


def _scoring(runtime: Runtime, name: str):
    """The model as fidelity reads it: with its logits, so a GGUF runs in this process
    (its llama-server child gives none), loaded for this measurement, one at a time."""
    from models.engines import scoring_engine_for

    engine = scoring_engine_for(runtime.spec(name), runtime.settings)
    engine.load()
    return engine


def _pinned(runtime: Runtime, name: str, pinned: _Pinned):
    engine = runtime.models.acquire([runtime.spec(name)], pin=True)[0]
    pinned.names.append(name)
    return engine


def _fidelity_table(found) -> pd.DataFrame:
    rows = [
        [
            r.model, r.tokens, _figures(r.kl_mean), _figures(r.kl_p99), f"{r.top1_agreement:.1%}",
            round(r.ppl, 2), round(r.ppl_reference, 2), round(r.seconds, 1),
        ]
        for r in found
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=FIDELITY_COLUMNS)


def _figures(value: float) -> float:
    """Three significant digits: a KL of 0.000123 stays readable, 0.0 stays 0."""
    return float(f"{value:.3g}")


def _kl_frame(found) -> pd.DataFrame:
    frames = []
    for r in found:
        series = pd.Series(r.kl_curve).rolling(KL_SMOOTH, min_periods=1).mean()[:: KL_SMOOTH // 2]
        frames.append(pd.DataFrame({"token": series.index, "KL": series.to_numpy(), "model": r.model}))
    return pd.concat(frames, ignore_index=True)


def _passages(found) -> str:
    lines = []
    for r in found:
        for p in r.diverging:
            text = " ".join(p.text.split())[:160].replace("|", "\\|")
            lines.append(f"- **{r.model}**, {p.where} (KL {p.kl_mean:.3f}): “{text}”")
    return ("**Where the variants stray most**\n\n" + "\n".join(lines)) if lines else ""


def _suite(runtime: Runtime):
    def run(names, path, limit, max_tokens, request: gr.Request, progress=gr.Progress()):
        from evals.prechecks import check_runnable
        from evals.suite_file import load_suite
        from evals.suite_run import run_suite, summarize

        try:
            if not names:
                raise EngineInputError("Pick at least one model above.")
            check_runnable({name: runtime.spec(name) for name in names})  # before a run is saved
            conversations = load_suite(path or "builtin")
            conversations = conversations[: int(limit)] if limit and int(limit) > 0 else conversations
            owner = history.user_of(request)
            run_id = runtime.store.evals.start(
                "suite", Path(path).name if path else "builtin", list(names),
                {"max_tokens": int(max_tokens), "limit": int(limit or 0)}, owner=owner,
            )  # fmt: skip
            params = SamplingParams(temperature=0.0, max_tokens=int(max_tokens))
            with _lanes(runtime, names, request) as pinned:
                cancel = pinned.cancel
                for name in names:
                    spec = runtime.spec(name)
                    engine = _pinned(runtime, name, pinned)
                    report = lambda f, what: progress(f, desc=what)  # noqa: E731
                    run_suite(
                        runtime.store,
                        run_id,
                        engine,
                        name,
                        conversations,
                        params,
                        spec.system_prompt,
                        report,
                        cancel,
                    )
        except ValueError as exc:  # a bad suite file, EngineInputError included
            return f"⚠ {exc}", gr.Dataframe(), gr.File(visible=False)
        except Fault as exc:
            return f"⚠ {exc}", gr.Dataframe(), gr.File(visible=False)
        reports = summarize(runtime.store.evals.results(run_id), list(names))
        return f"Run {run_id} saved.", _suite_table(reports), gr.File(_csv(runtime, run_id), visible=True)

    return run


def _suite_table(reports) -> pd.DataFrame:
    rows = [
        [
            r.model,
            f"{r.accuracy:.1%}",
            " → ".join(f"{a:.0%}" for a in r.turns),
            " / ".join(f"{t:.0f}" for t in r.tokens_per_turn),
            ", ".join(f"{k} {v:.0%}" for k, v in r.by_check.items()),
        ]
        for r in reports
    ]
    return pd.DataFrame(rows, columns=SUITE_COLUMNS)


def _csv(runtime: Runtime, run_id: int) -> str:
    folder = Path(tempfile.mkdtemp(prefix="l4p-suite-"))
    path = folder / f"suite-run-{run_id}.csv"
    path.write_text(runtime.store.evals.to_csv(run_id), encoding="utf-8")
    return str(path)
