"""What one running server shares between the page and the API: settings, the model
registry, the loaded models, the chat service, a lane per model (who answers now, who
waits), and a Stop switch per run."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.lanes import LaneLimit, Lanes
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
    # Requests from the page and the API alike wait in their model's lane.
    lanes: Lanes = field(init=False)

    def __post_init__(self) -> None:
        self.lanes = Lanes(self.lane_limit, self._share_cpu)

    def spec(self, name: str) -> ModelSpec:
        return self.registry.get(name)

    def lane_limit(self, name: str) -> LaneLimit:
        spec = self.registry.specs.get(name)
        if spec is not None and spec.is_remote:
            return LaneLimit(spec.max_concurrency or self.settings.endpoint_concurrency, local=False)
        if spec is not None and spec.backend == "llama.cpp" and self.settings.local_engine == "server":
            return LaneLimit(self.settings.local_slots, local=True)  # llama-server's slots
        return LaneLimit(1, local=True)

    def share_cpu(self) -> None:
        """Again, once a model that just took its lane is loaded."""
        self._share_cpu(self.lanes.busy_local())

    def _share_cpu(self, busy: list[str]) -> None:
        """Local models answering at the same time split the CPU threads evenly."""
        for name in busy:
            engine = self.models.loaded_engine(name)
            if engine is not None and hasattr(engine, "share_cpu"):
                engine.share_cpu(len(busy))


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
