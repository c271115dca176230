"""Fidelity on prompts with images: KL(reference || variant) and top-1 agreement on
the tokens of an answer that follows images (and the same answer after a text-only
twin), with every variant seeing the same tiles.

The engine plans each image's tile grid once (engine/image_plan.py) from its size
and the projector's tile budget, so two variants whose projectors agree on that
budget (checked from their headers, before anything loads) cut the same tiles from
the same pixels. Each prompt is read once per model: one forward pass over images,
question and answer, the answer's rows scored against the reference's top k, as the
text measure does (evals/fidelity.py)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evals.fidelity import FidelityError, ProgressFn, ReferenceScores, _ppl, variant_metrics
from evals.image_suite import ScoredPrompt

WORST_TOKENS = 8


@dataclass(frozen=True)
class TokenGap:
    """One answer token where the variant strays: its text, KL, and the prompt."""

    text: str
    kl: float
    prompt: str
    kind: str  # "image" (the answer follows images) or "text"


@dataclass(frozen=True)
class ImageFidelityResult:
    model: str
    reference: str
    tokens: int
    image_tokens: int  # prompt positions the variant's images took, over all prompts
    image_tokens_reference: int
    kl_mean: float
    kl_p99: float
    top1_agreement: float
    ppl: float
    ppl_reference: float
    by_kind: dict  # "image"/"text": {"tokens", "kl_mean", "top1_agreement"}
    seconds: float
    worst: tuple[TokenGap, ...] = field(default_factory=tuple)

    def summary(self) -> dict:
        """The `--json` object."""
        keys = ("model", "reference", "tokens", "image_tokens", "image_tokens_reference", "kl_mean")
        row = {k: getattr(self, k) for k in keys}
        row |= {"kl_p99": self.kl_p99, "top1_agreement": self.top1_agreement, "ppl": self.ppl}
        row |= {"ppl_reference": self.ppl_reference, "by_kind": self.by_kind}
        row["worst_tokens"] = [vars(gap) for gap in self.worst]
        return row


@dataclass
class _Scored:
    """What one model's pass over the prompts gave: answer tokens per prompt and the
    image positions its images took."""

    answers: list[list[int]]
    image_tokens: int = 0


def run_image_fidelity(
    load: Callable[[str], object],
    unload: Callable[[object], None],
    reference: str,
    variants: Sequence[str],
    prompts: Sequence[ScoredPrompt],
    progress: ProgressFn | None = None,
) -> list[ImageFidelityResult]:
    """Measure each variant against the reference on `prompts`; `load(name)` gives a
    loaded engine with answer_logprobs, tokenize_plain and detokenize."""
    report = progress or (lambda fraction, what: None)
    if not prompts:
        raise FidelityError("no prompts to score")
    with tempfile.TemporaryDirectory(prefix="l4p-fidelity-") as folder:
        started = time.perf_counter()
        engine = _scoring(load, reference)
        try:
            answers = [engine.tokenize_plain(p.answer) for p in prompts]
            n = sum(len(a) for a in answers)
            scores = ReferenceScores(n, Path(folder))
            ref = _score(engine, prompts, answers, _stored(scores, answers), report, reference)
        finally:
            unload(engine)
        ppl_reference = round(_ppl(scores.target_lp), 4)
        reference_seconds = time.perf_counter() - started
        given = (reference, prompts, ref, scores, report, reference_seconds, ppl_reference)
        return [_measure(load, unload, name, *given) for name in variants]


def _stored(scores: ReferenceScores, answers):
    offsets = np.cumsum([0, *(len(a) for a in answers)])

    def take(index, rows):
        scores.store(int(offsets[index]), rows, np.asarray(answers[index], dtype=np.int64))

    return take


def _score(engine, prompts, answers, take, report, label) -> _Scored:
    scored = _Scored(answers)
    for index, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        report(index / len(prompts), f"{label}: prompt {index + 1} of {len(prompts)} ({prompt.name})")
        rows, image_tokens = engine.answer_logprobs(prompt.messages(), answer)
        scored.image_tokens += sum(image_tokens)
        take(index, rows)
    return scored


def _measure(load, unload, name, reference, prompts, ref, scores, report, ref_seconds, ppl_ref):
    started = time.perf_counter()
    offsets = np.cumsum([0, *(len(a) for a in ref.answers)])
    n = int(offsets[-1])
    kl, agree, target_lp = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n)

    def take(index, rows):
        first, targets = int(offsets[index]), np.asarray(ref.answers[index], dtype=np.int64)
        end = first + len(rows)
        kl[first:end], agree[first:end], target_lp[first:end] = variant_metrics(scores, first, rows, targets)

    engine = _scoring(load, name)
    try:
        if [engine.tokenize_plain(p.answer) for p in prompts] != ref.answers:
            raise FidelityError(f"{name} and {reference} tokenize the answers differently")
        mine = _score(engine, prompts, ref.answers, take, report, name)
        kinds = np.repeat([p.kind for p in prompts], np.diff(offsets))
        worst = _worst(kl, kinds, prompts, offsets, ref.answers, engine)
    finally:
        unload(engine)
    return ImageFidelityResult(
        model=name,
        reference=reference,
        tokens=n,
        image_tokens=mine.image_tokens,
        image_tokens_reference=ref.image_tokens,
        kl_mean=round(float(kl.mean()), 6),
        kl_p99=round(float(np.percentile(kl, 99)), 6),
        top1_agreement=round(float(agree.mean()), 6),
        ppl=round(_ppl(target_lp), 4),
        ppl_reference=ppl_ref,
        by_kind={k: _kind_summary(kl[kinds == k], agree[kinds == k]) for k in dict.fromkeys(kinds)},
        seconds=round(time.perf_counter() - started + ref_seconds, 2),
        worst=worst,
    )


def _kind_summary(kl: np.ndarray, agree: np.ndarray) -> dict:
    return {
        "tokens": len(kl),
        "kl_mean": round(float(kl.mean()), 6),
        "top1_agreement": round(float(agree.mean()), 6),
    }


def _worst(kl, kinds, prompts, offsets, answers, engine) -> tuple[TokenGap, ...]:
    """The answer tokens with the highest KL (those above 0 only)."""
    gaps = []
    for position in np.argsort(-kl)[:WORST_TOKENS]:
        if kl[position] <= 0:
            break
        index = int(np.searchsorted(offsets, position, side="right") - 1)
        token = answers[index][int(position - offsets[index])]
        text = engine.detokenize([token])
        gaps.append(TokenGap(text, round(float(kl[position]), 6), prompts[index].name, str(kinds[position])))
    return tuple(gaps)


def _scoring(load, name: str):
    engine = load(name)
    if not hasattr(engine, "answer_logprobs"):
        engine.unload()
        raise FidelityError(
            f"{name} cannot give next-token log-probs after images: "
            "fidelity on images needs a llama.cpp model"
        )
    return engine


# -- refusing before loading -----------------------------------------------------


def check_comparable(specs: dict, with_images: bool) -> None:
    """Refuse, from the GGUF headers alone, models whose tokenizers differ, or (with
    images) whose projectors are missing or would cut or embed images differently."""
    from engine.gguf_header import projector_identity, tokenizer_identity

    named = [(name, spec) for name, spec in specs.items() if spec.backend == "llama.cpp" and spec.model_path]
    if len(named) < 2:
        return
    (first, spec), *others = named
    tokenizer = tokenizer_identity(spec.model_path)
    for name, other in others:
        theirs = tokenizer_identity(other.model_path)
        if theirs != tokenizer:
            keys = [k for k in tokenizer if tokenizer[k] != theirs[k]]
            differs = ", ".join(k.removeprefix("tokenizer.ggml.") for k in keys)
            raise FidelityError(
                f"{name} and {first} have different tokenizers ({differs} differ); "
                "fidelity compares models that read the same tokens (quants of one model)"
            )
    if not with_images:
        return
    for name, other in named:
        if other.mmproj_path is None:
            raise FidelityError(f"{name} has no projector: give it as GGUF:MMPROJ to score images")
    projector = projector_identity(spec.mmproj_path)
    for name, other in others:
        theirs = projector_identity(other.mmproj_path)
        if theirs != projector:
            differs = ", ".join(sorted(k for k in {*projector, *theirs} if projector.get(k) != theirs.get(k)))
            raise FidelityError(
                f"{name}'s projector and {first}'s cut or embed images differently ({differs} differ); "
                "fidelity on images compares variants that see the same tiles"
            )
