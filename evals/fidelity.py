"""Quantization fidelity on your own document: how far a variant's next-token
distributions stray from a reference model's, token by token, on the same tokens.

Every model reads the same token ids (a model that tokenizes the text differently is
refused: its distributions would be over other events). The text is cut into windows
that overlap by half, each starting with BOS, and each target token is scored once,
with at least half a window of context, as llama.cpp's `llama-perplexity` does.

Models run one after another, never together: the reference's top-k log-probs go to
files on disk (memory-mapped), then each variant streams its own log-probs batch by
batch against them. KL(reference || variant) is computed over the reference's top k
tokens plus one bucket for the rest of the vocabulary, a lower bound of the full KL
that is exact when the reference puts its mass in its top k (k = 32 here)."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from engine.protocol import ScoresPrompts
from errors import UserError

TOP_K = 32
MAX_WINDOW = 1024
MAX_TOKENS = 200_000  # ~500 pages; the reference's scores take 8 bytes x 33 per token on disk
PASSAGE_TOKENS = 32
ProgressFn = Callable[[float, str], None]
NO_TEXT = "the document has no text to score (scanned pages have none: OCR it first)"


class FidelityError(UserError):
    """A run that cannot be measured (one line for the user)."""


@dataclass(frozen=True)
class DocumentTokens:
    """The document as one token list, with the token index where each page starts."""

    tokens: tuple[int, ...]
    page_starts: tuple[tuple[int, int], ...]  # (token index, page number)

    def page_at(self, index: int) -> int | None:
        page = None
        for start, number in self.page_starts:
            if start > index:
                break
            page = number
        return page


@dataclass(frozen=True)
class Passage:
    start: int  # first target token of the passage
    end: int
    kl_mean: float
    page: int | None
    text: str

    @property
    def where(self) -> str:
        return f"p. {self.page}" if self.page else f"token {self.start:,}"


@dataclass(frozen=True)
class FidelityResult:
    model: str
    reference: str
    tokens: int
    kl_mean: float
    kl_p99: float
    top1_agreement: float
    ppl: float
    ppl_reference: float
    seconds: float
    kl_curve: tuple[float, ...] = ()  # KL per scored token, in document order
    passages: tuple[Passage, ...] = field(default_factory=tuple)

    @property
    def diverging(self) -> tuple[Passage, ...]:
        """The passages where the variant strays at all (a faithful copy has none)."""
        return tuple(p for p in self.passages if p.kl_mean > 0)

    def summary(self) -> dict:
        """The `--json` object."""
        keys = ("model", "reference", "tokens", "kl_mean", "kl_p99", "top1_agreement", "ppl")
        row = {k: getattr(self, k) for k in keys}
        row["ppl_reference"] = self.ppl_reference
        return row


def document_tokens(engine, pages: Sequence[tuple[int | None, str]]) -> DocumentTokens:
    """Tokenize page by page (page numbers None for plain text), joined."""
    tokens: list[int] = []
    starts = []
    for number, text in pages:
        if number is not None:
            starts.append((len(tokens), number))
        tokens += engine.tokenize_plain(text if not tokens else "\n\n" + text)
    if len(tokens) < 2:
        raise FidelityError(NO_TEXT)
    if len(tokens) > MAX_TOKENS:
        raise FidelityError(f"the document is {len(tokens):,} tokens; fidelity reads at most {MAX_TOKENS:,}")
    return DocumentTokens(tuple(tokens), tuple(starts))


def windows(n_tokens: int, window: int) -> list[tuple[int, int, int]]:
    """(start, end, first scored) per window: a window reads BOS + tokens[start:end-1]
    and predicts targets start..end-1; it scores those from `first scored` on, so each
    target is scored once and, after the first window, with half a window of context."""
    plan, scored = [], 0
    start = 0
    while scored < n_tokens:
        end = min(start + window, n_tokens)
        plan.append((start, end, scored))
        scored = end
        start = max(end - window // 2, start + 1)
    return plan


class ReferenceScores:
    """The reference's top-k log-probs and the log-prob of each real next token, in
    memory-mapped files under a temporary folder (deleted on close)."""

    def __init__(self, n_targets: int, folder: Path):
        self.ids = np.lib.format.open_memmap(folder / "ids.npy", "w+", np.int32, (n_targets, TOP_K))
        self.logprobs = np.lib.format.open_memmap(folder / "lp.npy", "w+", np.float32, (n_targets, TOP_K))
        self.target_lp = np.lib.format.open_memmap(folder / "target.npy", "w+", np.float32, (n_targets,))

    def store(self, first: int, rows: np.ndarray, targets: np.ndarray) -> None:
        top = np.argpartition(-rows, TOP_K - 1, axis=1)[:, :TOP_K]
        top_lp = np.take_along_axis(rows, top, axis=1)
        end = first + len(rows)
        self.ids[first:end], self.logprobs[first:end] = top, top_lp
        self.target_lp[first:end] = rows[np.arange(len(rows)), targets]


def score(engine, doc: DocumentTokens, window: int, on_rows, progress: ProgressFn, label: str) -> None:
    """Feed `on_rows(first target, log-prob rows, targets)` for every scored batch."""
    plan = windows(len(doc.tokens), window)
    bos = engine.bos_token
    for number, (start, end, scored_from) in enumerate(plan):
        progress(number / len(plan), f"{label}: window {number + 1} of {len(plan)}")
        position = start  # the next row predicts document token `position`
        for rows in engine.prompt_logprobs([bos, *doc.tokens[start : end - 1]]):
            targets = np.asarray(doc.tokens[position : position + len(rows)], dtype=np.int64)
            keep = max(scored_from - position, 0)
            if keep < len(rows):
                on_rows(position + keep, rows[keep:], targets[keep:])
            position += len(rows)


def variant_metrics(reference: ReferenceScores, first: int, rows: np.ndarray, targets) -> tuple:
    """Per target: KL(reference || variant) over the top-k + rest, top-1 agreement, and
    the variant's log-prob of the real token."""
    end = first + len(rows)
    ref_lp = reference.logprobs[first:end].astype(np.float64)
    ref_ids = reference.ids[first:end]
    var_lp = np.take_along_axis(rows, ref_ids, axis=1).astype(np.float64)
    p = np.exp(ref_lp)
    p_rest = np.clip(1 - p.sum(axis=1), 1e-12, 1)
    q_rest = np.clip(1 - np.exp(var_lp).sum(axis=1), 1e-12, 1)
    kl = (p * (ref_lp - var_lp)).sum(axis=1) + p_rest * (np.log(p_rest) - np.log(q_rest))
    ref_top1 = ref_ids[np.arange(len(rows)), ref_lp.argmax(axis=1)]
    agree = rows.argmax(axis=1) == ref_top1
    return np.maximum(kl, 0.0), agree, rows[np.arange(len(rows)), targets]


def run_fidelity(
    load: Callable[[str], object],
    unload: Callable[[object], None],
    reference: str,
    variants: Sequence[str],
    pages: Sequence[tuple[int | None, str]],
    window: int,
    progress: ProgressFn | None = None,
) -> list[FidelityResult]:
    """Measure each variant against the reference. `load(name)` gives a loaded engine
    with tokenize_plain, bos_token and prompt_logprobs; engines run one at a time."""
    report = progress or (lambda fraction, what: None)
    window = max(min(window, MAX_WINDOW), 8)
    if not any(text.strip() for _, text in pages):  # known before any model loads
        raise FidelityError(NO_TEXT)
    with tempfile.TemporaryDirectory(prefix="l4p-fidelity-") as folder:
        started = time.perf_counter()
        engine = _loaded(load, reference)
        try:
            doc = document_tokens(engine, pages)
            scores = ReferenceScores(len(doc.tokens), Path(folder))
            score(engine, doc, window, scores.store, report, reference)
        finally:
            unload(engine)
        reference_seconds = time.perf_counter() - started
        ppl_reference = _ppl(scores.target_lp)
        results = [
            _measure(load, unload, name, reference, pages, doc, scores, window, report) for name in variants
        ]
        return [
            replace(r, seconds=round(r.seconds + reference_seconds, 2), ppl_reference=round(ppl_reference, 4))
            for r in results
        ]


def _measure(load, unload, name, reference, pages, doc, scores, window, report) -> FidelityResult:
    started = time.perf_counter()
    n = len(doc.tokens)
    kl, agree, target_lp = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n)

    def take(first, rows, targets):
        end = first + len(rows)
        kl[first:end], agree[first:end], target_lp[first:end] = variant_metrics(scores, first, rows, targets)

    engine = _loaded(load, name)
    try:
        if document_tokens(engine, pages).tokens != doc.tokens:
            raise FidelityError(
                f"{name} and {reference} tokenize the document differently; "
                "fidelity compares models that read the same tokens (quants of one model)"
            )
        score(engine, doc, window, take, report, name)
        passages = _passages(kl, doc, engine)
    finally:
        unload(engine)
    return FidelityResult(
        model=name,
        reference=reference,
        tokens=n,
        kl_mean=round(float(kl.mean()), 6),
        kl_p99=round(float(np.percentile(kl, 99)), 6),
        top1_agreement=round(float(agree.mean()), 6),
        ppl=round(_ppl(target_lp), 4),
        ppl_reference=0.0,
        seconds=time.perf_counter() - started,
        kl_curve=tuple(float(v) for v in kl),
        passages=tuple(passages),
    )


def save_fidelity(store, document: str, models: Sequence[str], window: int, results, owner: str = "") -> int:
    """One saved run: a finished unit per variant, its summary as the detail."""
    from sessions.evals import EvalResult

    run_id = store.evals.start("fidelity", document, list(models), {"window": window}, owner=owner)
    rows = [
        EvalResult(r.model, document, 0, 0, r.tokens, 0, "", {**r.summary(), "seconds": r.seconds})
        for r in results
    ]
    store.evals.record_all(run_id, rows)
    return run_id


def _loaded(load, name: str):
    engine = load(name)
    if not isinstance(engine, ScoresPrompts):
        engine.unload()
        raise FidelityError(
            f"{name} cannot give next-token log-probs over a prompt (an endpoint): "
            "fidelity needs llama.cpp or transformers models"
        )
    return engine


def _ppl(target_lp) -> float:
    return float(math.exp(-float(np.mean(target_lp))))


def _passages(kl: np.ndarray, doc: DocumentTokens, engine, count: int = 3) -> list[Passage]:
    """The stretches of PASSAGE_TOKENS targets with the highest mean KL, not overlapping."""
    width = min(PASSAGE_TOKENS, len(kl))
    means = np.convolve(kl, np.ones(width) / width, mode="valid")
    chosen: list[Passage] = []
    for start in np.argsort(-means):
        start = int(start)
        if len(chosen) == count:
            break
        if any(abs(start - p.start) < width for p in chosen):
            continue
        text = engine.detokenize(list(doc.tokens[start : start + width]))
        chosen.append(Passage(start, start + width, round(float(means[start]), 6), doc.page_at(start), text))
    return chosen
