"""Keeps one model loaded at a time and switches between models on request.

The UI and the CLI both go through this, so "which model is live" has one owner."""

from __future__ import annotations

import threading
from dataclasses import replace

from engine import create_engine
from engine.config import Settings
from engine.protocol import Engine, ProgressFn
from engine.registry import ModelSpec, Registry


class ModelManager:
    def __init__(self, registry: Registry, settings: Settings):
        self.registry = registry
        self.settings = settings
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> Engine | None:
        return self._engine

    def activate(self, spec: ModelSpec, progress: ProgressFn | None = None) -> Engine:
        """The engine for `spec`, loaded; the previous model is unloaded first so two
        big models never sit in memory together."""
        with self._lock:
            engine = self._engine
            if (
                engine is not None
                and engine.name == spec.name
                and engine.capabilities.max_context == spec.n_ctx
            ):
                return engine
            if engine is not None:
                engine.unload()
                self._engine = None
            engine = create_engine(spec, self.settings)
            engine.load(progress)
            self._engine = engine
            return engine

    def activate_name(
        self, name: str, n_ctx: int | None = None, progress: ProgressFn | None = None
    ) -> Engine:
        spec = self.registry.get(name)
        if n_ctx:
            spec = replace(spec, n_ctx=n_ctx)
        return self.activate(spec, progress)

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.unload()
                self._engine = None
