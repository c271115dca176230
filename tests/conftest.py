"""Shared fixtures. Tests never touch user data: every run gets its own data dir,
and subprocesses inherit it through L4P_DATA_DIR."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
# /respond settings for short, deterministic answers from the embedded model.
QUICK_RESPOND = {"model_name": "smollm2-135m", "page_range": "", "temperature": 0.0, "max_tokens": 16}


def pytest_configure(config):
    os.environ["L4P_DATA_DIR"] = tempfile.mkdtemp(prefix="l4p-test-data-")
    os.environ.pop("L4P_MODEL", None)
    # One llama.cpp thread per model: its threads wait for each other at every step, so
    # on cores that the browser, the test process and CI's other jobs share, two threads
    # on two cores decoded SmolLM2 at 2 tokens/s where one thread gave 22 (measured).
    # Tests that are about threads pass -t themselves.
    os.environ.setdefault("L4P_N_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """`gpu`-marked tests run where torch sees CUDA and skip cleanly elsewhere."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch

    if not torch.cuda.is_available():
        for item in gpu_tests:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


def chats_stored(data_dir) -> int:
    """Chats in a data dir's store, read without the app (0 before it ever wrote)."""
    import sqlite3

    db = data_dir / "playground.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM sessions").fetchone()[0]


def visible_text(shown: str) -> str:
    """What a reader sees of an answer the page renders (sanitized HTML, app/safe_markdown.py)."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", shown)).strip()


def png_bytes(width: int = 56, height: int = 56, color: str = "red") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def write_png(tmp_path):
    def write(name: str, width: int = 56, height: int = 56, color: str = "red") -> Path:
        path = tmp_path / name
        path.write_bytes(png_bytes(width, height, color))
        return path

    return write


@pytest.fixture
def library(tmp_path):
    """A document library on a fresh store of its own."""
    from sessions import Store
    from sessions.library import DocumentLibrary

    with Store(tmp_path / "data") as store:
        yield DocumentLibrary(store)


@pytest.fixture(scope="session")
def tiny_llama4(tmp_path_factory) -> tuple[Path, Path]:
    from tests.fixtures.tiny_llama4 import write_tiny_llama4

    return write_tiny_llama4(tmp_path_factory.mktemp("tiny-llama4"))


@pytest.fixture(scope="session")
def tiny_llama4_hf(tmp_path_factory) -> Path:
    """A tiny random Llama 4 transformers checkpoint directory (text + vision)."""
    from tests.fixtures.tiny_llama4_hf import write_tiny_llama4_hf

    return write_tiny_llama4_hf(tmp_path_factory.mktemp("tiny-llama4-hf"))


@pytest.fixture(scope="session")
def tiny_llama4_seed1(tmp_path_factory) -> tuple[Path, Path]:
    """The same tiny Llama 4 with other random weights (same file names, other folder)."""
    from tests.fixtures.tiny_llama4 import write_tiny_llama4

    return write_tiny_llama4(tmp_path_factory.mktemp("tiny-llama4-seed1"), seed=1)


@pytest.fixture(scope="session")
def settings():
    from config import Settings

    return Settings()


@pytest.fixture(scope="session")
def smollm2(settings):
    from models.catalogue import load_registry
    from models.engines import engine_for

    registry = load_registry(settings)
    engine = engine_for(registry.get(registry.default), settings)
    engine.load()
    yield engine
    engine.unload()


@pytest.fixture(scope="session")
def tiny_engine(tiny_llama4, settings):
    """The tiny Llama 4 as the playground serves it: its llama-server child."""
    from models.catalogue import user_model
    from models.engines import engine_for

    engine = engine_for(user_model(*tiny_llama4), settings)
    engine.load()
    yield engine
    engine.unload()


@pytest.fixture(scope="session")
def tiny_in_process(tiny_llama4, settings):
    """The tiny Llama 4 in this process, where what llama.cpp evaluates can be read."""
    from models.catalogue import user_model
    from models.engines import scoring_engine_for

    engine = scoring_engine_for(user_model(*tiny_llama4), settings)
    engine.load()
    yield engine
    engine.unload()


def wait_for(condition, timeout: float = 20):
    """What `condition` returns once it is truthy (polled), else its last falsy value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(*args: str, timeout: float = 240) -> tuple[subprocess.Popen, str]:
    """`python launch.py ARGS` on a free port; returns once the page answers (a start
    that crashes fails at once; a slow one on a loaded machine is waited for)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "launch.py", "--port", str(port), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"app did not answer on {url} within {timeout}s")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def app_url():
    proc, url = start_app()
    yield url
    stop_app(proc)


@pytest.fixture(scope="session")
def vision_app_url(tiny_llama4):
    model, mmproj = tiny_llama4
    proc, url = start_app("--model-path", str(model), "--mmproj", str(mmproj))
    yield url
    stop_app(proc)


@pytest.fixture(scope="session")
def compare_app_url(tiny_llama4, tiny_llama4_seed1):
    """The app offering SmolLM2 and the tiny Llama 4 at two seeds (tiny-llama4, tiny-llama4-2)."""
    (model, mmproj), (other, _) = tiny_llama4, tiny_llama4_seed1
    proc, url = start_app("--extra-model", f"{model}:{mmproj}", "--extra-model", str(other))
    yield url
    stop_app(proc)
