"""`launch.py compare` as a user scripts it: real subprocesses, real models, a real store."""

from __future__ import annotations

import json
import os

import pytest

from sessions import Store
from tests.fixtures.cli import run


@pytest.fixture
def tiny_extra(tiny_llama4):
    model, mmproj = tiny_llama4
    return ["--extra-model", f"{model}:{mmproj}"]


def saved_sessions() -> int:
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        return len(store.list_sessions(limit=10_000))


def test_compare_prints_one_json_object_per_model_and_saves_sibling_answers(tiny_extra):
    result = run(
        "compare", *tiny_extra, "--model", "smollm2-135m", "--model", "tiny-llama4",
        "--max-tokens", "16", "--json", "What is the capital of France?",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["model"] for line in lines] == ["smollm2-135m", "tiny-llama4"]
    smol, tiny = lines
    assert "Paris" in smol["text"]  # the embedded model, greedy, knows
    assert smol["finish_reason"] == "stop" or smol["completion_tokens"] == 16
    # Random weights sample anything, their end token included: only what holds for any sample.
    assert tiny["error"] is None and tiny["completion_tokens"] <= 16
    assert tiny["finish_reason"] in ("stop", "length")
    assert tiny["finish_reason"] == "stop" or tiny["completion_tokens"] == 16
    for line in lines:
        assert line["ttft_s"] > 0 and line["decode_tps"] >= 0 and line["prompt_tokens"] > 0
        assert line["context_used"] == line["prompt_tokens"] + line["completion_tokens"]
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        comparison = store.comparisons.get(smol["comparison_id"])
        assert comparison.engine_ids == ("smollm2-135m", "tiny-llama4")
        assert store.siblings(comparison.answer_ids[0]) == list(comparison.answer_ids)
        answers = [store.message(answer_id) for answer_id in comparison.answer_ids]
        assert [answer.text for answer in answers] == [smol["text"], tiny["text"]]
        assert [answer.completion_tokens for answer in answers] == [
            line["completion_tokens"] for line in lines
        ]


def test_compare_prints_answers_and_a_metrics_table(tiny_extra, tiny_llama4_seed1):
    model, _ = tiny_llama4_seed1
    result = run(
        "compare", *tiny_extra, "--extra-model", str(model), "--model", "tiny-llama4",
        "--model", "tiny-llama4-2", "--max-tokens", "8", "--no-save", "hello",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "== Model A: tiny-llama4 ==" in result.stdout
    table = result.stdout.strip().splitlines()[-3:]
    assert table[0].split()[:3] == ["MODEL", "TTFT", "S"]
    assert [row.split()[0] for row in table[1:]] == ["tiny-llama4", "tiny-llama4-2"]
    assert all(row.split()[-1] in ("stop", "length") for row in table[1:])  # random weights
    assert "saved" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "smollm2-135m"], "choose 2 to 4 models to compare, not 1"),
        (["--model", "smollm2-135m", "--model", "smollm2-135m"], "choose different models"),
        (["--model", "smollm2-135m", "--model", "nope"], "unknown model 'nope'"),
        (["--model", "smollm2-135m", "--model", "scout-q2_k_xl"], "file not found"),
        (["--model", "smollm2-135m", "--model", "tiny-llama4", "--image", "red.png"], "cannot see images"),
        (["--model", "smollm2-135m", "--model", "tiny-llama4", "--image", "nothere.png"], "not found"),
    ],
)
def test_bad_input_is_one_error_line_exit_2_and_nothing_saved(tiny_extra, write_png, args, message):
    png = write_png("red.png")
    args = [str(png) if a == "red.png" else a for a in args]
    before = saved_sessions()
    result = run("compare", *tiny_extra, *args, "describe")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert saved_sessions() == before


def test_compare_a_document_each_model_gets_the_pages_it_can_take(tiny_extra, tmp_path):
    from tests.documents.test_documents_context import mixed_pdf

    path = tmp_path / "memo.pdf"
    path.write_bytes(mixed_pdf(["The memo says the meeting moved to Tuesday. " * 5, None]))
    result = run(
        "compare", *tiny_extra, "--model", "smollm2-135m", "--model", "tiny-llama4",
        "--file", str(path), "--max-tokens", "24", "--json", "When is the meeting?",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    smol, tiny = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert "Tuesday" in smol["text"]
    # The vision model also got page 2 as an image, so its prompt is the larger one
    # even though the tiny model's context is half SmolLM2's.
    assert tiny["prompt_tokens"] > smol["prompt_tokens"] > 50
    assert smol["finish_reason"] in ("stop", "length") and tiny["finish_reason"] in ("stop", "length")


def test_compare_takes_a_model_path_with_its_projector_like_ask(tiny_llama4):
    model, mmproj = tiny_llama4
    result = run(
        "compare", "--model-path", str(model), "--mmproj", str(mmproj), "--model", "smollm2-135m",
        "-c", "2048", "-t", "2", "--max-tokens", "4", "--json", "--no-save", "hello",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["model"] for line in lines] == ["tiny-llama4", "smollm2-135m"]
    assert [line["n_ctx"] for line in lines] == [2048, 2048]
    assert all(line["error"] is None and line["prompt_tokens"] > 0 for line in lines)


def test_every_command_takes_the_same_model_flags(tmp_path):
    from cli.flags import settings_from
    from cli.main import build_parser

    flags = ["--model-path", "m.gguf", "--mmproj", "p.gguf", "-c", "4096", "-ngl", "-1", "-t", "3"]
    flags += ["--hf-dtype", "float32", "--endpoint", "http://h:8000/v1", "--data-dir", str(tmp_path)]
    commands = {"ask": ["q"], "compare": ["q"], "models": [], "doc": ["f.pdf"], "": []}
    seen = []
    for command, rest in commands.items():
        args = build_parser().parse_args([*([command] if command else []), *flags, *rest])
        settings = settings_from(args)
        seen.append((settings.model_path.name, settings.mmproj.name, settings.n_ctx, settings.n_gpu_layers))
        assert (settings.n_threads, settings.hf_dtype, settings.data_dir) == (3, "float32", tmp_path)
    assert set(seen) == {("m.gguf", "p.gguf", 4096, -1)}
