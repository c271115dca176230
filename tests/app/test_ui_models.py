"""The Models tab through gradio_client: pull from a Hugging Face-compatible hub on
loopback with progress, cancel a slow pull (it resumes later), delete, and the
model pickers listing what is on disk first."""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import start_app, stop_app
from tests.models.test_pull import SLOW_BPS, SLOW_SIZE, TINY, hub  # noqa: F401  (the loopback hub fixture)

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

PULLED = f"{TINY}:Q8_0"


def start_with_hub(hub, data, *args: str):  # noqa: F811
    """The app on `data`, with huggingface_hub pointed at the loopback hub."""
    saved = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_HOME", "HF_TOKEN")}
    os.environ.update(HF_ENDPOINT=hub.url, HF_HOME=str(data / "hf-home"))
    os.environ.pop("HF_TOKEN", None)
    try:
        return start_app("--data-dir", str(data), *args)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def models_app(hub, tmp_path_factory):  # noqa: F811
    data = tmp_path_factory.mktemp("models-app")
    proc, url = start_with_hub(hub, data)
    yield Client(url, verbose=False), data / "models"
    stop_app(proc)


def test_the_server_with_hf_pulls_then_serves_that_model(hub, tmp_path):  # noqa: F811
    proc, url = start_with_hub(hub, tmp_path, "--hf", PULLED)
    try:
        assert (tmp_path / "models" / "ggml-org" / "tiny-llama4-GGUF" / "tiny-llama4-Q8_0.gguf").is_file()
        client = Client(url, verbose=False)
        picker = next(c for c in client.config["components"] if c.get("props", {}).get("elem_id") == "model")
        assert picker["props"]["value"] == "tiny-llama4-Q8_0"  # the model the server was started with
        info, _, notice, *_ = client.predict("tiny-llama4-Q8_0", api_name="/load_model")
        assert notice == "" and "sees images" in info
    finally:
        stop_app(proc)
    assert "verified (sha256)" in proc.stdout.read()  # stderr, unbuffered: the pull said so


def table(client) -> dict[str, list[str]]:
    value = client.predict(api_name="/models_table")
    return {row[0].split(" ")[0]: row for row in value["data"]}


def test_pull_a_repo_lists_it_on_disk_and_first_in_the_chat_picker(models_app):
    client, models = models_app
    assert PULLED not in table(client)
    status, _, _, picker = client.predict(None, PULLED, api_name="/pull_model")
    assert status.startswith("✅") and "verified (sha256)" in status
    assert (models / "ggml-org" / "tiny-llama4-GGUF" / "tiny-llama4-Q8_0.gguf").is_file()
    row = table(client)[PULLED]
    assert row[1] == "on disk" and row[2] == "0.0 GB" and row[5] == "yes"  # its mmproj came too
    names = [choice[1] for choice in picker["choices"]]
    on_disk = names[: names.index(next(c[1] for c in picker["choices"] if c[0].startswith("get more")))]
    assert PULLED in on_disk and "smollm2-135m" in on_disk and "scout-q4_k_xl" not in on_disk
    # The pulled model loads in the chat.
    info, _, notice, *_ = client.predict(PULLED, api_name="/load_model")
    assert notice == "" and "sees images" in info

    # Delete asks first, then removes the files and the entry.
    status, *_ = client.predict(PULLED, False, api_name="/delete_model")
    assert "Tick" in status and (models / "ggml-org" / "tiny-llama4-GGUF" / "tiny-llama4-Q8_0.gguf").exists()
    status, *_ = client.predict(PULLED, True, api_name="/delete_model")
    assert status.startswith("Deleted") and not list((models / "ggml-org").rglob("*.gguf"))
    assert PULLED not in table(client)


def test_a_slow_pull_shows_progress_and_cancel_keeps_it_for_later(models_app, hub):  # noqa: F811
    client, models = models_app
    slow = hub.repos["acme/slow-GGUF"]
    slow.slow_bps = 2 * 2**20  # 12 s for the whole file: time to see it and cancel it
    try:
        job = client.submit(None, "acme/slow-GGUF", api_name="/pull_model")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = table(client).get("acme/slow-GGUF:Q4_K_M")
            if row and row[1].startswith("downloading "):
                break
            time.sleep(0.2)
        assert row and row[1].startswith("downloading "), row
        assert client.predict(api_name="/cancel_pull") == "Cancelling…"
        status = job.result()[0]
    finally:
        slow.slow_bps = SLOW_BPS
    assert status.startswith("Cancelled acme/slow-GGUF") and "resumes" in status, status
    kept = list((models / ".partial").glob("*.part"))
    assert kept and 0 < kept[0].stat().st_size < SLOW_SIZE
    assert client.predict(api_name="/cancel_pull") == "Nothing is downloading."
    assert "acme/slow-GGUF:Q4_K_M" not in table(client)


def test_a_gated_repo_in_the_tab_says_how_to_log_in(models_app):
    client, _ = models_app
    status, *_ = client.predict(None, "meta-llama/gated-GGUF", api_name="/pull_model")
    assert status.startswith("⚠️") and "HF_TOKEN" in status and "huggingface-cli login" in status
