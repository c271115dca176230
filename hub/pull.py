"""Pull a model from Hugging Face into <data-dir>/models: a preset by name, or any
GGUF repo as `REPO[:QUANT]` like llama.cpp's `-hf`.

A pull is planned first (which files, where they go, how many bytes are still
missing), checked against the free disk, then each file is fetched into
`<models>/.partial/<sha256>.part` (kept across a crash: the next pull resumes it),
verified against the hub's sha256 and renamed into place, so a model file on disk
is always whole. A `--hf` pull lands in `<models>/<owner>/<repo>/` with a
`pull.json` saying which files make which quant, so it loads offline later."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.gguf import split_name
from engine.spec import ModelSpec
from errors import UserError
from hub.download import PullCancelled, fetch
from hub.progress import Progress
from hub.quants import Quant, RemoteFile, best_fitting, find_quant, mmproj_for, quant_tag, quants

MANIFEST = "pull.json"
PARTIAL_DIR = ".partial"
DISK_MARGIN = 256 * 2**20  # room left on the disk after the pull
# The share of the weights kept free for KV cache and compute when a quant is picked.
FIT_OVERHEAD = 0.15
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
LOGIN_HINT = "set HF_TOKEN or run `huggingface-cli login`"


class PullError(UserError):
    """A pull that cannot go on, said in one line."""


@dataclass(frozen=True)
class Planned:
    remote: RemoteFile
    dest: Path


@dataclass(frozen=True)
class Plan:
    repo: str
    commit: str
    quant: str
    files: tuple[Planned, ...]  # the model's parts in order, then the mmproj
    model_path: Path
    mmproj_path: Path | None
    manifest_dir: Path | None = None  # set for --hf pulls

    @property
    def missing(self) -> list[Planned]:
        return [f for f in self.files if not _complete(f.dest, f.remote.size)]


def parse_hf_ref(text: str) -> tuple[str, str | None]:
    """'owner/repo' or 'owner/repo:QUANT' -> (repo, quant or None)."""
    repo, _, quant = text.strip().partition(":")
    if not REPO_ID.match(repo) or ".." in repo:
        raise PullError(f"not a Hugging Face repo: {text!r} (expected OWNER/NAME or OWNER/NAME:QUANT)")
    return repo, quant or None


def repo_dir(models_dir: Path, repo: str) -> Path:
    return models_dir.joinpath(*repo.split("/"))


# -- planning ---------------------------------------------------------------------


def plan_hf(
    repo: str,
    quant: str | None,
    models_dir: Path,
    budget: int | None = None,
    *,
    endpoint: str | None = None,
) -> Plan:
    """What `pull --hf REPO[:QUANT]` fetches. A quant already pulled is planned from
    its pull.json, without asking the network."""
    folder = repo_dir(models_dir, repo)
    local = _plan_from_manifest(repo, quant, folder)
    if local is not None and not local.missing:
        return local
    commit, files = remote_listing(repo, endpoint)
    available = quants(files)
    if not available:
        raise PullError(f"{repo} has no GGUF model files")
    chosen = _choose(repo, available, quant, budget)
    mmproj = mmproj_for(files, chosen)
    planned = [Planned(part, folder / part.name) for part in chosen.parts]
    if mmproj is not None:
        planned.append(Planned(mmproj, folder / mmproj.name))
    return Plan(
        repo,
        commit,
        chosen.tag or chosen.parts[0].name,
        tuple(planned),
        planned[0].dest,
        planned[-1].dest if mmproj is not None else None,
        manifest_dir=folder,
    )


def _choose(repo: str, available: list[Quant], quant: str | None, budget: int | None) -> Quant:
    tags = ", ".join(q.tag or q.parts[0].name for q in available)
    if quant:
        chosen = find_quant(available, quant)
        if chosen is None:
            raise PullError(f"{repo} has no {quant!r} quant; it has: {tags}")
        return chosen
    chosen = best_fitting(available, budget, FIT_OVERHEAD)
    if chosen is None:
        smallest = available[0]
        raise PullError(
            f"no quant of {repo} fits in {budget / 1e9:.1f} GB of memory (the smallest, "
            f"{smallest.tag}, is {smallest.size / 1e9:.1f} GB); name one with {repo}:QUANT "
            "or raise --memory-budget-gb"
        )
    return chosen


def plan_preset(spec: ModelSpec, *, endpoint: str | None = None) -> Plan:
    """What `pull NAME` fetches for a preset: its files under the preset's own names."""
    if not spec.hf_repo or not spec.hf_file:
        raise PullError(f"{spec.name} has no Hugging Face source; pull it with --hf REPO[:QUANT]")
    mmproj_path = spec.mmproj_path
    if not spec.missing_files():
        return Plan(spec.hf_repo, "", quant_tag(spec.hf_file), (), spec.model_path, mmproj_path)
    commit, files = remote_listing(spec.hf_repo, endpoint)
    available = quants(files)
    wanted = spec.hf_file if find_quant(available, spec.hf_file) else quant_tag(spec.hf_file)
    chosen = _choose(spec.hf_repo, available, wanted, None)
    # The preset names the unsplit file; a split one is saved as llama.cpp names parts.
    local = spec.model_path.with_name(_unsplit_name(spec.model_path.name))
    count = len(chosen.parts)
    planned = [
        Planned(part, local if count == 1 else split_name(local, i, count))
        for i, part in enumerate(chosen.parts, 1)
    ]
    if mmproj_path is not None:
        mmproj = mmproj_for(files, chosen, spec.hf_mmproj)
        if mmproj is None:
            raise PullError(f"{spec.hf_repo} has no mmproj file for {spec.name}")
        planned.append(Planned(mmproj, mmproj_path))
    return Plan(spec.hf_repo, commit, chosen.tag, tuple(planned), planned[0].dest, mmproj_path)


def _unsplit_name(name: str) -> str:
    return re.sub(r"-\d{5}-of-\d{5}\.gguf$", ".gguf", name)


def remote_listing(repo: str, endpoint: str | None = None) -> tuple[str, list[RemoteFile]]:
    """The repo's commit and every file with its size and LFS sha256 (one API call)."""
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=endpoint).model_info(repo, files_metadata=True)
    except Exception as exc:
        raise hub_error(exc, repo, endpoint) from None
    files = [
        RemoteFile(s.rfilename, s.lfs.size if s.lfs else (s.size or 0), s.lfs.sha256 if s.lfs else None)
        for s in info.siblings or []
    ]
    return info.sha, files


def _plan_from_manifest(repo: str, quant: str | None, folder: Path) -> Plan | None:
    manifest = read_manifest(folder)
    if not manifest or manifest.get("repo") != repo:
        return None
    entries = manifest.get("quants", {})
    if quant is None:
        name = manifest.get("last")
    else:
        wanted = quant.upper().removeprefix("UD-")
        name = next((n for n in entries if n.upper().removeprefix("UD-") == wanted), None)
    entry = entries.get(name) if name else None
    if entry is None:
        return None
    sizes = manifest.get("files", {})
    try:
        names = [*entry["parts"], *([entry["mmproj"]] if entry.get("mmproj") else [])]
        if any(Path(n).name != n for n in names):
            return None  # only file names in this folder, never a path out of it
        planned = tuple(
            Planned(RemoteFile(n, int(sizes[n]["size"]), sizes[n].get("sha256")), folder / n) for n in names
        )
    except (KeyError, TypeError, ValueError):
        return None  # a hand-edited manifest: plan from the hub instead
    mmproj = folder / entry["mmproj"] if entry.get("mmproj") else None
    return Plan(repo, manifest.get("commit", ""), name, planned, planned[0].dest, mmproj, folder)


def read_manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _complete(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


# -- running ----------------------------------------------------------------------


def run(
    plan: Plan,
    models_dir: Path,
    report: Callable[[float, str], None] = lambda fraction, line: None,
    cancel: threading.Event | None = None,
    *,
    endpoint: str | None = None,
) -> Plan:
    """Fetch what the plan still misses, verified, into place; writes pull.json."""
    missing = plan.missing
    partial_dir = models_dir / PARTIAL_DIR
    partials = {f.dest: partial_dir / f"{f.remote.sha256 or f.remote.name}.part" for f in missing}
    on_disk = sum(_size(partials[f.dest]) for f in missing)
    check_disk(models_dir, sum(f.remote.size for f in missing) - on_disk)
    progress = Progress(sum(f.remote.size for f in missing), on_disk, report)
    for planned in missing:
        progress.current = planned.remote.name
        try:
            partial = fetch(
                plan.repo,
                planned.remote,
                plan.commit,
                partials[planned.dest],
                on_bytes=progress.add,
                cancel=cancel,
                endpoint=endpoint,
            )
        except (UserError, PullCancelled):  # already one line (corrupt, busy) or a stop
            raise
        except Exception as exc:
            raise hub_error(exc, plan.repo, endpoint) from None
        planned.dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, planned.dest)  # same disk: the model file appears whole or not at all
    report(1.0, progress.line())
    if plan.manifest_dir is not None:
        write_manifest(plan)
    return plan


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def check_disk(models_dir: Path, needed: int) -> None:
    existing = models_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if needed + DISK_MARGIN > free:
        raise PullError(
            f"not enough disk space in {models_dir}: the pull needs {needed / 1e9:.2f} GB more, "
            f"{free / 1e9:.2f} GB is free"
        )


def write_manifest(plan: Plan) -> None:
    folder = plan.manifest_dir
    manifest = read_manifest(folder) or {"repo": plan.repo, "quants": {}, "files": {}}
    model_files = [f for f in plan.files if f.dest != plan.mmproj_path]
    manifest["commit"] = plan.commit or manifest.get("commit", "")
    manifest["last"] = plan.quant
    manifest["quants"][plan.quant] = {
        "parts": [f.dest.name for f in model_files],
        "mmproj": plan.mmproj_path.name if plan.mmproj_path else None,
    }
    for f in plan.files:
        manifest["files"][f.dest.name] = {
            "size": f.remote.size,
            "sha256": f.remote.sha256,
            "path": f.remote.path,
        }
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, folder / MANIFEST)


def pulled_models(models_dir: Path) -> list[tuple[str, str, Path, Path | None]]:
    """(repo, quant, model, mmproj) of every --hf pull on disk."""
    found = []
    for manifest_file in sorted(models_dir.glob(f"*/*/{MANIFEST}")):
        manifest = read_manifest(manifest_file.parent) or {}
        for quant, entry in manifest.get("quants", {}).items():
            try:
                model = manifest_file.parent / entry["parts"][0]
                mmproj = manifest_file.parent / entry["mmproj"] if entry.get("mmproj") else None
            except (KeyError, TypeError, IndexError):
                continue
            if model.is_file():
                found.append((manifest.get("repo", ""), quant, model, mmproj))
    return found


# -- errors -----------------------------------------------------------------------


def hub_error(exc: Exception, repo: str, endpoint: str | None) -> PullError:
    """One line for whatever huggingface_hub or the network raised."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = endpoint or constants.ENDPOINT
    if isinstance(exc, PullError):
        return exc
    if isinstance(exc, OfflineModeIsEnabled):
        return PullError(f"{repo} is not on disk yet and HF_HUB_OFFLINE is set; unset it to download")
    if isinstance(exc, GatedRepoError):
        return PullError(f"{repo} is gated: accept its terms at {where}/{repo}, then {LOGIN_HINT}")
    if isinstance(exc, RepositoryNotFoundError):
        return PullError(
            f"{repo} was not found at {where}, or it is private; for a private repo {LOGIN_HINT}"
        )
    if isinstance(exc, RevisionNotFoundError | RemoteEntryNotFoundError):
        return PullError(f"{repo} changed while pulling ({_first_line(exc)}); run the pull again")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        if status in (401, 403):
            return PullError(f"{where} refused access to {repo} (HTTP {status}); {LOGIN_HINT}")
        return PullError(f"{where} answered HTTP {status} for {repo}; try again later")
    if isinstance(exc, httpx2.TransportError | ConnectionError | TimeoutError):
        return PullError(f"cannot reach {where} ({_first_line(exc)}); check the network or HF_ENDPOINT")
    return PullError(f"pulling {repo} failed: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
