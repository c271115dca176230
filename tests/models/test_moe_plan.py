"""The MoE expert offload planner on synthetic GGUF headers with the real shapes of
Llama 4 Scout and Maverick, at Q2_K and Q4_K, on typical machines."""

from __future__ import annotations

import re

import pytest

from models.moe_plan import GB, GPU_MARGIN, Machine, plan_moe, split_layers, tensors_from_gguf

HIDDEN, EXPERT_FF, DENSE_FF, LAYERS, VOCAB = 5120, 8192, 16384, 48, 202048
Q_HEADS, KV_HEADS, HEAD_DIM = 40, 8, 128
BYTES_PER_WEIGHT = {"Q2_K": 84 / 256, "Q4_K": 144 / 256}  # ggml's block sizes
KV_8K = LAYERS * 2 * KV_HEADS * HEAD_DIM * 2 * 8192  # f16 K and V at 8K context

MACHINES = {
    "24 GB GPU + 64 GB RAM": Machine(vram=24 * GB, ram=64 * GB),
    "16 GB GPU + 128 GB RAM": Machine(vram=16 * GB, ram=128 * GB),
    "Apple 64 GB unified": Machine(vram=None, ram=64 * GB, unified=True),
    "CPU only, 128 GB": Machine(vram=None, ram=128 * GB),
}


def llama4_header(quant: str, experts: int, moe_step: int) -> list[tuple[str, int]]:
    """(tensor, bytes) as a Llama 4 GGUF's header lists them: MoE layers every
    `moe_step` layers (1 - 1 Scout; 2 - 1, 3, 5, ... Maverick), dense FFN between."""
    q = BYTES_PER_WEIGHT[quant]

    def matrix(name: str, *shape: int) -> tuple[str, int]:
        count = 1
        for n in shape:
            count *= n
        return name, round(count * q)

    tensors = [matrix("token_embd.weight", VOCAB, HIDDEN), matrix("output.weight", VOCAB, HIDDEN)]
    tensors.append(("output_norm.weight", HIDDEN * 4))
    for layer in range(LAYERS):
        p = f"blk.{layer}"
        tensors += [(f"{p}.attn_norm.weight", HIDDEN * 4), (f"{p}.ffn_norm.weight", HIDDEN * 4)]
        tensors += [
            matrix(f"{p}.attn_q.weight", Q_HEADS * HEAD_DIM, HIDDEN),
            matrix(f"{p}.attn_k.weight", KV_HEADS * HEAD_DIM, HIDDEN),
            matrix(f"{p}.attn_v.weight", KV_HEADS * HEAD_DIM, HIDDEN),
            matrix(f"{p}.attn_output.weight", HIDDEN, Q_HEADS * HEAD_DIM),
        ]
        if layer % moe_step == moe_step - 1:
            tensors.append((f"{p}.ffn_gate_inp.weight", experts * HIDDEN * 4))
            for kind in ("gate", "up", "down"):
                tensors.append(matrix(f"{p}.ffn_{kind}_shexp.weight", EXPERT_FF, HIDDEN))
                tensors.append(matrix(f"{p}.ffn_{kind}_exps.weight", experts, EXPERT_FF, HIDDEN))
        else:
            tensors += [matrix(f"{p}.ffn_{kind}.weight", DENSE_FF, HIDDEN) for kind in ("gate", "up", "down")]
    return tensors


def scout(quant: str) -> list[tuple[str, int]]:
    return llama4_header(quant, experts=16, moe_step=1)


def maverick(quant: str) -> list[tuple[str, int]]:
    return llama4_header(quant, experts=128, moe_step=2)


def test_the_synthetic_headers_have_the_published_sizes():
    # Scout: 109B parameters, Maverick: 400B (Meta's model cards).
    assert split_layers(scout("Q4_K")).total / (144 / 256) == pytest.approx(108e9, rel=0.02)
    assert split_layers(maverick("Q4_K")).total / (144 / 256) == pytest.approx(401e9, rel=0.02)
    assert len(split_layers(maverick("Q2_K")).experts) == 24


def check_split(tensors, machine: Machine, context: int):
    """What every GPU plan must hold: the GPU's share fits, one more expert layer
    would not, the expert layers kept in RAM are exactly the first n_cpu_moe layers',
    and every byte is in one place."""
    plan = plan_moe(tensors, machine, context)
    layers = split_layers(tensors)
    budget = (machine.ram * 0.75 if machine.unified else machine.vram) - GPU_MARGIN
    assert plan.gpu_bytes <= budget
    assert plan.gpu_bytes + plan.ram_bytes == layers.total + context
    in_ram = [layer for layer in layers.experts if layer < plan.n_cpu_moe]
    assert len(in_ram) == plan.expert_layers - plan.expert_layers_on_gpu
    if in_ram:  # the last expert layer left in RAM would not have fitted too
        assert plan.gpu_bytes + layers.experts[max(in_ram)] > budget
        assert plan.n_cpu_moe == max(in_ram) + 1  # no wasted layer index past it
    return plan


def test_scout_q4_on_a_24_gb_gpu_keeps_the_first_expert_layers_in_ram():
    plan = check_split(scout("Q4_K"), MACHINES["24 GB GPU + 64 GB RAM"], KV_8K)
    assert plan.n_gpu_layers == "all" and not plan.cpu_moe
    assert 10 <= plan.expert_layers_on_gpu <= 16 and plan.expert_layers == 48  # ~1.1 GB each
    assert plan.flags() == ["--n-gpu-layers", "all", "--n-cpu-moe", str(48 - plan.expert_layers_on_gpu)]
    assert plan.fits
    assert re.fullmatch(
        rf"GPU \d+\.\d GB \+ RAM \d+\.\d GB, {plan.expert_layers_on_gpu} of 48 expert layers on the GPU",
        plan.describe(),
    )


def test_scout_q2_on_16_gb_puts_more_layers_per_gigabyte_on_the_gpu():
    q2 = check_split(scout("Q2_K"), MACHINES["16 GB GPU + 128 GB RAM"], KV_8K)
    q4 = check_split(scout("Q4_K"), MACHINES["16 GB GPU + 128 GB RAM"], KV_8K)
    assert q2.fits and q4.fits
    assert q2.expert_layers_on_gpu > q4.expert_layers_on_gpu > 0


def test_maverick_counts_only_its_moe_layers_and_stops_at_one():
    plan = check_split(maverick("Q2_K"), MACHINES["16 GB GPU + 128 GB RAM"], KV_8K)
    assert plan.expert_layers == 24
    assert plan.n_cpu_moe % 2 == 0  # the last expert layer in RAM is an odd one
    assert 0 < plan.expert_layers_on_gpu < 4  # ~5 GB each at Q2_K
    assert plan.fits  # ~122 GB of experts in 128 GB of free RAM
    smaller = plan_moe(maverick("Q2_K"), MACHINES["24 GB GPU + 64 GB RAM"], KV_8K)
    assert not smaller.fits and smaller.describe().endswith("(more than is free)")


def test_apple_unified_memory_takes_scout_q2_whole_but_not_q4():
    whole = check_split(scout("Q2_K"), MACHINES["Apple 64 GB unified"], KV_8K)
    assert whole.expert_layers_on_gpu == 48 and whole.n_cpu_moe == 0 and whole.fits
    assert whole.flags() == ["--n-gpu-layers", "all"]
    q4 = check_split(scout("Q4_K"), MACHINES["Apple 64 GB unified"], KV_8K)
    assert q4.expert_layers_on_gpu < 48
    assert not q4.fits  # ~61 GB of weights + context in 64 GB shared with the system


def test_cpu_only_puts_everything_in_ram():
    tensors = scout("Q4_K")
    plan = plan_moe(tensors, MACHINES["CPU only, 128 GB"], KV_8K)
    assert plan.flags() == ["--n-gpu-layers", "0"]
    assert plan.ram_bytes == split_layers(tensors).total + KV_8K and plan.gpu_bytes == 0
    assert re.fullmatch(r"all in RAM: \d+\.\d GB, none on the GPU", plan.describe()) and plan.fits


def test_a_gpu_too_small_for_the_attention_takes_the_last_layers_and_no_experts():
    tensors = maverick("Q4_K")
    plan = plan_moe(tensors, Machine(vram=6 * GB, ram=512 * GB), KV_8K)
    assert plan.cpu_moe and isinstance(plan.n_gpu_layers, int) and 0 < plan.n_gpu_layers < 48
    assert plan.flags() == ["--n-gpu-layers", str(plan.n_gpu_layers), "--cpu-moe"]
    assert plan.gpu_bytes <= 6 * GB - GPU_MARGIN and plan.fits


def test_a_dense_model_goes_whole_to_a_gpu_that_holds_it():
    dense = [(f"blk.{i}.attn_q.weight", 10**8) for i in range(30)] + [("token_embd.weight", 10**8)]
    plan = plan_moe(dense, Machine(vram=8 * GB, ram=16 * GB))
    assert plan.flags() == ["--n-gpu-layers", "all"] and plan.expert_layers == 0


def test_the_tiny_llama4_header_is_read_as_llama_cpp_places_it(tiny_llama4):
    layers = split_layers(tensors_from_gguf(tiny_llama4[0]))
    assert sorted(layers.experts) == [1, 3]  # interleave step 2
    assert layers.n_layers == 4 and layers.ram_only > 0
