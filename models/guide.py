"""The first run's two lines: which model is running when it is not Llama 4 (the embedded
SmolLM2-135M, text only), and the way to Llama 4 on this machine: the biggest Llama 4
quant that fits here (models/fit.py) with its pull command, or a hosted provider with the
variable its key goes in. The page shows them above the chat, `launch.py` prints them
at start-up; nothing is said once a Llama 4 is what runs."""

from __future__ import annotations

import os
from dataclasses import dataclass

from config import Settings
from engine.spec import ModelSpec

EMBEDDED = "smollm2-135m"  # the preset that ships in a Python package (assets/models.toml)


@dataclass(frozen=True)
class NextStep:
    running: str  # "Running SmolLM2 ... (embedded, text only): not Llama 4."
    local: ModelSpec | None  # the Llama 4 quant to pull here (None: none fits, or size unknown)
    hosted: ModelSpec | None  # a hosted preset (its key set first)
    budget_gb: float | None

    def lines(self, *, page: bool = False) -> tuple[str, str]:
        """The two lines; on the page with the Models tab's button, in Markdown."""
        code = (lambda text: f"`{text}`") if page else (lambda text: text)
        ways = []
        if self.local is not None:
            size = (self.local.file_bytes() or 0) / 1e9
            where = " or **Pull** in the Models tab" if page else " (or Pull in the page's Models tab)"
            ways.append(
                f"pull {self.local.label.split(' (')[0]} ({size:.1f} GB, fits here): "
                f"{code(f'launch.py pull {self.local.name}')}{where}"
            )
        elif self.budget_gb is not None:
            ways.append(f"no Llama 4 quant fits the {self.budget_gb:.0f} GB free here")
        if self.hosted is not None:
            ways.append(_hosted_way(self.hosted, code, page))
        return self.running, "For Llama 4: " + "; or ".join(ways) + "."


def next_step(specs: list[ModelSpec], running: ModelSpec, settings: Settings) -> NextStep | None:
    """What to say at first run; None when the running model is a Llama 4."""
    if running.is_llama:
        return None
    what = "text only" if not running.vision else "sees images"
    name = running.label.split(" (")[0]
    kind = "the embedded model, " if running.name == EMBEDDED else ""
    line = f"Running {name} ({kind}{what}): not Llama 4."
    local, budget = _local_quant(specs, settings)
    hosted = sorted(
        (s for s in specs if s.provider and s.is_llama),
        key=lambda s: not (s.api_key_env and os.environ.get(s.api_key_env)),
    )
    return NextStep(line, local, hosted[0] if hosted else None, budget)


def _local_quant(specs: list[ModelSpec], settings: Settings) -> tuple[ModelSpec | None, float | None]:
    """The biggest Llama 4 GGUF to pull that fits this machine at its context."""
    from models.fit import fit
    from models.memory import free_vram_bytes, memory_budget

    budget, vram = memory_budget(settings, use_gpu=True), free_vram_bytes()
    pullable = [s for s in specs if s.is_llama and s.hf_repo and s.backend == "llama.cpp"]
    fitting = [s for s in pullable if fit(s, settings, budget=budget, vram=vram).fits]
    best = max(fitting, key=lambda s: s.file_bytes() or 0) if fitting else None
    return best, (budget / 1e9 if budget else None)


def _hosted_way(spec: ModelSpec, code, page: bool = False) -> str:
    if spec.api_key_env and not os.environ.get(spec.api_key_env):
        if page:  # a sentence, not a variable name (the Models tab names it for an admin)
            return f"use {spec.label} with your API key there: {code(f'launch.py --provider {spec.name}')}"
        return f"use {spec.label}: set {spec.api_key_env} and run {code(f'launch.py --provider {spec.name}')}"
    return f"use {spec.label} ({code(f'launch.py --provider {spec.name}')})"
