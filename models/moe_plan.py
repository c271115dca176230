"""Where a Mixture-of-Experts GGUF's weights go: the GPU or RAM.

llama.cpp's standard split for a MoE model too big for the GPU (Llama 4 Scout on a
16-24 GB card): every layer's attention and shared weights on the GPU (`-ngl all`),
and the routed experts (`blk.N.ffn_{gate,up,down}_exps.weight`, most of the bytes, a
few of which each token reads) in RAM, the first N layers' of them
(`--n-cpu-moe N`; `--cpu-moe`: all). This module picks N from the GGUF header's
tensor sizes and the machine's free memory: the expert layers left on the GPU are as
many as fit after the rest. Pure Python: no llama.cpp, no GPU needed to plan.

    plan = plan_moe(tensors_from_gguf(path), Machine(vram=24e9, ram=64e9), context_bytes=kv)
    plan.describe()  # "GPU 21.9 GB + RAM 38.1 GB, 19 of 48 expert layers on the GPU"
    plan.flags()     # ["--n-gpu-layers", "all", "--n-cpu-moe", "29"]"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

GB = 10**9
EXPERT_TENSOR = re.compile(r"^blk\.(\d+)\.ffn_(?:gate_up|gate|up|down)_exps\.")
LAYER_TENSOR = re.compile(r"^blk\.(\d+)\.")
# llama.cpp keeps the input embeddings in RAM whatever -ngl says (a row lookup).
RAM_ONLY = ("token_embd.",)
# The output head and its norm go to the GPU only when every layer does (-ngl all).
OUTPUT = ("output.", "output_norm.")
GPU_MARGIN = 2**30  # llama.cpp's --fit leaves 1 GiB per device for what it cannot foresee
# Metal lets one process wire about three quarters of unified memory for the GPU.
UNIFIED_GPU_SHARE = 0.75
UNIFIED_OS_RESERVE = 4 * GB


@dataclass(frozen=True)
class Machine:
    """Free memory: `vram` None or 0 for no GPU; `unified`: Apple Silicon, where the
    GPU's memory is the RAM (`ram` is then the whole of it)."""

    vram: float | None
    ram: float
    unified: bool = False


@dataclass(frozen=True)
class Layers:
    """A model's bytes as llama.cpp places them."""

    n_layers: int
    dense: dict[int, int]  # per layer: attention, norms, router, shared expert, dense FFN
    experts: dict[int, int]  # per MoE layer: its routed experts
    output: int  # output head + final norm
    ram_only: int  # input embeddings

    @property
    def total(self) -> int:
        return sum(self.dense.values()) + sum(self.experts.values()) + self.output + self.ram_only


@dataclass(frozen=True)
class MoePlan:
    n_gpu_layers: int | str  # "all", or how many of the last layers go to the GPU
    n_cpu_moe: int  # the first N layers keep their experts in RAM (0: none)
    cpu_moe: bool  # every layer keeps its experts in RAM
    gpu_bytes: int
    ram_bytes: int
    expert_layers_on_gpu: int
    expert_layers: int
    fits: bool  # False: even this split needs more memory than the machine has free

    def describe(self) -> str:
        if self.gpu_bytes == 0:
            where = f"all in RAM: {self.ram_bytes / GB:.1f} GB, none on the GPU"
        else:
            where = f"GPU {self.gpu_bytes / GB:.1f} GB + RAM {self.ram_bytes / GB:.1f} GB"
            where += f", {self.expert_layers_on_gpu} of {self.expert_layers} expert layers on the GPU"
        return where if self.fits else f"{where} (more than is free)"

    def flags(self) -> list[str]:
        """llama-server's (and llama-cli's) flags for this split."""
        flags = ["--n-gpu-layers", str(self.n_gpu_layers)]
        if self.cpu_moe:
            flags.append("--cpu-moe")
        elif self.n_cpu_moe:
            flags += ["--n-cpu-moe", str(self.n_cpu_moe)]
        return flags


def split_layers(tensors: Iterable[tuple[str, int]]) -> Layers:
    """Group (tensor name, bytes) from a GGUF header by where llama.cpp puts them."""
    dense: dict[int, int] = {}
    experts: dict[int, int] = {}
    output = ram_only = 0
    for name, size in tensors:
        if match := EXPERT_TENSOR.match(name):
            layer = int(match[1])
            experts[layer] = experts.get(layer, 0) + size
            dense.setdefault(layer, 0)
        elif match := LAYER_TENSOR.match(name):
            layer = int(match[1])
            dense[layer] = dense.get(layer, 0) + size
        elif name.startswith(RAM_ONLY):
            ram_only += size
        else:  # output head, final norm, rope factors: with the last layer
            output += size
    n_layers = max(dense, default=-1) + 1
    return Layers(n_layers, dense, experts, output, ram_only)


def tensors_from_gguf(path: Path) -> list[tuple[str, int]]:
    """(name, bytes) of every tensor in a GGUF file's header (first part of a split
    file only: the header names what that part holds)."""
    from gguf import GGUFReader

    return [(t.name, int(t.n_bytes)) for t in GGUFReader(str(path), "r").tensors]


def plan_moe(tensors: Iterable[tuple[str, int]], machine: Machine, context_bytes: int = 0) -> MoePlan:
    """The split for this model on this machine. `context_bytes`: the KV cache and
    compute buffers, which sit with the layers on the GPU."""
    layers = split_layers(tensors)
    gpu_budget, ram_budget = _budgets(machine)
    if gpu_budget <= 0:
        return _cpu_only(layers, ram_budget, context_bytes)
    always_gpu = sum(layers.dense.values()) + layers.output + context_bytes
    if always_gpu > gpu_budget:
        return _partial_layers(layers, gpu_budget, ram_budget, context_bytes)
    room = gpu_budget - always_gpu
    moe_layers = sorted(layers.experts)
    # --n-cpu-moe N keeps the experts of layers 0..N-1 in RAM: put the GPU's share
    # at the end, adding expert layers from the last one down while they fit.
    on_gpu = 0
    for layer in reversed(moe_layers):
        if layers.experts[layer] > room:
            break
        room -= layers.experts[layer]
        on_gpu += 1
    in_ram = moe_layers[: len(moe_layers) - on_gpu]
    n_cpu_moe = in_ram[-1] + 1 if in_ram else 0
    ram_experts = sum(layers.experts[layer] for layer in in_ram)
    gpu = always_gpu + sum(layers.experts.values()) - ram_experts
    ram = layers.ram_only + ram_experts
    return MoePlan(
        n_gpu_layers="all",
        n_cpu_moe=n_cpu_moe,
        cpu_moe=bool(moe_layers) and on_gpu == 0,
        gpu_bytes=gpu,
        ram_bytes=ram,
        expert_layers_on_gpu=on_gpu,
        expert_layers=len(moe_layers),
        fits=_fits(machine, gpu, ram, ram_budget),
    )


def _budgets(machine: Machine) -> tuple[float, float]:
    """(bytes the GPU may take, bytes RAM may take) for the weights and context."""
    if machine.unified:
        gpu = machine.ram * UNIFIED_GPU_SHARE - GPU_MARGIN
        return gpu, machine.ram - UNIFIED_OS_RESERVE
    gpu = (machine.vram or 0) - GPU_MARGIN if machine.vram else 0
    return gpu, machine.ram


def _fits(machine: Machine, gpu: int, ram: int, ram_budget: float) -> bool:
    if machine.unified:  # one pool: the GPU's share and the CPU's come out of the same RAM
        return gpu + ram <= ram_budget
    return ram <= ram_budget


def _cpu_only(layers: Layers, ram_budget: float, context_bytes: int) -> MoePlan:
    ram = layers.total + context_bytes
    expert_layers = len(layers.experts)
    return MoePlan(0, 0, False, 0, ram, 0, expert_layers, ram <= ram_budget)


def _partial_layers(layers: Layers, gpu_budget: float, ram_budget: float, context_bytes: int) -> MoePlan:
    """Not even every layer's attention fits: the last layers' dense weights on the
    GPU, as many as fit, and every expert in RAM (-ngl K --cpu-moe)."""
    room = gpu_budget - context_bytes
    count = gpu = 0
    for layer in reversed(range(layers.n_layers)):
        size = layers.dense.get(layer, 0)
        if size > room:
            break
        room -= size
        gpu += size
        count += 1
    if count == 0:
        return _cpu_only(layers, ram_budget, context_bytes)
    ram = layers.total - gpu
    gpu += context_bytes
    expert_layers = len(layers.experts)
    return MoePlan(count, 0, True, gpu, ram, 0, expert_layers, ram <= ram_budget)
