"""Which models are loaded, for the chat and for comparisons.

Models stay loaded while they fit in memory together (models.memory); loading one
that does not fit unloads the least recently used others first, so the chat switches
models as before and a comparison never stacks more than memory holds. The UI and
the CLI both go through this, so "which models are live" has one owner.

With several people on one server, a model that is answering someone is pinned
(`leased`): a load that needs its memory waits until it is done instead of pulling it
out from under them, and loading one model never holds up requests on another."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator, Sequence

from config import Settings
from engine.protocol import Engine, ProgressFn
from engine.spec import ModelSpec
from models.catalogue import Registry
from models.engines import engine_for
from models.memory import MemoryGuard, Plan, model_cost


class ModelManager:
    def __init__(self, registry: Registry, settings: Settings, guard: MemoryGuard | None = None):
        self.registry = registry
        self.settings = settings
        self.guard = guard or MemoryGuard(settings)
        # name -> (spec it was loaded with, engine); least recently used first.
        self._loaded: dict[str, tuple[ModelSpec, Engine]] = {}
        self._current: str | None = None
        self._lock = threading.RLock()
        self._pins: Counter[str] = Counter()  # requests answering with each model now
        self._unpinned = threading.Condition(self._lock)
        # llama.cpp (and torch) loads are not safe to run two at once in one process: two
        # local models loading in two threads at the same moment can end the process.
        # An endpoint's connect (a round trip) takes no lock.
        self._local_load = threading.Lock()

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
        engine = self.acquire([spec], progress)[0]
        self._current = spec.name
        return engine

    def activate_name(
        self, name: str, n_ctx: int | None = None, progress: ProgressFn | None = None
    ) -> Engine:
        return self.activate(self.registry.get(name).at_context(n_ctx), progress)

    def leased_name(
        self, name: str, n_ctx: int | None = None, progress: ProgressFn | None = None
    ) -> contextlib.AbstractContextManager[list[Engine]]:
        return self.leased([self.registry.get(name).at_context(n_ctx)], progress)

    def loaded_engine(self, name: str) -> Engine | None:
        entry = self._loaded.get(name)
        return entry[1] if entry else None

    def budget(self) -> int | None:
        """Bytes models may take now, counting what the loaded ones hold."""
        with self._lock:
            return self.guard.budget(resident=self._resident_bytes(self._loaded))

    def plan(self, specs: Sequence[ModelSpec]) -> Plan:
        """How `specs` would run: together, or in groups one after another."""
        with self._lock:
            return self.guard.plan(specs, resident=self._resident_bytes(self._loaded))

    def acquire(
        self,
        specs: Sequence[ModelSpec],
        progress: ProgressFn | None = None,
        keep: Sequence[ModelSpec] = (),
        pin: bool = False,
    ) -> list[Engine]:
        """Engines for `specs`, loaded, with room kept for `keep` (the rest of a group
        answering together; the caller checked with `plan` that they fit). Others are
        unloaded, least recently used first, to make room; a pinned one is waited for.
        The loading itself happens outside the manager's lock, so requests on models
        already loaded go on meanwhile. With `pin`, the caller must `unpin` them."""
        together = list({spec.name: spec for spec in [*keep, *specs]}.values())
        engines: dict[str, Engine] = {}
        with self._lock:
            for spec in specs:
                self._drop_if_stale(spec)
            self._make_room(together, {spec.name for spec in together})
            for spec in specs:
                entry = self._loaded.pop(spec.name, None)
                engine = entry[1] if entry else engine_for(spec, self.settings)
                self._loaded[spec.name] = (spec, engine)  # counted as resident from now on; most recent
                self._pins[spec.name] += 1  # nobody unloads it while it loads
                engines[spec.name] = engine
        try:
            for spec in specs:
                if engines[spec.name].loaded:
                    continue  # a loaded model never waits for another one's load
                with self._local_load if not spec.is_remote else contextlib.nullcontext():
                    engines[spec.name].load(progress)  # no-op if loaded meanwhile; raises EngineLoadError
        except BaseException:
            with self._lock:
                for spec in specs:
                    self._unpin(spec.name)
                    failed = not engines[spec.name].loaded and not self._pins[spec.name]
                    if failed and spec.name in self._loaded:
                        del self._loaded[spec.name]  # nothing kept of a load that failed
            raise
        if not pin:
            self.unpin([spec.name for spec in specs])
        return [engines[spec.name] for spec in specs]

    @contextlib.contextmanager
    def leased(
        self, specs: Sequence[ModelSpec], progress: ProgressFn | None = None
    ) -> Iterator[list[Engine]]:
        """`acquire`d and pinned for the block: what a request answers with."""
        engines = self.acquire(specs, progress, pin=True)
        try:
            yield engines
        finally:
            self.unpin([spec.name for spec in specs])

    def unpin(self, names: Sequence[str]) -> None:
        with self._lock:
            for name in names:
                self._unpin(name)

    def _unpin(self, name: str) -> None:
        self._pins[name] -= 1
        if self._pins[name] <= 0:
            del self._pins[name]
            self._unpinned.notify_all()

    def release(self, name: str) -> None:
        """Unload `name` if it is loaded (its files are about to be deleted), once no
        request answers with it."""
        with self._lock:
            while self._pins[name]:
                self._unpinned.wait()
            if name in self._loaded:
                self._unload(name)

    def close(self) -> None:
        with self._lock:
            for name in list(self._loaded):
                self._unload(name)

    def _drop_if_stale(self, spec: ModelSpec) -> None:
        entry = self._loaded.get(spec.name)
        if entry is not None and entry[1].capabilities.n_ctx != spec.n_ctx:
            while self._pins[spec.name]:  # another context size: a different load, once it is free
                self._unpinned.wait()
            if spec.name in self._loaded:
                self._unload(spec.name)

    def _make_room(self, specs: Sequence[ModelSpec], wanted: set[str]) -> None:
        costs = [model_cost(spec, self.settings) for spec in specs]
        needed = sum(c for c in costs if c is not None)
        while True:
            others = {n: e for n, e in self._loaded.items() if n not in wanted}
            budget = self.guard.budget(resident=self._resident_bytes(self._loaded))
            if budget is not None and None not in costs and needed + self._resident_bytes(others) <= budget:
                return
            idle = [n for n in others if not self._pins[n]]
            if idle:
                self._unload(idle[0])  # the least recently used first
                continue
            if not any(model_cost(spec, self.settings) != 0 for spec, _ in others.values()):
                return  # nothing left that frees memory: the load itself finds out
            self._unpinned.wait()  # a model answering someone else: its memory comes when it is done

    def _unload(self, name: str) -> None:
        _, engine = self._loaded.pop(name)
        engine.unload()
        if self._current == name:
            self._current = None

    def _resident_bytes(self, entries: dict[str, tuple[ModelSpec, Engine]]) -> int:
        return sum(model_cost(spec, self.settings) or 0 for spec, _ in entries.values())
