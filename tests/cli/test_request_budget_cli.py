"""The one request budget from the command line: `ask` with --image/--file and
`sessions import` refuse an over-budget request with one line and exit 2, store
nothing, and take the budget's flags (before or after the command)."""

from __future__ import annotations

import io
import json
import time

import pytest

from documents.parts import ChatMessage
from engine.images import load_image_file
from sessions import Store
from tests.cli.test_sessions_cli import cli


def refused(result, needle: str) -> None:
    assert result.returncode == 2, result.stderr[-500:]
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr[-500:]


def nothing_stored(data_dir) -> bool:
    with Store(data_dir) as store:
        return store.list_sessions() == []


@pytest.fixture(scope="module")
def big_gifs(tmp_path_factory) -> list[str]:
    from PIL import Image

    out = io.BytesIO()
    Image.new("P", (6000, 6000), 0).save(out, "GIF")
    folder = tmp_path_factory.mktemp("gifs")
    for n in range(40):
        (folder / f"{n}.gif").write_bytes(out.getvalue())
    return [str(folder / f"{n}.gif") for n in range(40)]


def test_ask_refuses_40_big_gifs_to_a_text_only_model_at_once(tmp_path, big_gifs):
    started = time.monotonic()
    result = cli(tmp_path, "ask", *(arg for path in big_gifs for arg in ("--image", path)), "what?")
    took = time.monotonic() - started
    refused(result, "cannot see images")
    assert took < 30, took  # the process's start included; decoding them first took longer
    assert nothing_stored(tmp_path)


def test_ask_takes_the_budget_flags_before_or_after_the_command(tmp_path):
    prompt = "x" * 2_000
    after = cli(tmp_path, "ask", "--max-request-chars", "1000", prompt)
    refused(after, "request has 2,000 characters; this server takes 1,000 (--max-request-chars)")
    before = cli(tmp_path, "--max-request-chars", "1000", "ask", prompt)
    refused(before, "request has 2,000 characters; this server takes 1,000")
    assert nothing_stored(tmp_path)


def test_ask_refuses_more_images_than_the_budget(tmp_path, tiny_llama4, write_png):
    model, mmproj = tiny_llama4
    images = [arg for n in range(3) for arg in ("--image", str(write_png(f"{n}.png")))]
    result = cli(
        tmp_path, "ask", "--model-path", str(model), "--mmproj", str(mmproj),
        "--max-request-images", "2", *images, "what?",
    )  # fmt: skip
    refused(result, "request has 3 images; this server takes 2 (--max-request-images)")
    assert nothing_stored(tmp_path)


@pytest.fixture(scope="module")
def export_with_images(tmp_path_factory, write_png_module) -> str:
    source = tmp_path_factory.mktemp("source")
    with Store(source) as store:
        session = store.create_session(title="photos")
        images = tuple(load_image_file(write_png_module(f"{n}.png", 300, 200)) for n in range(3))
        message = ChatMessage("user", (*images, *ChatMessage.text("user", "x" * 500).parts))
        store.add_user_message(session, None, message)
        path = source / "export.json"
        path.write_text(json.dumps(store.export_json(session)))
    return str(path)


@pytest.fixture(scope="module")
def write_png_module(tmp_path_factory):
    from tests.conftest import png_bytes

    folder = tmp_path_factory.mktemp("pngs")

    def write(name: str, width: int, height: int):
        path = folder / name
        path.write_bytes(png_bytes(width, height))
        return path

    return write


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--max-request-chars", "100"], "request has 500 characters; this server takes 100"),
        (["--max-request-images", "2"], "request has 3 images; this server takes 2"),
        (["--max-image-pixels", "50000"], "image 1 is 300x200 = 60,000 pixels; this server takes 50,000"),
        (["--max-request-pixels", "100000"], "request's images declare 180,000 pixels"),
    ],
    ids=["chars", "images", "pixels-per-image", "pixels-in-all"],
)
def test_sessions_import_keeps_to_the_budget(tmp_path, export_with_images, flags, needle):
    refused(cli(tmp_path, "sessions", "import", *flags, export_with_images), needle)
    assert nothing_stored(tmp_path)
    assert cli(tmp_path, "sessions", "import", export_with_images).returncode == 0  # within the defaults
