"""Which files of a GGUF repo make one model: the quant named in a file's name, split
GGUFs (`-00001-of-00003.gguf`, in subfolders too) gathered into one model, and the
vision projector (mmproj) that goes with it. Pure functions over a repo listing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

SPLIT = re.compile(r"-(\d{5})-of-(\d{5})$")
# One token of a quant tag, as llama.cpp and the GGUF publishers name them.
QUANT_TOKEN = re.compile(r"^(UD|I?Q\d(_[A-Z0-9]+)*|TQ\d_\d|BF16|F16|F32|FP16|MXFP4(_MOE)?)$", re.IGNORECASE)
FULL_PRECISION = ("F32", "BF16", "F16", "FP16")
# The projector in the precision llama.cpp's -hf prefers first.
MMPROJ_PREFERENCE = ("F16", "BF16", "Q8_0", "F32")


@dataclass(frozen=True)
class RemoteFile:
    path: str  # in the repo, e.g. "UD-Q4_K_XL/x-00001-of-00002.gguf"
    size: int
    sha256: str | None  # the LFS sha256 the hub advertises; None for a non-LFS file

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class Quant:
    """One model in the repo: a single GGUF, or every part of a split one, in order."""

    tag: str  # e.g. "UD-Q4_K_XL"; "" when the name carries none
    parts: tuple[RemoteFile, ...]

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)

    @property
    def folder(self) -> str:
        return str(PurePosixPath(self.parts[0].path).parent)

    @property
    def is_full_precision(self) -> bool:
        return self.tag.upper().removeprefix("UD-") in FULL_PRECISION


def quant_tag(filename: str) -> str:
    """'Llama-4-Scout-17B-16E-Instruct-UD-Q4_K_XL-00001-of-00002.gguf' -> 'UD-Q4_K_XL'."""
    stem = SPLIT.sub("", PurePosixPath(filename).name.removesuffix(".gguf"))
    tokens = re.split(r"[-.]", stem)
    tag: list[str] = []
    for token in reversed(tokens):
        if not QUANT_TOKEN.match(token):
            break
        tag.insert(0, token.upper())
    return "-".join(tag)


def is_mmproj(path: str) -> bool:
    return PurePosixPath(path).name.lower().startswith("mmproj")


def quants(files: list[RemoteFile]) -> list[Quant]:
    """Every complete model in the listing, smallest first. A split model missing a
    part is left out: llama.cpp could not load it."""
    groups: dict[str, list[tuple[int, int, RemoteFile]]] = {}
    for file in files:
        if not file.path.lower().endswith(".gguf") or is_mmproj(file.path):
            continue
        stem = file.path.removesuffix(".gguf")
        split = SPLIT.search(stem)
        index, count = (int(split[1]), int(split[2])) if split else (1, 1)
        groups.setdefault(SPLIT.sub("", stem), []).append((index, count, file))
    found = []
    for entries in groups.values():
        entries.sort(key=lambda entry: entry[0])
        count = entries[0][1]
        if [index for index, _, _ in entries] != list(range(1, count + 1)):
            continue
        parts = tuple(file for _, _, file in entries)
        found.append(Quant(quant_tag(parts[0].path), parts))
    return sorted(found, key=lambda quant: (quant.size, quant.parts[0].path))


def find_quant(available: list[Quant], wanted: str) -> Quant | None:
    """The quant named `wanted` (any case; 'Q4_K_XL' also finds 'UD-Q4_K_XL'), or a
    file name or path of one of its parts."""
    wanted_upper = wanted.upper()
    for match in (
        lambda q: q.tag == wanted_upper,
        lambda q: q.tag.removeprefix("UD-") == wanted_upper.removeprefix("UD-"),
        lambda q: any(wanted in (p.path, p.name) for p in q.parts),
    ):
        hits = [quant for quant in available if match(quant)]
        if hits:
            return hits[0]
    return None


def mmproj_for(files: list[RemoteFile], quant: Quant, wanted: str | None = None) -> RemoteFile | None:
    """The projector for `quant`: `wanted` (a path or file name) if the repo has it,
    else one next to the model (or at the root), in the precision llama.cpp prefers."""
    projectors = [f for f in files if is_mmproj(f.path) and f.path.lower().endswith(".gguf")]
    if wanted:
        for file in projectors:
            if wanted in (file.path, file.name):
                return file
    if not projectors:
        return None

    def rank(file: RemoteFile) -> tuple[int, int, str]:
        folder = str(PurePosixPath(file.path).parent)
        nearby = 0 if folder == quant.folder else 1 if folder == "." else 2
        tag = quant_tag(file.path) or file.name.upper()
        precision = next(
            (i for i, name in enumerate(MMPROJ_PREFERENCE) if tag.endswith(name)), len(MMPROJ_PREFERENCE)
        )
        return nearby, precision, file.path

    return min(projectors, key=rank)


def best_fitting(available: list[Quant], budget: int | None, overhead: float) -> Quant | None:
    """The largest quantized model whose weights (plus `overhead`, a share for the KV
    cache and compute buffers) fit `budget` bytes; full precision only when nothing
    else is offered. Unknown budget: Q4_K_M as llama.cpp does, else the middle one."""
    quantized = [q for q in available if not q.is_full_precision] or available
    if budget is None:
        return find_quant(quantized, "Q4_K_M") or (quantized[len(quantized) // 2] if quantized else None)
    fitting = [q for q in quantized if q.size * (1 + overhead) <= budget]
    return fitting[-1] if fitting else None
