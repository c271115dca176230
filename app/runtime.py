"""What one running server shares between the page and the API: settings, the model
registry, the loaded models, the chat service, and a Stop switch per run."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from chat.runs import Runs
from chat.service import ChatService
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
    service: ChatService
    runs: Runs = field(default_factory=Runs)
    # One model answers one request at a time, whether it came from the page or the API.
    generation: threading.Lock = field(default_factory=threading.Lock)

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
    models = ModelManager(registry, settings)
    return Runtime(settings, registry, models, default.name, store, library, ChatService(store, library))
