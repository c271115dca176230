"""Models pulled onto this machine: listed next to the presets, and deleted."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from engine.gguf import gguf_parts
from engine.spec import ModelSpec
from errors import UserError
from hub.pull import MANIFEST, PullError, pulled_models, read_manifest
from models.catalogue import Registry, user_model


def pulled_specs(models_dir: Path) -> list[ModelSpec]:
    """A spec per `--hf` pull on disk, named REPO:QUANT (what `--hf` takes)."""
    specs = []
    for repo, quant, model, mmproj in pulled_models(models_dir):
        try:
            spec = user_model(model, mmproj if mmproj is not None and mmproj.is_file() else None)
        except UserError:
            continue  # a part deleted by hand: `models` shows the preset way to get it back
        specs.append(replace(spec, name=f"{repo}:{quant}", label=f"{repo} {quant} (pulled)", hf_repo=repo))
    return specs


def add_pulled(registry: Registry, models_dir: Path) -> Registry:
    for spec in pulled_specs(models_dir):
        if spec.name not in registry.specs:
            registry.add(spec)
    return registry


def deletable(spec: ModelSpec, models_dir: Path) -> bool:
    """Whether Delete applies: a GGUF on disk that was pulled into the models dir (the
    embedded model, an --extra-model or an endpoint has no files of ours to delete)."""
    if spec.backend != "llama.cpp" or spec.model_path is None or not spec.model_path.is_file():
        return False
    root = models_dir.resolve()
    return all(p.resolve().is_relative_to(root) for p in gguf_parts(spec.model_path))


def delete_model(spec: ModelSpec, registry: Registry, models_dir: Path) -> list[Path]:
    """Delete a model's files from the models dir (every part of a split one). Its
    mmproj stays while another model on disk uses it. Returns what was deleted."""
    root = models_dir.resolve()
    if spec.backend != "llama.cpp" or spec.model_path is None:
        raise PullError(f"{spec.label} has no files here to delete")
    parts = gguf_parts(spec.model_path)
    if not all(p.resolve().is_relative_to(root) for p in parts):
        raise PullError(f"{spec.label} is not in {models_dir}; only pulled models are deleted here")
    shared = {
        other.mmproj_path
        for other in registry.specs.values()
        if other.name != spec.name and other.available and other.mmproj_path is not None
    }
    doomed = [p for p in parts if p.is_file()]
    mmproj = spec.mmproj_path
    if (
        mmproj is not None
        and mmproj.is_file()
        and mmproj not in shared
        and mmproj.resolve().is_relative_to(root)
    ):
        doomed.append(mmproj)
    for path in doomed:
        path.unlink()
    _forget(spec, parts[0].parent)
    return doomed


def _forget(spec: ModelSpec, folder: Path) -> None:
    """Drop a deleted --hf quant from its pull.json (the file goes with its last quant)."""
    manifest = read_manifest(folder)
    if not manifest:
        return
    quants = manifest.get("quants", {})
    for quant, entry in list(quants.items()):
        if entry.get("parts", [None])[0] == spec.model_path.name:
            del quants[quant]
    if not quants:
        (folder / MANIFEST).unlink(missing_ok=True)
        return
    manifest["last"] = next(iter(quants))
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, folder / MANIFEST)
