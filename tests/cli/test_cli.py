"""launch.py as a user scripts it: real subprocesses, real models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.fixtures.cli import last_json, run


def test_ask_answers_paris_on_the_default_model():
    result = run("ask", "--json", "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert "Paris" in summary["text"]
    assert summary["model"] == "smollm2-135m"
    assert summary["finish_reason"] == "stop"
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0
    assert {"ttft_s", "prompt_tps", "decode_tps"} <= summary.keys()
    assert result.stdout.startswith(summary["text"])  # the answer streamed before the summary


def test_ask_with_images_on_tiny_llama4(tiny_llama4, write_png):
    model, mmproj = tiny_llama4
    first, second = write_png("a.png"), write_png("b.png", color="blue")
    base = ["ask", "--model-path", str(model), "--mmproj", str(mmproj), "--max-tokens", "8", "--json"]
    one = run(*base, "--image", str(first), "compare")
    two = run(*base, "--image", str(first), "--image", str(second), "compare")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert last_json(two.stdout)["prompt_tokens"] > last_json(one.stdout)["prompt_tokens"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "/nonexistent/a.png", "hi"], "image not found"),
        (["--image", "launch.py", "hi"], "not an image"),
        (["--model", "no-such-model", "hi"], "unknown model"),
        (["--model-path", "/nonexistent/m.gguf", "hi"], "model file not found"),
        (["--model", "scout-q4_k_xl", "hi"], "file not found"),
        (["--model-path", "launch.py", "hi"], "not a readable GGUF"),
    ],
    ids=["missing-image", "not-an-image", "unknown-model", "missing-model", "missing-preset", "not-gguf"],
)
def test_bad_input_exits_2_with_one_line(args, message):
    result = run("ask", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr


def interrupt_long_answer(*extra: str) -> dict:
    """Start a long `ask`, press Ctrl-C once it streams; returns its --json summary."""
    import signal

    proc = subprocess.Popen(
        [sys.executable, "launch.py", "ask", "--json", "--max-tokens", "2000", "--temperature", "0.8",
         *extra, "Write a very long story about a dragon."],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    proc.stdout.read(40)  # the answer is streaming
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    return last_json(out)


def test_ctrl_c_stops_the_answer():
    summary = interrupt_long_answer("--no-save")
    assert summary["finish_reason"] == "cancelled" and summary["completion_tokens"] < 2000


def test_image_to_text_only_model_is_refused(write_png):
    result = run("ask", "--image", str(write_png("a.png")), "what is this?")
    assert result.returncode == 2
    assert (
        "cannot see images; choose a vision model such as Llama 4 Scout GGUF with its mmproj" in result.stderr
    )
    assert result.stdout == ""  # no pretended answer


def test_models_lists_presets_and_missing_paths(tmp_path):
    result = run("models", "--models-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "smollm2-135m" in result.stdout and "scout-q4_k_xl" in result.stdout
    assert f"expected at {tmp_path}/Llama-4-Scout-17B-16E-Instruct-UD-Q4_K_XL.gguf" in result.stdout


def test_models_json_rows(tiny_llama4):
    model, mmproj = tiny_llama4
    result = run("models", "--json", "--model-path", str(model), "--mmproj", str(mmproj), "-c", "2048")
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["smollm2-135m"]["available"] is True and rows["smollm2-135m"]["vision"] is False
    assert rows["scout-q4_k_xl"]["available"] is False and rows["scout-q4_k_xl"]["vision"] is True
    tiny = rows["tiny-llama4"]
    assert tiny["available"] and tiny["vision"] and tiny["n_ctx"] == 2048
    assert tiny["memory_gb"] >= tiny["size_gb"]
    assert "expert layers on the GPU" in tiny["placement"] or tiny["placement"].startswith("all in RAM: ")
    assert rows["smollm2-135m"]["placement"] == ""  # dense: nothing to split
