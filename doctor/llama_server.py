"""Is llama-server (every local GGUF model runs in one) here, and does it start? Found by
doing it: the binary the engine would run (engine/server_process.py) is started on
the doctor's tiny Llama 4 with its vision projector, as the engine starts it, and
must answer /health; then it is stopped."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerReport:
    ok: bool
    message: str


def check_llama_server() -> ServerReport:
    from doctor.tiny_llama4 import write_tiny_llama4
    from engine.llama_server import server_args
    from engine.server_process import ServerProcess, server_binary
    from engine.spec import ModelSpec
    from engine.types import EngineLoadError

    binary = server_binary()
    if binary is None:
        return ServerReport(
            False,
            "llama-server: not found (local GGUF models run in it); `make setup` builds it with the wheel",
        )
    with tempfile.TemporaryDirectory() as scratch:
        model, mmproj = write_tiny_llama4(Path(scratch))
        spec = ModelSpec(
            "doctor-tiny-llama4", "tiny Llama 4", model_path=model, mmproj_path=mmproj, n_ctx=512
        )
        process = ServerProcess(
            server_args(spec, slots=1, n_threads=1), Path(scratch) / "llama-server.log", "llama-server check"
        )
        started = time.monotonic()
        try:
            process.start()
        except EngineLoadError as exc:
            return ServerReport(False, f"llama-server: {binary} did not start: {exc}")
        finally:
            process.stop()
    seconds = time.monotonic() - started
    return ServerReport(True, f"llama-server: {binary} starts and answers /health ({seconds:.1f} s)")
