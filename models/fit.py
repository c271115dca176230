"""What fits on this machine: free RAM and VRAM (nvidia-smi), and a GGUF's own header
(its layers, KV heads, head size, and the bytes of each layer's tensors) decide whether
a model fits at its context, the largest context that fits, and how many layers go to
the GPU (`-ngl auto`).

The arithmetic is the memory guard's (models/memory.py): weights + an f16 KV cache
for the context, plus COMPUTE_SHARE for llama.cpp's compute buffers. A preset not on
disk is weighed from its published size and KV figure."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from engine.gguf import gguf_kv_bytes_per_token, gguf_parts
from engine.spec import GB, ModelSpec
from engine.types import EngineInputError
from models.memory import COMPUTE_SHARE, free_vram_bytes, memory_budget

CTX_STEP = 256  # contexts are offered in steps llama.cpp's allocator likes
ALL_LAYERS = -1
LAYER = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True)
class Layout:
    """Where a GGUF's bytes are: per transformer block, and outside the blocks."""

    layer_bytes: tuple[int, ...]
    other_bytes: int
    kv_bytes_per_token: int | None


@dataclass(frozen=True)
class Fit:
    fits: bool | None  # None: the size is unknown
    max_ctx_that_fits: int | None  # 0: not even the weights fit
    n_gpu_layers: int | None  # layers to offload; -1 all; None unknown (no file yet)
    needs_bytes: int | None  # at the model's context
    budget_bytes: int | None

    def as_dict(self) -> dict:
        return {
            "fits": self.fits,
            "max_ctx_that_fits": self.max_ctx_that_fits,
            "n_gpu_layers_that_fit": self.n_gpu_layers,
            "needs_gb": round(self.needs_bytes / GB, 2) if self.needs_bytes is not None else None,
            "budget_gb": round(self.budget_bytes / GB, 2) if self.budget_bytes is not None else None,
        }


def gguf_layout(path: Path) -> Layout | None:
    """Tensor bytes per block over every part of a (split) GGUF, read from the headers."""
    try:
        parts = gguf_parts(path)
        versions = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in parts)
    except OSError:
        return None
    layers, other = _tensor_bytes(versions)
    if layers is None:
        return None  # not a readable GGUF: the guard weighs the file size alone
    return Layout(layers, other, gguf_kv_bytes_per_token(path))


@functools.lru_cache(maxsize=16)
def _tensor_bytes(versions: tuple[tuple[str, int, int], ...]) -> tuple[tuple[int, ...] | None, int]:
    from gguf import GGUFReader

    layers: dict[int, int] = {}
    other = 0
    try:
        for part, _, _ in versions:
            for tensor in GGUFReader(part, "r").tensors:
                match = LAYER.match(tensor.name)
                if match:
                    layers[int(match[1])] = layers.get(int(match[1]), 0) + int(tensor.n_bytes)
                else:
                    other += int(tensor.n_bytes)
    except Exception:
        return None, 0
    return tuple(layers[i] for i in sorted(layers)), other


def fit(
    spec: ModelSpec,
    settings: Settings,
    n_ctx: int | None = None,
    *,
    budget: int | None = None,
    vram: int | None = None,
) -> Fit:
    """Whether `spec` fits here at `n_ctx` (default its own), the largest context
    that would, and how many of its layers the free VRAM holds."""
    n_ctx = n_ctx or spec.n_ctx
    if spec.is_remote:
        return Fit(True, n_ctx, 0, 0, None)
    budget = memory_budget(settings, use_gpu=True) if budget is None else budget
    weights = spec.file_bytes()
    on_disk = spec.backend == "llama.cpp" and spec.available
    kv = spec.kv_bytes_per_token or (gguf_kv_bytes_per_token(spec.model_path) if on_disk else None) or 0
    if weights is None:
        return Fit(None, None, None, None, budget)
    needs = math.ceil((weights + kv * n_ctx) * (1 + COMPUTE_SHARE))
    if budget is None:
        return Fit(None, None, None, needs, None)
    vram = free_vram_bytes() if vram is None else vram
    # The tensor-by-tensor layout only matters with a GPU to fill.
    layout = gguf_layout(spec.model_path) if on_disk and vram else None
    return Fit(
        needs <= budget,
        _max_ctx(budget, weights, kv, spec.max_context),
        _gpu_layers(layout, kv, n_ctx, vram or 0),
        needs,
        budget,
    )


def _max_ctx(budget: int, weights: int, kv: int, max_context: int) -> int:
    room = budget / (1 + COMPUTE_SHARE) - weights
    if room <= 0:
        return 0
    if kv == 0:
        return max_context
    return min(max_context, int(room // kv) // CTX_STEP * CTX_STEP)


def _gpu_layers(layout: Layout | None, kv: int, n_ctx: int, vram: int) -> int | None:
    """Blocks, in order, whose weights and KV cache fit the free VRAM (less the compute
    share); all of them (-1) when the output layers fit too."""
    if vram <= 0:
        return 0
    if layout is None or not layout.layer_bytes:
        return None
    usable = vram / (1 + COMPUTE_SHARE)
    kv_per_layer = kv * n_ctx / len(layout.layer_bytes)
    used, count = 0.0, 0
    for size in layout.layer_bytes:
        if used + size + kv_per_layer > usable:
            return count
        used += size + kv_per_layer
        count += 1
    return ALL_LAYERS if used + layout.other_bytes <= usable else count


def gpu_layers_for(spec: ModelSpec, settings: Settings) -> int:
    """`-ngl auto`: as many layers as the free VRAM holds (0 without a GPU)."""
    layers = fit(spec, settings).n_gpu_layers
    return layers if layers is not None else 0


def check_context(spec: ModelSpec, settings: Settings, n_ctx: int, budget: int | None) -> None:
    """Refuse a context `spec` cannot take: past what it was trained on, or, raising it
    past the server's size, more than the memory `budget` holds beside its weights."""
    if n_ctx < CTX_STEP:
        raise EngineInputError(f"a context of {n_ctx:,} tokens is too small; the least is {CTX_STEP}")
    if n_ctx > spec.max_context:
        raise EngineInputError(
            f"a context of {n_ctx:,} tokens is over {spec.label}'s maximum of {spec.max_context:,}"
        )
    if n_ctx <= spec.n_ctx or spec.is_remote or budget is None:
        return  # the server's own size, or a server that holds its own memory
    largest = fit(spec, settings, n_ctx, budget=budget, vram=0).max_ctx_that_fits
    if largest is not None and n_ctx > max(largest, spec.n_ctx):
        raise EngineInputError(
            f"a context of {n_ctx:,} tokens does not fit in memory here beside {spec.label}'s weights; "
            f"at most {max(largest, spec.n_ctx):,} fits"
        )
