"""Delete in the Models tab applies only to files pulled into the models dir: the
embedded model, an --extra-model elsewhere and an endpoint have none of ours."""

from __future__ import annotations

import shutil

from engine.spec import ModelSpec
from hub.local import deletable
from models.catalogue import user_model


def test_only_pulled_files_can_be_deleted(smollm2, tmp_path):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    pulled = user_model(shutil.copy(smollm2.spec.model_path, models_dir / "pulled.gguf"))
    elsewhere = user_model(shutil.copy(smollm2.spec.model_path, tmp_path / "mine.gguf"))
    remote = ModelSpec(name="r", label="r", backend="openai", endpoint="http://127.0.0.1:9/v1")
    assert deletable(pulled, models_dir)
    assert not deletable(smollm2.spec, models_dir)  # the embedded model
    assert not deletable(elsewhere, models_dir) and not deletable(remote, models_dir)
    (models_dir / "pulled.gguf").unlink()
    assert not deletable(pulled, models_dir)  # nothing left to delete


def test_the_models_table_says_a_remote_model_is_on_its_server(tmp_path):
    from app.models_tab import COLUMNS, rows
    from chat.runtime import build_runtime
    from config import Settings

    runtime = build_runtime(Settings(data_dir=tmp_path / "data", check_servers=False))
    table = {row[0].split(" ★")[0]: dict(zip(COLUMNS, row, strict=True)) for row in rows(runtime)}
    hosted = table["openrouter-scout"]
    assert hosted["size"] == hosted["needs"] == "on its server"
    assert table["smollm2-135m"]["size"].endswith(" GB") and "0.0 GB" not in table["smollm2-135m"]["size"]
