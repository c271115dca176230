"""The Measure panel under Compare, through Gradio's API (/fidelity, /suite), against
a running server with the embedded model and a byte-identical copy of it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.cli.test_eval_cli import launch
from tests.conftest import start_app, stop_app


@pytest.fixture(scope="module")
def measure_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("measure")


@pytest.fixture(scope="module")
def measure_app(smollm2, tiny_llama4, measure_folder):
    """The embedded model, a copy, a model with another tokenizer, and a copy whose file
    a test deletes once the page offers it."""
    folder = measure_folder
    copy = shutil.copy(smollm2.spec.model_path, folder / "smollm2-copy.gguf")
    other = shutil.copy(tiny_llama4[0], folder / "tiny-other.gguf")
    gone = shutil.copy(smollm2.spec.model_path, folder / "smollm2-gone.gguf")
    extra = [arg for path in (copy, other, gone) for arg in ("--extra-model", str(path))]
    proc, url = start_app(*extra, "--data-dir", str(folder / "data"))
    yield url
    stop_app(proc)


def test_fidelity_of_a_copy_is_perfect(measure_app, tmp_path):
    from gradio_client import Client, handle_file

    doc = tmp_path / "notes.txt"
    doc.write_text("The keeper logs the weather and trims the wick every evening. " * 10)
    client = Client(measure_app, verbose=False)
    notice, table, _, _ = client.predict(
        ["smollm2-135m", "smollm2-copy"], handle_file(str(doc)), 64, api_name="/fidelity"
    )
    assert notice == ""
    (row,) = table["data"]
    assert row[0] == "smollm2-copy" and row[1] > 100 and row[2] < 1e-6 and row[4] == "100.0%"
    assert row[5] == row[6] and len(str(row[5]).split(".")[-1]) <= 2  # perplexity: 2 decimals


def test_one_model_is_not_enough_for_fidelity(measure_app, tmp_path):
    from gradio_client import Client, handle_file

    doc = tmp_path / "notes.txt"
    doc.write_text("short text " * 20)
    notice, *_ = Client(measure_app, verbose=False).predict(
        ["smollm2-135m"], handle_file(str(doc)), 64, api_name="/fidelity"
    )
    assert notice.startswith("⚠ Pick a reference and at least one variant")


def test_a_suite_run_reports_accuracy_and_offers_its_csv(measure_app, tmp_path):
    from gradio_client import Client, handle_file

    suite = tmp_path / "suite.jsonl"
    turn = {
        "prompt": "Name a fruit.",
        "checks": [{"type": "min_words", "value": 1}, {"type": "contains", "value": "zqxwvk"}],
    }
    suite.write_text(json.dumps({"id": "half", "turns": [turn]}) + "\n")
    notice, table, csv_path = Client(measure_app, verbose=False).predict(
        ["smollm2-135m"], handle_file(str(suite)), 0, 32, api_name="/suite"
    )
    assert notice.startswith("Run ") and table["data"][0][:3] == ["smollm2-135m", "50.0%", "50%"]
    path = csv_path["value"] if isinstance(csv_path, dict) and "value" in csv_path else csv_path
    path = path.get("path", path) if isinstance(path, dict) else path
    assert "zqxwvk" in Path(path).read_text(encoding="utf-8")


def test_a_bad_suite_file_is_one_line(measure_app, tmp_path):
    from gradio_client import Client, handle_file

    suite = tmp_path / "bad.jsonl"
    suite.write_text('{"id": "x", "turns": []}\n')
    notice, *_ = Client(measure_app, verbose=False).predict(
        ["smollm2-135m"], handle_file(str(suite)), 0, 32, api_name="/suite"
    )
    assert notice.startswith("⚠ ") and "bad.jsonl:1" in notice and "\n" not in notice


def test_fidelity_refuses_other_tokenizers_before_scoring(measure_app, tmp_path):
    from gradio_client import Client, handle_file

    doc = tmp_path / "notes.txt"
    doc.write_text("The keeper logs the weather and trims the wick every evening. " * 10)
    client = Client(measure_app, verbose=False)
    started = time.monotonic()
    notice, table, _, passages = client.predict(
        ["smollm2-135m", "tiny-other"], handle_file(str(doc)), 64, api_name="/fidelity"
    )
    seconds = time.monotonic() - started
    assert notice.startswith("⚠ tiny-other and smollm2-135m have different tokenizers") and "\n" not in notice
    assert "data" not in table  # no rows: nothing was scored
    assert passages == ""
    assert seconds < 10, seconds  # headers only: the reference is never scored


def test_a_suite_refuses_a_model_whose_file_is_gone(measure_app, measure_folder):
    from gradio_client import Client

    (measure_folder / "smollm2-gone.gguf").unlink()  # after the page offered it
    notice, *_ = Client(measure_app, verbose=False).predict(
        ["smollm2-135m", "smollm2-gone"], None, 1, 32, api_name="/suite"
    )
    assert notice.startswith("⚠ smollm2-gone cannot run here: file not found") and "\n" not in notice
    runs = launch("runs", data_dir=measure_folder / "data")
    assert runs.returncode == 0 and "smollm2-gone" not in runs.stdout  # no run saved
