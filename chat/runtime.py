"""What one running server shares between the page, the API and the CLI: settings, the
model catalogue, the loaded models, the chat service (which owns the lanes: who answers
now, who waits), and a Stop switch per run."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.runs import Runs
from chat.service import ChatService
from config import Settings
from engine.spec import ModelSpec
from hub.local import add_pulled
from models.catalogue import Registry, load_registry
from models.manager import ModelManager
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
    service = ChatService(store, library, models, settings.endpoint_concurrency)
    return Runtime(settings, registry, models, default.name, store, library, service)
