"""What a long measurement refuses before it does any work, each as one line: a model
that cannot run here (a file missing, an endpoint without its key or not answering),
an endpoint where fidelity needs log-probs over a prompt, and, for fidelity, models
that would not read the same tokens. Only headers, tokenizer files and one short
`/v1/models` listing per server are read: nothing loads, nothing is scored or saved,
so a refusal comes in seconds rather than after the reference has been scored."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.types import EngineInputError
from evals.fidelity import FidelityError
from evals.fidelity_images import check_comparable

# The files that make a transformers checkpoint's tokenizer (the first one present
# names it; two checkpoints with equal bytes there read text alike).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def check_runnable(specs: dict, checker=None) -> None:
    """Refuse a model whose files are missing, or a remote one that cannot answer now
    (no key, no endpoint, server down, key refused, model not served)."""
    from models.availability import Checker

    for name, spec in specs.items():
        missing = spec.missing()
        if missing and not spec.is_remote:
            raise EngineInputError(f"{name} cannot run here: file not found: {missing[0]}")
    remote = [spec for spec in specs.values() if spec.is_remote]
    if not remote:
        return
    found = (checker or Checker()).check_all(remote)
    for name, spec in specs.items():
        state = found.get(spec.name)
        if state is not None and not state.ready:
            raise EngineInputError(f"{name} cannot answer now: {state.why}")


def check_fidelity(specs: dict, with_images: bool) -> None:
    """Everything fidelity can know before loading: each model scores prompts locally
    and is here, and all of them read the same tokens (and, with images, see the same
    tiles)."""
    for name, spec in specs.items():
        if spec.is_remote:
            raise FidelityError(
                f"{name} cannot give next-token log-probs over a prompt (an endpoint): "
                "fidelity needs llama.cpp or transformers models"
            )
    check_runnable(specs)
    check_comparable(specs, with_images)
    _check_checkpoint_tokenizers(specs)


def _check_checkpoint_tokenizers(specs: dict) -> None:
    """Transformers checkpoints compared by their tokenizer file's bytes."""
    named = [(name, _tokenizer_hash(spec.model_path)) for name, spec in specs.items()]
    named = [(name, digest) for name, digest in named if digest]
    for name, digest in named[1:]:
        if digest != named[0][1]:
            raise FidelityError(
                f"{name} and {named[0][0]} have different tokenizers ({digest[0]} differs); "
                "fidelity compares models that read the same tokens (quants of one model)"
            )


def _tokenizer_hash(path: Path | None) -> tuple[str, str] | None:
    """(file name, sha256) of a checkpoint folder's tokenizer file, None for a GGUF."""
    if path is None or not Path(path).is_dir():
        return None
    for file_name in TOKENIZER_FILES:
        candidate = Path(path) / file_name
        if candidate.is_file():
            return file_name, hashlib.sha256(_canonical(candidate)).hexdigest()
    return None


def _canonical(path: Path) -> bytes:
    """A tokenizer.json's content with its keys sorted (the same tokenizer saved by
    another version of a library reads the same); other files as they are."""
    data = path.read_bytes()
    if path.suffix != ".json":
        return data
    try:
        return json.dumps(json.loads(data), sort_keys=True).encode()
    except ValueError:
        raise EngineInputError(f"{path} is not a readable tokenizer file") from None
