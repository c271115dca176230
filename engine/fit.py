"""What fits on this machine: RAM, VRAM and a GGUF's own header decide whether a
model fits, the largest context that fits, and how many layers go to the GPU."""

from __future__ import annotations

from engine.config import Settings
from engine.memory import free_ram_bytes, free_vram_bytes
from engine.registry import GB


def memory_budget(settings: Settings) -> int | None:
    """Bytes models may take: --memory-budget-gb, else free RAM + free VRAM."""
    if settings.memory_budget_gb is not None:
        return int(settings.memory_budget_gb * GB)
    ram = free_ram_bytes()
    return None if ram is None else ram + (free_vram_bytes() or 0)
