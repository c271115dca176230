"""What every backend shares: its spec, name, label and what it can take; loading on
first use. The three backends (llama.cpp, transformers, OpenAI-compatible servers)
build on this and implement the rest of the Engine protocol (engine/protocol.py)."""

from __future__ import annotations

from engine.images import IMAGE_MIME_TYPES
from engine.protocol import ProgressFn
from engine.spec import ModelSpec
from engine.types import Capabilities


class BaseEngine:
    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.name = spec.name
        self.label = spec.label
        self.capabilities = Capabilities(
            vision=spec.vision,
            n_ctx=spec.n_ctx,
            accepted_mime=("text/plain", *IMAGE_MIME_TYPES) if spec.vision else ("text/plain",),
        )

    @property
    def loaded(self) -> bool:
        raise NotImplementedError

    def load(self, progress: ProgressFn | None = None) -> None:
        raise NotImplementedError

    def _require_loaded(self) -> None:
        """Counting or streaming on an unloaded engine loads it first."""
        if not self.loaded:
            self.load()
