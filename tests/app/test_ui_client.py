"""The launched app driven through gradio_client, the way a script or the page does."""

from __future__ import annotations

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402


def chat_text(chat: list[dict]) -> list[str]:
    return [
        " ".join(part.get("text", "") for part in m["content"] if part.get("type") == "text") for m in chat
    ]


def send(client: Client, text: str, files=(), model: str | None = None):
    args = [{"text": text, "files": [handle_file(f) for f in files]}]
    if model:
        args.append(model)
    return client.predict(*args, api_name="/send")


def test_chat_streams_an_answer_with_metrics(app_url):
    client = Client(app_url, verbose=False)
    _, chat, notice = send(client, "What is the capital of France?")
    assert notice == "" and chat_text(chat) == ["What is the capital of France?"]
    updates = list(client.submit(api_name="/respond"))
    chat, notice = updates[-1]
    answer = chat_text(chat)[-1]
    assert "Paris" in answer
    assert "tokens/s" in answer and "stop" in answer  # the metrics line under the answer
    assert notice == ""


def test_follow_up_and_regenerate_keep_one_answer_per_turn(app_url):
    client = Client(app_url, verbose=False)
    send(client, "What is the capital of France?")
    list(client.submit(api_name="/respond"))
    send(client, "And the capital of Japan?")
    chat, _ = list(client.submit(api_name="/respond"))[-1]
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant"]
    assert "Tokyo" in chat_text(chat)[-1]
    client.predict(api_name="/drop_last_answer")
    chat, _ = list(client.submit(api_name="/respond"))[-1]
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant"]


def test_image_to_the_text_only_model_gets_a_clear_message(app_url, write_png):
    client = Client(app_url, verbose=False)
    box, chat, notice = send(client, "what is this?", [write_png("red.png")])
    # Nothing here sees images (no Llama 4 on disk, no provider key): say how to get one.
    assert "cannot see images; no model here sees images yet: pull a Llama 4" in notice
    assert chat == []  # nothing sent, nothing pretended
    assert box["value"]["text"] == "what is this?"  # the input is kept so the user can fix it


def test_the_vision_hint_names_the_models_here_that_see(compare_app_url, write_png):
    client = Client(compare_app_url, verbose=False)
    box, chat, notice = send(client, "what is this?", [write_png("red.png")], model="smollm2-135m")
    assert "cannot see images; choose a model that sees images: tiny-llama4" in notice
    assert "tiny-llama4-2" not in notice  # its GGUF came without a projector: it cannot see
    assert chat == [] and box["value"]["text"] == "what is this?"


def test_bad_upload_gets_a_clear_message(app_url, tmp_path):
    client = Client(app_url, verbose=False)
    fake = tmp_path / "photo.png"
    fake.write_text("not really a png")
    _, chat, notice = send(client, "look", [fake])
    assert "not an image" in notice and chat == []


def test_stop_ends_the_answer_as_cancelled(app_url):
    client = Client(app_url, verbose=False)
    send(client, "Write a very long story about a dragon, a knight and a castle.")
    job = client.submit(api_name="/respond")
    for update in job:
        chat, _ = update
        if len(chat) == 2 and len(chat_text(chat)[-1]) > 20:
            client.predict(api_name="/stop")
            break
    chat, _ = job.result()
    assert "cancelled" in chat_text(chat)[-1]


def test_two_images_on_the_vision_model(vision_app_url, write_png):
    client = Client(vision_app_url, verbose=False)
    _, chat, notice = send(client, "compare <image> with <image>", [write_png("a.png"), write_png("b.png")])
    assert notice == ""
    kinds = [part["type"] for part in chat[0]["content"]]
    assert kinds == ["text", "file", "text", "file"]  # images shown where the user put them
    chat, notice = list(client.submit(api_name="/respond"))[-1]
    assert notice == ""
    assert "tokens" in chat_text(chat)[-1]


def test_switching_to_a_missing_model_says_where_its_file_should_be(app_url):
    client = Client(app_url, verbose=False)
    _, footer, notice, system, temperature, top_p, n_ctx = client.predict(
        "scout-q2_k_xl", api_name="/load_model"
    )
    assert "Built with Llama" in footer and "Llama 4 Community License" in footer
    assert "file not found" in notice and "Llama-4-Scout-17B-16E-Instruct-UD-Q2_K_XL.gguf" in notice
    assert (system, temperature, top_p, n_ctx) == ("", 0.6, 0.9, 32768)  # Meta sampling defaults follow
    info, footer, notice, *_ = client.predict("smollm2-135m", api_name="/load_model")
    assert notice == "" and "text only" in info
