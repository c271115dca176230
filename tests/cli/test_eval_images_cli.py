"""`launch.py eval fidelity` with images, end to end in a subprocess on the tiny
random-weight Llama 4 (GGUF:MMPROJ models), and its refusals before anything loads."""

from __future__ import annotations

import json

from engine.image_plan import plan_image
from models.catalogue import user_model
from models.engines import engine_for
from tests.cli.test_eval_cli import launch


def test_image_fidelity_json_counts_image_tokens(
    tiny_llama4, tiny_llama4_seed1, write_png, tmp_path, settings
):
    (model, mmproj), (other, other_mmproj) = tiny_llama4, tiny_llama4_seed1
    chart = write_png("chart.png", 200, 120, "blue")
    doc = tmp_path / "notes.txt"
    doc.write_text("The blue bars rise every month and the last one is the tallest of all. " * 3)
    done = launch(
        "fidelity", "--model", f"{model}:{mmproj}", "--model", f"{other}:{other_mmproj}",
        "--image", str(chart), "--file", str(doc), "--window", "512", "--json", data_dir=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["reference"] == f"{model}:{mmproj}" and row["tokens"] > 20
    assert row["kl_mean"] > 0 and set(row["by_kind"]) == {"image"}
    engine = engine_for(user_model(model, mmproj), settings)
    engine.load()
    try:
        plan = plan_image(200, 120, engine.tile_budget)
    finally:
        engine.unload()
    assert row["image_tokens"] == row["image_tokens_reference"] == plan.tiles * plan.budget.tokens_per_tile
    runs = launch("runs", data_dir=tmp_path)
    assert "notes.txt" in runs.stdout


def test_mismatches_are_refused_in_one_line(tiny_llama4, tiny_llama4_seed1, smollm2, write_png, tmp_path):
    (model, mmproj), (other, other_mmproj) = tiny_llama4, tiny_llama4_seed1
    doc = tmp_path / "notes.txt"
    doc.write_text("Some text to score. " * 10)
    other_tokenizer = launch(
        "fidelity", "--model", f"{model}:{mmproj}", "--model", str(smollm2.spec.model_path),
        "--file", str(doc), data_dir=tmp_path,
    )  # fmt: skip
    assert other_tokenizer.returncode == 2 and "different tokenizers" in other_tokenizer.stderr
    assert "Traceback" not in other_tokenizer.stderr
    no_projector = launch(
        "fidelity", "--model", f"{model}:{mmproj}", "--model", str(model),
        "--image", str(write_png("a.png")), "--file", str(doc), data_dir=tmp_path,
    )  # fmt: skip
    assert no_projector.returncode == 2 and "has no projector" in no_projector.stderr
    no_text = launch(
        "fidelity", "--model", f"{model}:{mmproj}", "--model", f"{other}:{other_mmproj}",
        "--image", str(write_png("b.png")), data_dir=tmp_path,
    )  # fmt: skip
    assert no_text.returncode == 2 and "--image needs --file" in no_text.stderr
    assert len(no_text.stderr.strip().splitlines()) == 1
