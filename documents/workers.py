"""A pool of document worker processes: MuPDF reads and draws there, not in the app.

PyMuPDF is not thread-safe, so one process-wide lock used to serialise every document:
one user's 2,000-page ingest held every other user's page render. Each worker here
is a process running one operation at a time, so a long ingest takes one worker and
renders go to the others.

Across the process boundary, over one socket per worker:
- the caller sends (operation, args, key); the worker answers ("progress", fraction,
  text) as it goes and ends with ("ok", value, retiring), ("error", exception,
  retiring) for the one-line refusals, or ("failed", reason) when something else broke;
- Stop sends "cancel"; the worker sees it between pages and ends with IngestCancelled;
- a render names its document by a key: the worker keeps the last HELD_DOCUMENTS open
  (an EPUB is laid out once, not for every page), the caller prefers a worker that
  holds it and then sends None for the bytes; a worker that closed it since answers
  ("missing",) and gets the bytes.

Workers stay bounded: each gets an address-space cap (a bomb that slips past the
checks fails to allocate instead of taking the machine), and retires after
`max_tasks` operations or once its resident memory passes half that cap; a
replacement starts when one is next needed. A worker that dies mid-task is replaced
and its caller gets a one-line failure.

Why not `concurrent.futures.ProcessPoolExecutor` (bench/document_pool.py, 2 cores, the
same MuPDF operations): with one of two workers killed while 8 renders were in flight,
ours failed that one render and served the next; the stdlib pool failed 7 of 8 and
every later call (`BrokenProcessPool`) until rebuilt. Stop of an 800-page ingest after
0.3 s: ours ended in 0.005 s; a running stdlib future cannot be cancelled, and its
worker read on for 1.8 s more. Progress has no channel there either. Per-page render
time is the same (60.7 vs 61.0 ms), so nothing is paid for keeping our own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from errors import Fault, UserError

ProgressFn = Callable[[float, str], None]
CANCEL = "cancel"
POLL_S = 0.05  # how often a waiting caller looks at its cancel event
ROOT = str(Path(__file__).resolve().parent.parent)
HELD_DOCUMENTS = 2  # documents a worker keeps open between renders


class WorkerFailed(Fault):
    """The worker broke (ran out of memory, crashed); the reason is one line."""


@dataclass(frozen=True)
class PoolConfig:
    size: int  # 0: no pool, read in the caller's process
    max_tasks: int = 200
    memory_mb: int = 4096


def default_size() -> int:
    # Windows has neither fd passing nor rlimits: documents are read in the app there.
    return 0 if os.name == "nt" else min(4, os.cpu_count() or 1)


class DocumentWorkers:
    def __init__(self, config: PoolConfig):
        self.config = config
        self._idle: list[_Worker] = []
        self._alive = 0
        self.started = 0  # workers started so far (each retired one is replaced)
        self._ready = threading.Condition()
        self._closed = False

    def run(
        self,
        operation: str,
        args: tuple,
        progress: ProgressFn | None = None,
        cancel=None,
        key: str | None = None,
    ):
        """The operation's value, computed in a free worker (waiting for one when all are
        busy); raises what the operation raised, or WorkerFailed. With a `key` naming
        the document (args[0] its bytes), a worker that has it open is preferred, and
        the bytes are not sent to it again."""
        worker = self._take(key)
        try:
            status, payload, retiring = worker.call(operation, args, progress, cancel, key)
        except BaseException:
            worker.stop()
            self._give_back(None)
            raise
        self._give_back(None if retiring else worker)
        if retiring:
            worker.stop()
        if status == "error":
            raise payload
        return payload

    def close(self) -> None:
        """Stop the idle workers now, and each busy one as its task ends."""
        with self._ready:
            self._closed = True
            idle, self._idle = self._idle, []
            self._alive -= len(idle)
        for worker in idle:
            worker.stop()

    def _take(self, key: str | None = None) -> _Worker:
        with self._ready:
            while not self._idle and self._alive >= self.config.size:
                self._ready.wait()
            if self._idle:
                holding = [
                    n for n, worker in enumerate(self._idle) if key is not None and key in worker.holds
                ]
                return self._idle.pop(holding[-1] if holding else -1)
            self._alive += 1
            self.started += 1
        try:
            return _Worker.start(self.config)
        except BaseException:
            self._give_back(None)
            raise

    def _give_back(self, worker: _Worker | None) -> None:
        with self._ready:
            closed = worker is not None and self._closed
            if worker is None or closed:
                self._alive -= 1
            else:
                self._idle.append(worker)
            self._ready.notify()
        if closed:
            worker.stop()


class _Worker:
    def __init__(self, process: subprocess.Popen, conn: Connection):
        self.process, self.conn = process, conn
        self.holds: OrderedDict[str, None] = OrderedDict()  # keys it has open, as far as we know

    @classmethod
    def start(cls, config: PoolConfig) -> _Worker:
        # A fresh interpreter rather than a fork (forking a threaded server is unsafe)
        # or multiprocessing's spawn (which re-runs the caller's main script).
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "documents.workers", str(theirs.fileno())]
        command += [str(config.memory_mb), str(config.max_tasks)]
        path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
        try:
            process = subprocess.Popen(
                command,
                pass_fds=(theirs.fileno(),),
                env={**os.environ, "PYTHONPATH": path},
                stdin=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,  # refusals come back as one line on the pipe
            )
        finally:
            theirs.close()
        return cls(process, Connection(ours.detach()))

    def call(self, operation: str, args: tuple, progress: ProgressFn | None, cancel, key: str | None = None):
        """(status, payload, retiring) of one operation."""
        reuse = key is not None and key in self.holds
        self.conn.send((operation, (None, *args[1:]) if reuse else args, key))
        cancelled = False
        while True:
            if cancel is not None and not cancelled and cancel.is_set():
                self.conn.send(CANCEL)
                cancelled = True  # progress after Stop is not shown
            if not self.conn.poll(POLL_S):
                continue
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                raise WorkerFailed(self._death()) from None
            if message[0] == "progress":
                if progress is not None and not cancelled:
                    progress(message[1], message[2])
            elif message[0] == "missing":  # it closed the document since: send the bytes
                self.conn.send((operation, args, key))
            elif message[0] == "failed":
                return "error", WorkerFailed(message[1]), True
            else:
                if key is not None and message[0] == "ok":
                    self._remember(key)
                return message

    def _remember(self, key: str) -> None:
        self.holds[key] = None
        self.holds.move_to_end(key)
        while len(self.holds) > HELD_DOCUMENTS:
            self.holds.popitem(last=False)

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "the document reader stopped"
        if code < 0:
            return f"the document reader was stopped by signal {-code} (out of memory?)"
        return "the document reader stopped"

    def stop(self) -> None:
        self.conn.close()  # the worker reads end-of-file and exits
        try:
            self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- in the worker process -----------------------------------------------------------


class _PipeCancel:
    """The caller's Stop, as the operation sees it: a cancel message on the pipe."""

    def __init__(self, conn):
        self.conn, self.cancelled = conn, False

    def is_set(self) -> bool:
        while not self.cancelled and self.conn.poll():
            self.cancelled = self.conn.recv() == CANCEL
        return self.cancelled


def worker_main(conn, memory_mb: int, max_tasks: int) -> None:
    import resource

    from documents import ocr
    from documents.mupdf_pages import OPEN_DOCUMENTS, OPERATIONS

    OPEN_DOCUMENTS.size = HELD_DOCUMENTS
    ocr.FORK_PAGES = hasattr(os, "fork")  # one thread here: a page is OCR'd in a child

    # Ctrl-C on a terminal reaches the whole process group; Stop arrives on the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_mb:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = memory_mb << 20 if hard == resource.RLIM_INFINITY else min(memory_mb << 20, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    done = 0
    while done < max_tasks:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task == CANCEL:  # a Stop that came after its task ended
            continue
        operation, args, key = task
        reply = _perform(OPERATIONS[operation], operation, args, key, conn, memory_mb)
        if reply[0] == "missing":  # not a task: the bytes come next
            conn.send(reply)
            continue
        done += 1
        retiring = done == max_tasks or _resident_mb() > memory_mb // 2
        conn.send((*reply, retiring) if reply[0] != "failed" else reply)
        if retiring or reply[0] == "failed":
            return


def _perform(function, operation: str, args: tuple, key: str | None, conn, memory_mb: int) -> tuple:
    from documents.mupdf_pages import NotCached

    out_of_memory = ("failed", f"it needs more than the {memory_mb:,} MB a document reader may take")
    try:
        if operation == "read_pages":

            def progress(fraction: float, text: str) -> None:
                conn.send(("progress", fraction, text))

            return "ok", function(*args, progress=progress, cancel=_PipeCancel(conn))
        return "ok", function(*args, key=key) if key is not None else function(*args)
    except NotCached:
        return ("missing",)
    except UserError as exc:
        if _out_of_memory(exc):
            return out_of_memory
        return "error", type(exc)(str(exc))  # the message only: tracebacks stay here
    except MemoryError:
        return out_of_memory
    except Exception as exc:  # a bug: one line for the caller, not a dead pool
        return ("failed", f"the document reader failed ({type(exc).__name__})")


def _out_of_memory(exc: BaseException) -> bool:
    """MuPDF reports a failed allocation as a plain error, which reading wraps."""
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, MemoryError) or "malloc" in str(cause or "").lower()


def _resident_mb() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    except (OSError, ValueError, IndexError):
        return 0


# --- the process-wide pool ----------------------------------------------------------

_config = PoolConfig(default_size())
_shared: DocumentWorkers | None = None
_shared_lock = threading.Lock()


def configure(size: int | None = None, max_tasks: int = 200, memory_mb: int = 4096) -> None:
    """Settings for the shared pool (None: min(4, CPUs)); takes effect at the next use."""
    global _config, _shared
    config = PoolConfig(default_size() if size is None else size, max_tasks, memory_mb)
    with _shared_lock:
        old, _config = _shared, config
        if old is not None and old.config != config:
            _shared = None
    if old is not None and old.config != config:
        old.close()


def shared() -> DocumentWorkers | None:
    """The process-wide pool, started at first use; None when configured off (size 0)."""
    global _shared
    with _shared_lock:
        if _config.size <= 0:
            return None
        if _shared is None:
            _shared = DocumentWorkers(_config)
        return _shared


if __name__ == "__main__":  # started by _Worker.start: FD MEMORY_MB MAX_TASKS
    worker_main(Connection(int(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]))
