"""What this machine has free right now: RAM, and VRAM on NVIDIA GPUs. Asked by the
memory budget (models/memory.py) and by a backend that must say why a load failed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def free_ram_bytes() -> int | None:
    """What can be allocated without swapping: MemAvailable, else free pages."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def free_vram_bytes() -> int | None:
    """Free memory summed over visible NVIDIA GPUs; None when there is none to ask."""
    torch = sys.modules.get("torch")  # never import torch just to ask
    if torch is not None and torch.cuda.is_available():
        return sum(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return sum(int(line) for line in out.split()) * 2**20
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
