"""What one running server shares between browser sessions: settings, the model
registry, the loaded model, and a Stop switch per browser session."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from engine.config import Settings
from engine.manager import ModelManager
from engine.registry import ModelSpec, Registry, load_registry
from hub.local import add_pulled
from sessions import Store
from sessions.library import DocumentLibrary


@dataclass
class Runtime:
    settings: Settings
    registry: Registry
    models: ModelManager
    default_model: str
    store: Store
    library: DocumentLibrary
    _cancels: dict[str, threading.Event] = field(default_factory=dict)

    def new_cancel(self, session: str) -> threading.Event:
        event = threading.Event()
        self._cancels[session] = event
        return event

    def cancel(self, session: str) -> bool:
        event = self._cancels.get(session)
        if event is None:
            return False
        event.set()
        return True

    def spec(self, name: str) -> ModelSpec:
        return self.registry.get(name)


def build_runtime(settings: Settings) -> Runtime:
    registry = add_pulled(load_registry(settings), settings.resolved_models_dir)
    default = registry.resolve(settings)
    registry.add(default)  # carries the --ctx override under its own name
    store = Store(settings.data_dir)
    library = DocumentLibrary(
        store,
        dpi=settings.page_dpi,
        max_side_px=settings.page_max_side_px,
        max_pixels=settings.max_image_pixels,
    )
    return Runtime(settings, registry, ModelManager(registry, settings), default.name, store, library)
