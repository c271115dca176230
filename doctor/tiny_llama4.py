"""Write a tiny random-weight Llama 4 (text model + vision projector) as GGUF.

Why: tests need to drive llama.cpp's real `llama4` text path and its mtmd
(multimodal) path without downloading a 60 GB checkpoint, and `launch.py doctor`
checks how the llama.cpp in use lays out a Llama 4 image on it. The weights are
noise, so the output text is gibberish, but every shape, key and special token
is what llama.cpp expects from a real Llama 4 conversion: the loader, the
tokenizer, the chat template, image tiling and the projector all run for real.

    python -m tests.fixtures.tiny_llama4 OUTDIR   (or python -m doctor.tiny_llama4 OUTDIR)

writes OUTDIR/tiny-llama4.gguf (~1 MB) and OUTDIR/tiny-llama4-mmproj.gguf (~210 KB).
Files are deterministic for a given seed; different seeds give different weights.
A 56 px image is one tile: TOKENS_PER_TILE (4) embeddings, laid out as
<|image_start|> <|image|> (tile) <|image_end|>; bigger images are cut into up to
3x3 tiles plus an overview tile (engine/image_plan.py has the layout).
What tests on it prove: llama.cpp's llama4 text and mtmd paths load, tokenize,
tile, cache and stream as they would for Scout. What they cannot: that the math
equals Meta's (its weights exist only as GGUF; tests/fixtures/llama4_pair.py makes
the pair of files the transformers reference shares) or anything about real answers.

Notes on what llama.cpp hard-codes for `llama4` (no GGUF key changes these):
every 4th layer is a NoPE layer with attention-temperature tuning, and the
other layers use 8192-token chunked attention. Fewer than 4 layers means no
NoPE layer, and llama.cpp then aborts building the temperature input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np

MODEL_FILENAME = "tiny-llama4.gguf"
MMPROJ_FILENAME = "tiny-llama4-mmproj.gguf"
WEIGHT_STD = 0.02

# Text model. Layers 1 and 3 are MoE (interleave step 2), layer 3 is also NoPE.
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
HEAD_DIM = N_EMBD // N_HEAD
N_LAYER = 4
N_FF = 128
N_FF_EXP = 64
N_EXPERT = 4
N_EXPERT_USED = 1
MOE_STEP = 2
CONTEXT_LENGTH = 4096

# Vision encoder: 56 px image, 14 px patches -> 4x4 patches -> 2x2 tokens per tile.
V_IMAGE_SIZE = 56
V_PATCH = 14
V_EMBD = 32
V_HEAD = 2
V_FF = 64
V_LAYER = 2
V_SCALE = 2  # pixel-shuffle factor (HF pixel_shuffle_ratio = 0.5)
V_PROJ_HIDDEN = 64
V_N_POS = (V_IMAGE_SIZE // V_PATCH) ** 2 + 1  # patches + [CLS]
# Embeddings one 56 px tile becomes; mtmd adds <|image_start|>/<|image_end|> around them.
TOKENS_PER_TILE = (V_IMAGE_SIZE // V_PATCH // V_SCALE) ** 2

# fmt: off
SPECIAL_TOKENS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|header_start|>", "<|header_end|>",
    "<|eot|>", "<|eom|>", "<|image_start|>", "<|image_end|>", "<|image|>",
    "<|patch|>", "<|tile_x_separator|>", "<|tile_y_separator|>",
    "<|finetune_right_pad_id|>", "<|python_start|>", "<|python_end|>",
]
BOS, EOS, EOM = "<|begin_of_text|>", "<|eot|>", "<|eom|>"

# BPE merges in rank order, in GPT-2 byte-level spelling ("Ġ" is a space).
MERGES = [
    "Ġ t", "h e", "Ġ a", "i n", "e r", "a n", "o n", "r e", "Ġt he", "Ġ s",
    "e n", "a t", "o r", "Ġ w", "e s", "Ġ o", "i s", "i t", "Ġ i", "Ġ c",
    "Ġ b", "Ġ f", "Ġ m", "Ġ p", "Ġ h", "Ġ d", "o u", "e d", "in g", "l l",
    "n d", "Ġo f", "Ġa nd", "Ġt o", "Ġ in", "Ġ is", "Ġ it", "a r", "a l", "t h",
    "Ġ l", "Ġ n", "Ġ y", "Ġy ou", "o w", "Ġa t", "Ġw h", "Ġ e", "l e", "s t",
]
# fmt: on

# Short but faithful Llama 4 instruct template (text and image content parts).
CHAT_TEMPLATE = (
    r"{{- bos_token }}"
    r"{%- for message in messages %}"
    r"{{- '<|header_start|>' + message['role'] + '<|header_end|>\n\n' }}"
    r"{%- if message['content'] is string %}{{- message['content'] }}"
    r"{%- else %}{%- for part in message['content'] %}"
    r"{%- if part['type'] == 'image' %}{{- '<|image|>' }}"
    r"{%- elif part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
    r"{%- endfor %}{%- endif %}"
    r"{{- '<|eot|>' }}"
    r"{%- endfor %}"
    r"{%- if add_generation_prompt %}"
    r"{{- '<|header_start|>assistant<|header_end|>\n\n' }}"
    r"{%- endif %}"
)

TOKEN_NORMAL, TOKEN_CONTROL = 1, 3


def _byte_symbols() -> list[str]:
    """GPT-2's reversible byte -> printable unicode map, in byte order."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def build_vocab() -> tuple[list[str], list[int], list[str]]:
    """Return (tokens, token types, merges): bytes, merged pairs, specials."""
    tokens = _byte_symbols()
    for merge in MERGES:
        left, right = merge.split(" ")
        assert left in tokens and right in tokens, merge
        assert left + right not in tokens, merge
        tokens.append(left + right)
    types = [TOKEN_NORMAL] * len(tokens) + [TOKEN_CONTROL] * len(SPECIAL_TOKENS)
    return tokens + SPECIAL_TOKENS, types, list(MERGES)


def _text_kv(n_vocab: int) -> dict[str, object]:
    arch = "llama4"
    return {
        f"{arch}.vocab_size": n_vocab,
        f"{arch}.context_length": CONTEXT_LENGTH,
        f"{arch}.embedding_length": N_EMBD,
        f"{arch}.block_count": N_LAYER,
        f"{arch}.feed_forward_length": N_FF,
        f"{arch}.attention.head_count": N_HEAD,
        f"{arch}.attention.head_count_kv": N_HEAD_KV,
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-5,
        f"{arch}.rope.dimension_count": HEAD_DIM,
        f"{arch}.rope.freq_base": 500000.0,
        f"{arch}.expert_count": N_EXPERT,
        f"{arch}.expert_used_count": N_EXPERT_USED,
        f"{arch}.expert_feed_forward_length": N_FF_EXP,
        f"{arch}.interleave_moe_layer_step": MOE_STEP,
    }


def _tokenizer_kv() -> dict[str, object]:
    tokens, types, merges = build_vocab()
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "llama4",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": tokens.index(BOS),
        "tokenizer.ggml.eos_token_id": tokens.index(EOS),
        "tokenizer.ggml.eot_token_id": tokens.index(EOS),
        "tokenizer.ggml.eom_token_id": tokens.index(EOM),
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.chat_template": CHAT_TEMPLATE,
    }


def _vision_kv() -> dict[str, object]:
    return {
        "clip.projector_type": "llama4",
        "clip.has_vision_encoder": True,
        "clip.use_gelu": True,
        "clip.vision.image_size": V_IMAGE_SIZE,
        "clip.vision.patch_size": V_PATCH,
        "clip.vision.embedding_length": V_EMBD,
        "clip.vision.feed_forward_length": V_FF,
        "clip.vision.block_count": V_LAYER,
        "clip.vision.attention.head_count": V_HEAD,
        "clip.vision.attention.layer_norm_epsilon": 1e-5,
        "clip.vision.projection_dim": N_EMBD,
        "clip.vision.projector.scale_factor": V_SCALE,
        "clip.vision.image_mean": [0.5, 0.5, 0.5],
        "clip.vision.image_std": [0.5, 0.5, 0.5],
    }


def _dense(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Random weight; numpy shape is ggml's `ne` reversed (rows = outputs)."""
    return rng.normal(0.0, WEIGHT_STD, size=shape).astype(np.float32)


def _ones(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float32)


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float32)


def _text_block(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
    p = f"blk.{i}"
    t = {
        f"{p}.attn_norm.weight": _ones(N_EMBD),
        f"{p}.attn_q.weight": _dense(rng, N_HEAD * HEAD_DIM, N_EMBD),
        f"{p}.attn_k.weight": _dense(rng, N_HEAD_KV * HEAD_DIM, N_EMBD),
        f"{p}.attn_v.weight": _dense(rng, N_HEAD_KV * HEAD_DIM, N_EMBD),
        f"{p}.attn_output.weight": _dense(rng, N_EMBD, N_HEAD * HEAD_DIM),
        f"{p}.ffn_norm.weight": _ones(N_EMBD),
    }
    if (i + 1) % MOE_STEP:
        t[f"{p}.ffn_gate.weight"] = _dense(rng, N_FF, N_EMBD)
        t[f"{p}.ffn_up.weight"] = _dense(rng, N_FF, N_EMBD)
        t[f"{p}.ffn_down.weight"] = _dense(rng, N_EMBD, N_FF)
        return t
    t[f"{p}.ffn_gate_inp.weight"] = _dense(rng, N_EXPERT, N_EMBD)
    t[f"{p}.ffn_gate_exps.weight"] = _dense(rng, N_EXPERT, N_FF_EXP, N_EMBD)
    t[f"{p}.ffn_up_exps.weight"] = _dense(rng, N_EXPERT, N_FF_EXP, N_EMBD)
    t[f"{p}.ffn_down_exps.weight"] = _dense(rng, N_EXPERT, N_EMBD, N_FF_EXP)
    t[f"{p}.ffn_gate_shexp.weight"] = _dense(rng, N_FF_EXP, N_EMBD)
    t[f"{p}.ffn_up_shexp.weight"] = _dense(rng, N_FF_EXP, N_EMBD)
    t[f"{p}.ffn_down_shexp.weight"] = _dense(rng, N_EMBD, N_FF_EXP)
    return t


def _text_tensors(rng: np.random.Generator, n_vocab: int) -> dict[str, np.ndarray]:
    tensors = {
        "token_embd.weight": _dense(rng, n_vocab, N_EMBD),
        "output_norm.weight": _ones(N_EMBD),
        "output.weight": _dense(rng, n_vocab, N_EMBD),
    }
    for i in range(N_LAYER):
        tensors.update(_text_block(rng, i))
    return tensors


def _linear(rng: np.random.Generator, name: str, n_out: int, n_in: int) -> dict[str, np.ndarray]:
    return {f"{name}.weight": _dense(rng, n_out, n_in), f"{name}.bias": _zeros(n_out)}


def _layer_norm(name: str, n: int) -> dict[str, np.ndarray]:
    return {f"{name}.weight": _ones(n), f"{name}.bias": _zeros(n)}


def _vision_block(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
    p = f"v.blk.{i}"
    t: dict[str, np.ndarray] = {}
    for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
        t.update(_linear(rng, f"{p}.{name}", V_EMBD, V_EMBD))
    t.update(_layer_norm(f"{p}.ln1", V_EMBD))
    t.update(_layer_norm(f"{p}.ln2", V_EMBD))
    t.update(_linear(rng, f"{p}.ffn_up", V_FF, V_EMBD))
    t.update(_linear(rng, f"{p}.ffn_down", V_EMBD, V_FF))
    return t


def _vision_tensors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    tensors = {
        # Llama4UnfoldConvolution: a linear layer over flattened 3 x P x P patches.
        "v.patch_embd.weight": _dense(rng, V_EMBD, 3 * V_PATCH * V_PATCH),
        "v.class_embd": _dense(rng, V_EMBD),
        "v.position_embd.weight": _dense(rng, V_N_POS, V_EMBD),
        **_layer_norm("v.pre_ln", V_EMBD),
        **_layer_norm("v.post_ln", V_EMBD),
    }
    for i in range(V_LAYER):
        tensors.update(_vision_block(rng, i))
    # Pixel shuffle folds V_SCALE x V_SCALE patches into one V_EMBD*V_SCALE^2 vector.
    tensors["mm.model.mlp.1.weight"] = _dense(rng, V_PROJ_HIDDEN, V_EMBD * V_SCALE**2)
    tensors["mm.model.mlp.2.weight"] = _dense(rng, V_PROJ_HIDDEN, V_PROJ_HIDDEN)
    # The projector's output width must equal the text model's hidden size.
    tensors["mm.model.fc.weight"] = _dense(rng, N_EMBD, V_PROJ_HIDDEN)
    return tensors


def _add_kv(writer: gguf.GGUFWriter, key: str, value: object) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    else:
        writer.add_array(key, value)


def _write_gguf(path: Path, arch: str, kv: dict[str, object], tensors: dict[str, np.ndarray]) -> None:
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in kv.items():
        _add_kv(writer, key, value)
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_llama4(outdir: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write the model and its mmproj into outdir; return (model_path, mmproj_path)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_vocab = len(build_vocab()[0])
    model_path, mmproj_path = outdir / MODEL_FILENAME, outdir / MMPROJ_FILENAME
    general = {
        "general.type": "model",
        "general.name": "tiny-llama4",
        "general.file_type": 0,  # all F32
    }
    text_kv = {**general, **_text_kv(n_vocab), **_tokenizer_kv()}
    _write_gguf(model_path, "llama4", text_kv, _text_tensors(rng, n_vocab))
    vision_kv = {**general, "general.type": "mmproj", **_vision_kv()}
    _write_gguf(mmproj_path, "clip", vision_kv, _vision_tensors(rng))
    return model_path, mmproj_path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m doctor.tiny_llama4 OUTDIR", file=sys.stderr)
        return 2
    for path in write_tiny_llama4(Path(args[0])):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
