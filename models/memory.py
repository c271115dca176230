"""The memory guard: which models can sit in memory together.

Before models load, each one's cost (weights + KV cache for its context, plus a share
for compute buffers) is weighed against what the machine has free: RAM from
/proc/meminfo (or sysconf), plus free VRAM when layers go to a GPU and a GPU can be
asked (nvidia-smi, or torch when something already imported it). Models that do not
fit together run one group after another instead of getting the process OOM-killed.
`Settings.memory_budget_gb` (L4P_MEMORY_BUDGET_GB) replaces the measurement."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from config import Settings
from engine.machine import free_ram_bytes, free_vram_bytes
from engine.spec import GB, ModelSpec

# estimated_memory leaves out llama.cpp's compute buffers and the runtime around them.
COMPUTE_SHARE = 0.10


def memory_budget(
    settings: Settings,
    resident: int = 0,
    use_gpu: bool | None = None,
    free_ram: Callable[[], int | None] = free_ram_bytes,
    free_vram: Callable[[], int | None] = free_vram_bytes,
) -> int | None:
    """The one memory budget: bytes models may take. --memory-budget-gb when set, else
    free RAM now, plus free VRAM where models may use the GPU (`use_gpu`; None: as
    these settings load models, i.e. unless -ngl 0; True: what this machine holds
    with its GPU, as `launch.py models` asks), plus what the `resident` (loaded,
    about to be unloaded) models hold."""
    if settings.memory_budget_gb is not None:
        return int(settings.memory_budget_gb * GB)
    ram = free_ram()
    if ram is None:
        return None
    gpu = settings.n_gpu_layers != 0 if use_gpu is None else use_gpu
    return ram + ((free_vram() or 0) if gpu else 0) + resident


def kv_slots(spec: ModelSpec, settings: Settings | None) -> int:
    """How many full contexts of KV cache this model holds once loaded. llama-server
    splits its -c evenly among its -np slots unless the KV is unified;
    engine/llama_server.py passes -c n_ctx x slots with --no-kv-unified so each slot
    holds the model's whole context: slots x n_ctx positions. Other backends: one."""
    local = settings is not None and spec.backend == "llama.cpp" and not spec.is_remote
    return settings.local_slots if local else 1


def model_cost(spec: ModelSpec, settings: Settings | None = None) -> int | None:
    """Bytes this model takes here at its context (every slot's, as `settings` load
    it); 0 for a remote backend; None when unknown (no file and no published size)."""
    if spec.is_remote:
        return 0  # the server holds the weights
    estimate = spec.estimated_memory(spec.n_ctx * kv_slots(spec, settings))
    return None if estimate is None else math.ceil(estimate * (1 + COMPUTE_SHARE))


@dataclass(frozen=True)
class Plan:
    """Groups of models that run together, in order; `reason` says why there is more
    than one group (shown to the user)."""

    groups: list[list[int]]  # indexes into the specs given to `plan`
    budget: int | None
    reason: str = ""

    @property
    def serial(self) -> bool:
        return len(self.groups) > 1


class MemoryGuard:
    def __init__(
        self,
        settings: Settings,
        free_ram: Callable[[], int | None] = free_ram_bytes,
        free_vram: Callable[[], int | None] = free_vram_bytes,
    ):
        self.settings = settings
        self._free_ram = free_ram
        self._free_vram = free_vram

    def budget(self, resident: int = 0) -> int | None:
        return memory_budget(self.settings, resident, free_ram=self._free_ram, free_vram=self._free_vram)

    def plan(self, specs: Sequence[ModelSpec], resident: int = 0) -> Plan:
        """Greedy, in the given order: each model joins the current group while the
        group still fits; a model whose size is unknown runs alone."""
        budget = self.budget(resident)
        costs = [model_cost(spec, self.settings) for spec in specs]
        if budget is None:
            groups = [[i] for i in range(len(specs))]
            reason = "free memory is unknown here, so the models run one after another"
            return Plan(groups, None, reason if len(groups) > 1 else "")
        groups: list[list[int]] = []
        used: int | None = None  # None: the current group is closed (an unknown size runs alone)
        for index, cost in enumerate(costs):
            if groups and cost is not None and used is not None and used + cost <= budget:
                groups[-1].append(index)
                used += cost
            else:
                groups.append([index])
                used = cost
        reason = _reason(specs, costs, budget) if len(groups) > 1 else ""
        return Plan(groups, budget, reason)


def _reason(specs: Sequence[ModelSpec], costs: list[int | None], budget: int) -> str:
    unknown = [spec.label for spec, cost in zip(specs, costs, strict=True) if cost is None]
    if unknown:
        return f"the memory {', '.join(unknown)} needs is unknown, so the models run one after another"
    total = sum(c for c in costs if c is not None)
    return (
        f"together they need about {total / GB:.1f} GB but {budget / GB:.1f} GB is free, "
        "so they run one after another"
    )
