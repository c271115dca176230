"""Hosted Llama 4 providers as presets (assets/models.toml): their limits enforced before
anything is sent, their keys read from the environment and never written anywhere,
their rate limits and usage figures handled, from the engine, the CLI and the page.
The provider is scripted on loopback (tests/provider_server.py) with OpenRouter Scout's
preset's limits; nothing here reaches the internet (L4P_CHECK_SERVERS=0 where the shipped
presets' real hosts would be asked, their key variables set)."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
from PIL import Image

from engine import EngineLoadError, Final, SamplingParams, TextDelta
from engine.openai_compat import EndpointError
from engine.types import ImagePart
from errors import UserError
from models.catalogue import Registry, endpoint_model, hosted_preset, load_registry
from models.engines import engine_for
from tests.conftest import REPO
from tests.engine.test_engine_vision import image, user
from tests.provider_server import ANSWER, USAGE, Limits, ProviderServer, Script

# --provider takes the preset's name: "openrouter" alone has two presets.
PRESET, PROVIDER, KEY_ENV = "openrouter-scout", "openrouter-scout", "OPENROUTER_API_KEY"
LABEL = "Llama 4 Scout on OpenRouter"
SECRET = "sk-or-test-secret-7f3a9c1e"  # what no file, log or export may ever hold
GREEDY = SamplingParams(temperature=0, max_tokens=16)
HOSTED_KEYS = ("OPENROUTER_API_KEY", "DEEPINFRA_API_KEY", "SAMBANOVA_API_KEY")
OFFLINE = {"L4P_CHECK_SERVERS": "0"}  # the real hosts of the shipped presets are never asked


@pytest.fixture(scope="module")
def registry() -> Registry:
    from config import Settings

    return load_registry(Settings())


@pytest.fixture
def provider(registry, monkeypatch):
    spec = registry.get(PRESET)
    monkeypatch.setenv(KEY_ENV, SECRET)
    limits = Limits(
        spec.remote_model, spec.n_ctx, spec.max_images, spec.max_image_bytes, spec.max_image_pixels
    )
    with ProviderServer(Script(SECRET, limits)) as server:
        yield server


def hosted(server, registry, settings, **changes):
    """The OpenRouter Scout preset, limits and key variable included, pointed at the scripted host."""
    spec = replace(endpoint_model(server.url, PRESET, registry.specs), **changes)
    engine = engine_for(spec, settings)
    engine.load()
    return engine


def noise(width: int, height: int, seed: int = 0) -> ImagePart:
    """An image nothing shrinks: its planned canvas weighs megabytes, PNG or JPEG."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    return _png(Image.frombytes("RGB", (width, height), pixels), "noise.png")


def photo_like(width: int, height: int) -> ImagePart:
    """Smooth colour with grain, as a photo: heavy as PNG, light as JPEG."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    colour = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    grain = np.random.default_rng(0).integers(-12, 13, (height, width, 3))
    pixels = np.clip(colour + grain, 0, 255).astype(np.uint8)
    return _png(Image.fromarray(pixels), "photo.png")


def _png(picture, name: str) -> ImagePart:
    out = io.BytesIO()
    picture.save(out, "PNG", compress_level=1)
    return ImagePart(out.getvalue(), "image/png", name, picture.width, picture.height)


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "launch.py", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


# -- presets ------------------------------------------------------------------------


def test_hosted_presets_name_their_provider_key_and_limits(registry):
    hosted_specs = [spec for spec in registry.specs.values() if spec.provider]
    assert {"openrouter", "deepinfra", "sambanova"} <= {spec.provider for spec in hosted_specs}
    for spec in hosted_specs:
        assert spec.is_remote and spec.is_llama and spec.vision and spec.endpoint.startswith("https://")
        assert spec.api_key_env.endswith("_API_KEY") and spec.remote_model
        assert spec.n_ctx > 0 and spec.max_images and spec.max_image_bytes and spec.max_image_pixels
    source = (REPO / "assets" / "models.toml").read_text()
    for spec in hosted_specs:  # every figure carries its date and source
        block = source.split(f"[models.{spec.name}]")[1].split("[models.")[0]
        assert "2026-" in block and "https://" in block.replace(spec.endpoint, "")


def test_provider_names_its_preset_or_asks_which(registry):
    assert hosted_preset(registry.specs, "sambanova").name == "sambanova-maverick"
    assert hosted_preset(registry.specs, "openrouter-scout").name == "openrouter-scout"
    with pytest.raises(UserError, match=r"openrouter serves several presets \(openrouter-scout, "):
        hosted_preset(registry.specs, "openrouter")
    with pytest.raises(UserError, match="unknown provider 'nope'; hosted providers: deepinfra, openrouter"):
        hosted_preset(registry.specs, "nope")
    with pytest.raises(UserError, match="unknown provider 'smollm2-135m'"):
        hosted_preset(registry.specs, "smollm2-135m")  # a local preset is no provider


def test_models_lists_hosted_limits_and_whether_each_key_is_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in HOSTED_KEYS}
    env.update({KEY_ENV: SECRET, "L4P_DATA_DIR": str(tmp_path), **OFFLINE})
    listed = cli("models", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in map(json.loads, listed.stdout.splitlines())}
    row, meta = rows["openrouter-scout"], rows["deepinfra-maverick"]
    assert (row["api_key_env"], row["key_set"], row["available"]) == (KEY_ENV, True, True)
    assert (meta["api_key_env"], meta["key_set"], meta["available"]) == ("DEEPINFRA_API_KEY", False, False)
    assert (row["n_ctx"], row["max_images"], row["max_image_bytes"]) == (131072, 5, 4_000_000)
    assert row["max_image_pixels"] == 33_177_600 and row["provider"] == "openrouter"
    assert rows["smollm2-135m"]["key_set"] is True and rows["smollm2-135m"]["api_key_env"] == ""
    table = cli("models", env=env)
    assert "limits: context 131,072 · 5 images a request · 4 MB of images a request" in table.stdout
    assert f"key ${KEY_ENV} set" in table.stdout and "key $DEEPINFRA_API_KEY not set" in table.stdout
    assert SECRET not in listed.stdout + listed.stderr + table.stdout + table.stderr


def test_the_page_model_info_shows_a_providers_limits(registry, monkeypatch):
    from app.chat_tab import _model_info

    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    info = _model_info(registry.get("deepinfra-scout"))
    assert "context 327,680 · 5 images a request · 4 MB of images a request" in info
    assert "answers up to 16,384 tokens" in info
    assert "key $DEEPINFRA_API_KEY not set" in info and "missing: `an API key in $DEEPINFRA_API_KEY`" in info


# -- keys ---------------------------------------------------------------------------


def test_missing_key_is_one_line_naming_the_variable(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in HOSTED_KEYS}
    env["L4P_DATA_DIR"] = str(tmp_path)
    result = cli("ask", "--provider", "sambanova", "--no-save", "hello", env=env)
    assert result.returncode == 2
    label = "Llama 4 Maverick on SambaNova Cloud"
    assert result.stderr == f"error: {label} needs an API key in $SAMBANOVA_API_KEY\n"


def test_a_refused_key_is_one_line_naming_the_variable(provider, registry, settings, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "gsk_wrong")
    with pytest.raises(EngineLoadError, match=r"refused the API key \(401\); check \$OPENROUTER_API_KEY$"):
        hosted(provider, registry, settings)


@pytest.mark.parametrize("shape", ["list", "none"])
def test_a_provider_listing_models_its_own_way_or_not_at_all_still_loads(provider, registry, settings, shape):
    provider.script.models_shape = shape  # Together answers a bare list; some have no /models
    engine = hosted(provider, registry, settings)
    *_, final = engine.stream([user("hello")], GREEDY)
    assert final.finish_reason == "stop" and final.usage.prompt_tokens == 1234


# -- limits, before sending ---------------------------------------------------------


def test_more_images_than_the_provider_takes_are_refused_before_sending(provider, registry, settings):
    engine = hosted(provider, registry, settings)
    six = [image(color=c) for c in ("red", "blue", "green", "white", "black", "gray")]
    with pytest.raises(UserError, match="at most 5 images per request and this conversation has 6"):
        next(engine.stream([user(*six, "describe them")], GREEDY))
    assert provider.script.chat_requests == []
    # The scripted provider refuses them too, as Groq does, had they been sent:
    unlimited = hosted(provider, registry, settings, max_images=None)
    with pytest.raises(EndpointError, match="answered 400: Too many images provided"):
        next(unlimited.stream([user(*six, "describe them")], GREEDY))
    assert len(provider.script.chat_requests) == 1


def test_images_over_the_request_bytes_are_refused_before_sending(provider, registry, settings):
    engine = hosted(provider, registry, settings)
    two = [noise(1300, 1300, seed) for seed in (1, 2)]  # ~2 MB each even as JPEG
    too_heavy = r"the 2 images of this conversation come to \d+\.\d MB as base64, over the 4.0 MB"
    with pytest.raises(UserError, match=too_heavy):
        next(engine.stream([user(*two, "what are these?")], GREEDY))
    assert provider.script.chat_requests == []
    unlimited = hosted(provider, registry, settings, max_image_bytes=None)
    with pytest.raises(EndpointError, match=r"answered 413: Request Entity Too Large"):
        next(unlimited.stream([user(*two, "what are these?")], GREEDY))


def test_a_photo_too_heavy_as_png_goes_as_jpeg(provider, registry, settings):
    engine = hosted(provider, registry, settings)
    photo = photo_like(1300, 1300)  # its 1344x1344 canvas: ~5 MB as PNG, ~0.6 MB as JPEG
    *deltas, final = engine.stream([user(photo, "what is this?")], GREEDY)
    assert final.finish_reason == "stop" and "".join(d.text for d in deltas) == "".join(ANSWER)
    sent = provider.script.chat_requests[0]["body"]["messages"][0]["content"][0]["image_url"]["url"]
    assert sent.startswith("data:image/jpeg;base64,") and len(sent) < 1_000_000
    small = image(300, 200)  # light enough: stays a lossless PNG
    list(engine.stream([user(small, "and this?")], GREEDY))
    sent = provider.script.chat_requests[1]["body"]["messages"][0]["content"][0]["image_url"]["url"]
    assert sent.startswith("data:image/png;base64,")


def test_an_image_over_the_pixel_limit_as_sent_is_refused_before_sending(provider, registry, settings):
    engine = hosted(provider, registry, settings, max_image_pixels=100_000)
    big = image(500, 500)  # planned onto a 2x2-tile canvas: 672x672 as sent
    too_big = r"image 1 \(red.png\) is 672x672 pixels as sent, over the 100,000 pixels"
    with pytest.raises(UserError, match=too_big):
        next(engine.stream([user(big, "what is this?")], GREEDY))
    assert provider.script.chat_requests == []


def test_a_prompt_over_the_providers_context_is_refused_before_sending(provider, registry, settings):
    engine = hosted(provider, registry, settings)
    with pytest.raises(UserError, match=rf"tokens but {LABEL} takes 131,072; shorten it"):
        next(engine.stream([user("word " * 120_000)], GREEDY))
    assert provider.script.chat_requests == []  # no /tokenize either: hosted providers have none
    assert [r["path"] for r in provider.script.requests] == ["/v1/models"]


def test_an_answer_is_asked_for_no_longer_than_the_provider_gives(provider, registry, settings):
    engine = hosted(provider, registry, settings, max_output_tokens=8)  # Meta's API: 4028
    *_, final = engine.stream([user("hello")], SamplingParams(temperature=0, max_tokens=4096))
    assert final.finish_reason == "stop" and provider.script.chat_requests[0]["body"]["max_tokens"] == 8


# -- rate limits and usage ----------------------------------------------------------


def test_a_short_retry_after_is_waited_once_then_answered(provider, registry, settings):
    engine = hosted(provider, registry, settings)
    provider.script.rate_limits, provider.script.retry_after = 1, "1"
    started = time.monotonic()
    *deltas, final = engine.stream([user("hello")], GREEDY)
    assert time.monotonic() - started >= 0.9
    assert final.finish_reason == "stop" and "".join(d.text for d in deltas) == "".join(ANSWER)
    assert len(provider.script.chat_requests) == 2


def test_a_long_retry_after_is_reported_not_waited(provider, registry, settings):
    engine = hosted(provider, registry, settings)
    provider.script.rate_limits, provider.script.retry_after = 1, "30"
    started = time.monotonic()
    with pytest.raises(EndpointError, match=r"rate limiting requests \(429: Rate limit .*asks to wait 30 s"):
        next(engine.stream([user("hello")], GREEDY))
    assert time.monotonic() - started < 5 and len(provider.script.chat_requests) == 1


def test_a_second_429_after_the_retry_is_one_line(provider, registry, settings):
    engine = hosted(provider, registry, settings)
    provider.script.rate_limits, provider.script.retry_after = 2, "0"
    with pytest.raises(EndpointError, match=r"\(429: .*\); still after one retry") as refused:
        next(engine.stream([user("hello")], GREEDY))
    assert "\n" not in str(refused.value) and len(provider.script.chat_requests) == 2
    provider.script.rate_limits, provider.script.retry_after = 1, None  # no retry-after: no retry
    with pytest.raises(EndpointError, match=r"wait a moment and try again"):
        next(engine.stream([user("hello")], GREEDY))
    assert len(provider.script.chat_requests) == 3


def test_stop_while_waiting_out_a_rate_limit_cancels_at_once(provider, registry, settings):
    engine = hosted(provider, registry, settings)
    provider.script.rate_limits, provider.script.retry_after = 1, "8"
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    events = list(engine.stream([user("hello")], GREEDY, cancel))
    assert [type(e) for e in events] == [Final] and events[0].finish_reason == "cancelled"
    assert time.monotonic() - started < 3 and len(provider.script.chat_requests) == 1


def test_the_providers_usage_wins_over_our_estimate(provider, registry, settings):
    engine = hosted(provider, registry, settings)
    events = list(engine.stream([user("hello")], GREEDY))
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    usage = events[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (1234, 3, 1000)


def test_cli_ask_stores_provider_usage_and_the_key_goes_nowhere(provider, tmp_path):
    from sessions import Store

    env = {**os.environ, "L4P_DATA_DIR": str(tmp_path), KEY_ENV: SECRET, **OFFLINE}
    asked = cli("ask", "--endpoint", provider.url, "--provider", PROVIDER, "--json", "hello", env=env)
    assert asked.returncode == 0, asked.stderr
    summary = json.loads(asked.stdout.strip().splitlines()[-1])
    assert summary["model"] == PRESET and summary["text"] == "".join(ANSWER)
    assert (summary["prompt_tokens"], summary["completion_tokens"]) == (1234, 3)
    with Store(tmp_path) as store:
        answer = store.branch(summary["session_id"])[-1]
        stored = (answer.prompt_tokens, answer.completion_tokens, answer.cached_tokens)
        assert stored == (USAGE["prompt_tokens"], USAGE["completion_tokens"], 1000)
    exported = cli("sessions", "export", summary["session_id"], env=env)
    listed = cli("models", "--json", env=env)
    assert exported.returncode == 0 and listed.returncode == 0
    # The key reached the provider on every request, and nothing else: not the output,
    # not the export, not the model list, not a byte of the data dir (store, uploads, logs).
    assert {r["auth"] for r in provider.script.requests} == {f"Bearer {SECRET}"}
    for text in (asked.stdout, asked.stderr, exported.stdout, exported.stderr, listed.stdout):
        assert SECRET not in text
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert files and not [path for path in files if SECRET.encode() in path.read_bytes()]


def test_cli_over_limit_images_are_one_line_and_never_sent(provider, tmp_path, write_png):
    env = {**os.environ, "L4P_DATA_DIR": str(tmp_path), KEY_ENV: SECRET}
    images = [arg for i in range(6) for arg in ("--image", str(write_png(f"{i}.png")))]
    result = cli("ask", "--endpoint", provider.url, "--provider", PROVIDER, *images, "describe", env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: request has 6 images; this server takes 5")
    assert LABEL in result.stderr
    assert provider.script.chat_requests == []


# -- comparing the embedded model with a hosted one -------------------------------


def test_cli_compare_embedded_model_against_a_hosted_preset(provider, tmp_path):
    from sessions import Store

    env = {**os.environ, "L4P_DATA_DIR": str(tmp_path), KEY_ENV: SECRET, **OFFLINE}
    args = ("--endpoint", provider.url, "--provider", PROVIDER, "--model", "smollm2-135m")
    args += ("--max-tokens", "24")
    result = cli("compare", *args, "--json", "What is the capital of France?", env=env)
    assert result.returncode == 0, result.stderr
    columns = {row["model"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert list(columns) == [PRESET, "smollm2-135m"]
    hosted_column, local = columns[PRESET], columns["smollm2-135m"]
    assert hosted_column["text"] == "".join(ANSWER) and hosted_column["prompt_tokens"] == 1234
    assert hosted_column["n_ctx"] == 131072 and hosted_column["error"] is None
    assert "Paris" in local["text"] and local["finish_reason"] in ("stop", "length")
    with Store(tmp_path) as store:
        answers = {row.engine_id: row for row in store.all_messages(hosted_column["session_id"])}
    assert answers[PRESET].prompt_tokens == 1234


def test_page_compare_embedded_model_against_a_hosted_preset(provider, monkeypatch):
    from gradio_client import Client

    from tests.app.test_compare_ui import CHATS, METRICS, NOTICE, TITLES, answer_text, compare
    from tests.conftest import start_app, stop_app

    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.setenv("L4P_CHECK_SERVERS", "0")  # openrouter-maverick's real host is not asked
    proc, url = start_app("--endpoint", provider.url, "--provider", PROVIDER)
    try:
        client = Client(url, verbose=False)
        out = compare(client, "What is the capital of France?", ["smollm2-135m", PRESET])
        assert out[NOTICE] == ""
        titles, chats, metrics = list(out[TITLES]), list(out[CHATS]), list(out[METRICS])
        assert titles[1] == f"**Model B: {LABEL}**"
        assert "Paris" in answer_text(chats[0]) and answer_text(chats[1]) == "".join(ANSWER)
        assert "1234 + 3 tokens" in metrics[1] and "context 1,237/131,072" in metrics[1]
        assert len(provider.script.chat_requests) == 1
    finally:
        stop_app(proc)
    assert SECRET not in proc.stdout.read()  # nor in the server's log
