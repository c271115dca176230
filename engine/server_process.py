"""llama-server as a managed child process: one per loaded local model.

The binary is built from the same patched llama.cpp tree as the llama-cpp-python
wheel (patches/llama-cpp-python/0004-build-llama-server.patch) and installed next to
its libraries, so it carries our Llama 4 image fixes and the same CUDA/Metal flags.

The child listens on a free loopback port and takes requests only with a random key
(passed in its environment, not on its command line, where `ps` would show it). It
runs in its own process group, is stopped on unload and when this process exits
(atexit; on Linux also PR_SET_PDEATHSIG, set from one long-lived spawner thread since
it fires when the thread that started the child ends), and writes its log into
the data directory. A failed start becomes one line: out of memory says how much was
needed against how much is free; anything else quotes the log's last error."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.types import EngineLoadError

HEALTH_POLL_S = 0.1
STOP_GRACE_S = 3.0  # after SIGTERM, before SIGKILL
LOAD_TIMEOUT_S = 1800.0  # a 200 GB model from a slow disk
LOG_TAIL_BYTES = 64 * 1024
BIND_RETRIES = 3  # another program may take the port between our probe and its bind
# Log lines that mark how far the load is (llama.cpp's own messages), as progress.
LOAD_STAGES = (
    ("llama_model_loader:", 0.15, "reading the model file"),
    ("load_tensors:", 0.35, "loading the weights"),
    ("llama_context:", 0.65, "allocating the context"),
    ("clip_model_loader:", 0.8, "loading the vision projector"),
    ("server is listening", 0.95, "starting the server"),
)
OOM_MARKERS = ("failed to allocate", "unable to allocate", "out of memory", "cudamalloc failed", "bad_alloc")
BIND_MARKERS = ("couldn't bind", "address already in use")
LOG_PREFIX = re.compile(r"^\d+\.\d+\.\d+\.\d+ [DIWE] ")  # llama-server's "0.00.010.414 E "

_live: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


def server_binary() -> Path | None:
    """llama-server as the patched wheel installs it (llama_cpp/lib), found without
    importing llama_cpp (that loads its libraries); L4P_LLAMA_SERVER overrides."""
    override = os.environ.get("L4P_LLAMA_SERVER")
    if override:
        return Path(override) if Path(override).is_file() else None
    spec = importlib.util.find_spec("llama_cpp")
    for root in (spec.submodule_search_locations or []) if spec else []:
        name = "llama-server.exe" if os.name == "nt" else "llama-server"
        candidate = Path(root) / "lib" / name
        if candidate.is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """One llama-server child: start (waiting until it serves), alive, stop.

    `args` are llama-server's flags for the model (everything but host, port and key);
    `memory_needed` is the estimate quoted when the load runs out of memory."""

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path,
        label: str,
        memory_needed: Callable[[], int | None] = lambda: None,
        binary: Path | None = None,
        address_space: int | None = None,
    ):
        self.args = list(args)
        self.address_space = address_space  # bytes the child may map (None: no cap)
        self.log_path = log_path
        self.label = label
        self.memory_needed = memory_needed
        self.binary = binary
        self.key = secrets.token_urlsafe(24)
        self.port = 0
        self.starts = 0  # how many times a child was started (restarts are starts - 1)
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def alive(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def healthy(self) -> bool:
        """Alive and answering /health (a child being torn down does not)."""
        return self.alive() and _healthy(self.url)

    def start(self, progress: Callable[[float, str], None] | None = None) -> None:
        """Start the child and wait until /health answers 200. Raises EngineLoadError
        (one line) when it cannot: no binary, out of memory, a bad file."""
        report = progress or (lambda fraction, what: None)
        with self._lock:
            if self.alive():
                return
            binary = self.binary or server_binary()
            if binary is None:
                raise EngineLoadError(
                    "llama-server is not installed next to llama-cpp-python; run `make setup` "
                    "(it builds both from the same sources) or set L4P_LLAMA_SERVER"
                )
            for attempt in range(BIND_RETRIES):
                # A restart keeps the port (and key): clients need not be told.
                self.port = self.port if attempt == 0 and self.port else free_port()
                self._spawn(binary)
                try:
                    self._wait_ready(report)
                    return
                except _PortTaken:
                    if attempt == BIND_RETRIES - 1:
                        raise EngineLoadError(f"llama-server for {self.label} found no free port") from None

    def _spawn(self, binary: Path) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists() and self.starts == 0:  # keep the last run's log for a look
            self.log_path.replace(self.log_path.with_suffix(".previous.log"))
        argv = [str(binary), *self.args, "--host", "127.0.0.1", "--port", str(self.port)]
        env = {**os.environ, "LLAMA_API_KEY": self.key}
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            self._child = _spawner().run(
                lambda: subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own process group: stop() reaches all of it
                    preexec_fn=self._in_child,
                )
            )
        self._log_start = self.log_path.stat().st_size
        self.starts += 1
        if not _live:  # the first child: stop them all when this process exits
            atexit.unregister(_stop_all)
            atexit.register(_stop_all)
        _live.add(self)

    def _in_child(self) -> None:
        """Before exec, in the child. With an address-space cap, an allocation past it
        fails inside llama.cpp (reported, one line) instead of the kernel's OOM killer
        choosing some process. On Linux the kernel kills the child when the thread that
        started it ends: that is the spawner thread, which ends only with this process,
        so a playground stopped by SIGTERM or kill -9 (no atexit) leaves no child."""
        if self.address_space:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (self.address_space, self.address_space))
        if sys.platform.startswith("linux"):
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def _wait_ready(self, report: Callable[[float, str], None]) -> None:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        shown = 0.0
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                raise self._failure()
            if _healthy(self.url):
                report(1.0, f"{self.label} ready")
                return
            for marker, fraction, what in LOAD_STAGES:
                if fraction > shown and marker in self._log_since_start():
                    shown = fraction
                    report(fraction, what)
            time.sleep(HEALTH_POLL_S)
        self.stop()
        raise EngineLoadError(f"llama-server did not load {self.label} within {LOAD_TIMEOUT_S:.0f} s")

    def _log_since_start(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(self._log_start, self.log_path.stat().st_size - LOG_TAIL_BYTES))
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _failure(self) -> Exception:
        """The one line for a child that exited while loading."""
        text = self._log_since_start()
        lowered = text.lower()
        if any(marker in lowered for marker in BIND_MARKERS):
            return _PortTaken()
        killed = self._child.returncode == -signal.SIGKILL  # the kernel's OOM killer, most likely
        if killed or any(marker in lowered for marker in OOM_MARKERS):
            return EngineLoadError(out_of_memory_line(self.label, self.memory_needed()))
        lines = [LOG_PREFIX.sub("", line.strip()) for line in text.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
        # The first error is the cause ("tensor ... data is not within the file bounds");
        # the ones after it only say that loading failed.
        detail = (errors[:1] or lines[-1:] or [f"exit status {self._child.returncode}"])[0][:300]
        return EngineLoadError(f"llama-server could not load {self.label}: {detail} (log: {self.log_path})")

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after a grace period; waits for it."""
        child, self._child = self._child, None
        if child is None or child.poll() is not None:
            return
        _signal_group(child, signal.SIGTERM)
        try:
            child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would (for tests and the crash path)."""
        if self._child is not None and self._child.poll() is None:
            _signal_group(self._child, signal.SIGKILL)
            self._child.wait()


class _PortTaken(Exception):
    pass


def out_of_memory_line(label: str, needed: int | None) -> str:
    from engine.machine import free_ram_bytes, free_vram_bytes

    free_ram, free_vram = free_ram_bytes(), free_vram_bytes()
    have = []
    if free_ram is not None:
        have.append(f"{free_ram / 1e9:.1f} GB of RAM")
    if free_vram is not None:
        have.append(f"{free_vram / 1e9:.1f} GB of GPU memory")
    need = f"needs about {needed / 1e9:.1f} GB" if needed else "needs more memory"
    free = " and ".join(have) or "an unknown amount"
    return (
        f"not enough memory to load {label}: it {need} and {free} is free; "
        "use a smaller quant, a shorter context (-c) or fewer slots"
    )


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.name == "nt":
            child.kill()
        else:
            os.killpg(child.pid, signum)


class _Spawner:
    """One long-lived thread that starts every child (see ServerProcess._in_child)."""

    def __init__(self):
        self._jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, name="llama-server-spawner", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.append(("ok", job()))
            except BaseException as exc:  # handed back to the caller's thread
                done.append(("error", exc))

    def run(self, job):
        done: list = []
        self._jobs.put((job, done))
        while not done:
            time.sleep(0.005)
        kind, value = done[0]
        if kind == "error":
            raise value
        return value


_spawner_instance: _Spawner | None = None
_spawner_lock = threading.Lock()


def _spawner() -> _Spawner:
    global _spawner_instance
    with _spawner_lock:
        if _spawner_instance is None:
            _spawner_instance = _Spawner()
        return _spawner_instance


def _stop_all() -> None:
    for process in list(_live):
        process.stop()
