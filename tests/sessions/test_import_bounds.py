"""`sessions import` of a crafted export: a field past its bound, a seed or a
temperature no one could have set, a lone surrogate, JSON nested 10,000 deep, each
refused with one line and exit status 2, and nothing of it stored."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from documents.parts import ChatMessage
from sessions import Store
from tests.conftest import REPO

HEAD = b'{"format": "llama4-playground/session", "version": 1, '


def cli(data_dir: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *args, "--data-dir", str(data_dir)],
        cwd=REPO, capture_output=True, input=stdin, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> dict:
    with Store(tmp_path_factory.mktemp("export-source")) as store:
        session = store.create_session(title="a fair chat", settings={"seed": 7, "temperature": 0.5})
        user = store.add_user_message(session, None, ChatMessage.text("user", "hello"))
        with store.start_answer(session, user, "smollm2-135m", {"seed": 7}) as answer:
            answer.append("hi there")
        return store.export_json(session)


def crafted(export: dict, change) -> bytes:
    doc = copy.deepcopy(export)
    change(doc)
    return json.dumps(doc).encode()


def set_in(path: tuple, value):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


CASES = {
    "huge title": (set_in(("session", "title"), "t" * 5_000_000), "title is 5,000,000 characters"),
    "seed 1e300": (set_in(("session", "settings", "seed"), 1e300), "seed"),
    "seed 2**70": (set_in(("session", "settings", "seed"), 2**70), "seed"),
    "temperature 1e30": (set_in(("session", "settings", "temperature"), 1e30), "temperature"),
    "max_tokens 1e30": (set_in(("session", "settings", "max_tokens"), 10**30), "max_tokens"),
    "params seed": (set_in(("messages", 1, "params", "seed"), 1e300), "params has seed"),
    "huge model": (set_in(("session", "model"), "m" * 100_000), "model is 100,000"),
    "huge engine id": (set_in(("messages", 1, "engine_id"), "e" * 100_000), "engine_id"),
    "huge time": (set_in(("messages", 0, "created"), "2" * 10_000), "time"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_field_past_its_bound_is_refused_and_nothing_stored(tmp_path, export, name):
    change, needle = CASES[name]
    path = tmp_path / "crafted.json"
    path.write_bytes(crafted(export, change))
    result = cli(tmp_path, "sessions", "import", str(path))
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr[-500:]
    assert needle in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert len(stderr) < 400  # the 5M title is not echoed back
    with Store(tmp_path) as store:
        assert store.list_sessions() == []


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (HEAD + b'"session": {"title": "\\ud800"}}', "surrogate"),
        (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
        (HEAD + b'"session": NaN', "not JSON"),
    ],
    ids=["lone surrogate", "10000 deep", "malformed"],
)
def test_text_that_is_not_json_text_is_refused(tmp_path, raw, needle):
    result = cli(tmp_path, "sessions", "import", "-", stdin=raw)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and needle in stderr, stderr[-500:]
    assert len(stderr.strip().splitlines()) == 1
    with Store(tmp_path) as store:
        assert store.list_sessions() == []


def test_a_fair_export_still_imports(tmp_path, export):
    path = tmp_path / "fair.json"
    path.write_text(json.dumps(export))
    result = cli(tmp_path, "sessions", "import", str(path))
    assert result.returncode == 0, result.stderr.decode()
    with Store(tmp_path) as store:
        (row,) = store.list_sessions()
        assert row.title == "a fair chat" and row.settings["seed"] == 7
