"""`launch.py eval ...` end to end in a subprocess, on the embedded model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def launch(*args, data_dir):
    command = [sys.executable, "launch.py", "--data-dir", str(data_dir), "eval", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def copy_of_smollm2(smollm2, tmp_path_factory):
    return shutil.copy(smollm2.spec.model_path, tmp_path_factory.mktemp("eval-cli") / "copy.gguf")


def test_fidelity_json_and_plot(copy_of_smollm2, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("The keeper logs the weather and trims the wick every evening. " * 12)
    plot = tmp_path / "kl.svg"
    done = launch(
        "fidelity", "--model", "smollm2-135m", "--model", str(copy_of_smollm2), "--file", str(doc),
        "--window", "64", "--json", "--plot", str(plot), data_dir=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["model"] == str(copy_of_smollm2) and row["reference"] == "smollm2-135m"
    assert row["kl_mean"] < 1e-6 and row["top1_agreement"] == 1.0 and row["tokens"] > 100
    assert plot.read_text().startswith("<svg") and "<polyline" in plot.read_text()
    runs = launch("runs", data_dir=tmp_path)
    assert "fidelity" in runs.stdout and "notes.txt" in runs.stdout


def test_suite_json_resume_and_export(tmp_path):
    suite = tmp_path / "suite.jsonl"
    turn = {
        "prompt": "Name a fruit.",
        "checks": [{"type": "min_words", "value": 1}, {"type": "contains", "value": "zqxwvk"}],
    }
    suite.write_text(json.dumps({"id": "half", "turns": [turn]}) + "\n")
    done = launch(
        "suite",
        "--model",
        "smollm2-135m",
        "--suite",
        str(suite),
        "--max-tokens",
        "16",
        "--json",
        data_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (report,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert report["accuracy"] == 0.5 and report["turns"] == [0.5] and report["conversations"] == 1
    assert set(report) == {"model", "conversations", "turns", "accuracy", "by_check", "tokens_per_turn"}
    run_id = int(done.stderr.split("run ")[1].split()[0])
    again = launch("suite", "--resume", str(run_id), "--suite", str(suite), "--json", data_dir=tmp_path)
    assert again.returncode == 0 and json.loads(again.stdout)["accuracy"] == 0.5  # nothing re-run
    out = tmp_path / "run.csv"
    exported = launch("export", str(run_id), "--out", str(out), data_dir=tmp_path)
    assert exported.returncode == 0 and out.read_text().count("\n") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("suite", "--model", "nope"), "unknown model 'nope'"),
        (
            ("fidelity", "--model", "smollm2-135m", "--file", "x.txt"),
            "needs a reference and at least one variant",
        ),
        (("suite", "--model", "smollm2-135m", "--suite", "missing.jsonl"), "missing.jsonl"),
        (("export", "999", "--out", "x.csv"), "no evaluation run 999"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    done = launch(*args, data_dir=tmp_path)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("fidelity", "--model", "smollm2-135m", "--model", "openrouter-scout", "--file", "DOC"),
            "cannot give",
        ),
        (("suite", "--model", "smollm2-135m", "--model", "scout-q2_k_xl"), "scout-q2_k_xl cannot run here"),
        (
            ("suite", "--model", "smollm2-135m", "--model", "openrouter-scout"),
            "openrouter-scout cannot answer",
        ),
    ],
    ids=["fidelity-endpoint", "suite-missing-file", "suite-endpoint-without-key"],
)
def test_a_model_that_cannot_run_is_refused_before_any_work(args, message, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    doc = tmp_path / "notes.txt"
    doc.write_text("Some text to score. " * 10)
    done = launch(*(str(doc) if arg == "DOC" else arg for arg in args), data_dir=tmp_path)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stdout == ""  # nothing answered
    assert launch("runs", data_dir=tmp_path).stdout == ""  # no run saved
