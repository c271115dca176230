"""Which models are loaded, for the chat and for comparisons.

Models stay loaded while they fit in memory together (engine.memory); loading one
that does not fit unloads the least recently used others first, so the chat switches
models as before and a comparison never stacks more than memory holds. The UI and
the CLI both go through this, so "which models are live" has one owner."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from engine import create_engine
from engine.config import Settings
from engine.memory import MemoryGuard, Plan, model_cost
from engine.protocol import Engine, ProgressFn
from engine.registry import ModelSpec, Registry


class ModelManager:
    def __init__(self, registry: Registry, settings: Settings, guard: MemoryGuard | None = None):
        self.registry = registry
        self.settings = settings
        self.guard = guard or MemoryGuard(settings)
        # name -> (spec it was loaded with, engine); least recently used first.
        self._loaded: dict[str, tuple[ModelSpec, Engine]] = {}
        self._current: str | None = None
        self._lock = threading.RLock()

    @property
    def current(self) -> Engine | None:
        """The chat's model: the one `activate` loaded last."""
        entry = self._loaded.get(self._current or "")
        return entry[1] if entry else None

    @property
    def loaded_names(self) -> list[str]:
        return list(self._loaded)

    def activate(self, spec: ModelSpec, progress: ProgressFn | None = None) -> Engine:
        """The engine for `spec`, loaded; models that would not fit beside it are
        unloaded first, so two big models never sit in memory together."""
        with self._lock:
            engine = self.acquire([spec], progress)[0]
            self._current = spec.name
            return engine

    def activate_name(
        self, name: str, n_ctx: int | None = None, progress: ProgressFn | None = None
    ) -> Engine:
        spec = self.registry.get(name)
        if n_ctx:
            spec = replace(spec, n_ctx=n_ctx)
        return self.activate(spec, progress)

    def plan(self, specs: Sequence[ModelSpec]) -> Plan:
        """How `specs` would run: together, or in groups one after another."""
        with self._lock:
            return self.guard.plan(specs, resident=self._resident_bytes(self._loaded))

    def acquire(
        self,
        specs: Sequence[ModelSpec],
        progress: ProgressFn | None = None,
        keep: Sequence[ModelSpec] = (),
    ) -> list[Engine]:
        """Engines for `specs`, loaded, with room kept for `keep` (the rest of a group
        answering together; the caller checked with `plan` that they fit). Others are
        unloaded, least recently used first, to make room. A remote model connects
        without holding the lock, so a slow server never delays local models."""
        together = list({spec.name: spec for spec in [*keep, *specs]}.values())
        engines: dict[str, Engine] = {}
        with self._lock:
            for spec in specs:
                self._drop_if_stale(spec)
            self._make_room(together, {spec.name for spec in together})
            for spec in specs:
                if not spec.is_remote:
                    engines[spec.name] = self._load(spec, progress)
        for spec in specs:
            if spec.is_remote:
                engines[spec.name] = self._connect(spec, progress)
        return [engines[spec.name] for spec in specs]

    def release(self, name: str) -> None:
        """Unload `name` if it is loaded (its files are about to be deleted)."""
        with self._lock:
            if name in self._loaded:
                self._unload(name)

    def close(self) -> None:
        with self._lock:
            for name in list(self._loaded):
                self._unload(name)

    def _load(self, spec: ModelSpec, progress: ProgressFn | None) -> Engine:
        entry = self._loaded.pop(spec.name, None)
        engine = entry[1] if entry else create_engine(spec, self.settings)
        engine.load(progress)  # a no-op when loaded; raises EngineLoadError (nothing kept)
        self._loaded[spec.name] = (spec, engine)  # now the most recently used
        return engine

    def _connect(self, spec: ModelSpec, progress: ProgressFn | None) -> Engine:
        with self._lock:
            entry = self._loaded.pop(spec.name, None)
        engine = entry[1] if entry else create_engine(spec, self.settings)
        engine.load(progress)  # the network round trip, outside the lock
        with self._lock:
            self._loaded[spec.name] = (spec, engine)
        return engine

    def _drop_if_stale(self, spec: ModelSpec) -> None:
        entry = self._loaded.get(spec.name)
        if entry is not None and entry[1].capabilities.max_context != spec.n_ctx:
            self._unload(spec.name)  # another context size: a different load

    def _make_room(self, specs: Sequence[ModelSpec], wanted: set[str]) -> None:
        budget = self.guard.budget(resident=self._resident_bytes(self._loaded))
        costs = [model_cost(spec) for spec in specs]
        needed = sum(c for c in costs if c is not None)
        for name in [n for n in self._loaded if n not in wanted]:
            others = {n: e for n, e in self._loaded.items() if n not in wanted}
            if budget is not None and None not in costs and needed + self._resident_bytes(others) <= budget:
                return
            self._unload(name)

    def _unload(self, name: str) -> None:
        _, engine = self._loaded.pop(name)
        engine.unload()
        if self._current == name:
            self._current = None

    @staticmethod
    def _resident_bytes(entries: dict[str, tuple[ModelSpec, Engine]]) -> int:
        return sum(model_cost(spec) or 0 for spec, _ in entries.values())
