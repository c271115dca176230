"""Hostile documents, page ranges and imports: each refused with one line, in bounded
memory, and the next valid request still works.

Each attack runs in a subprocess started by a small wrapper that caps its address
space (a regression fails there instead of taking the machine) and reports the peak
resident memory of everything it ran (ru_maxrss of its children: the CLI or script,
and the document workers they start)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import textwrap

import pytest

from errors import UserError
from tests.conftest import REPO, png_bytes
from tests.fixtures import attack_documents as attack
from tests.fixtures.documents import page_sentence, text_pdf

PEAK_MB = 500
WRAPPER = """
import json, resource, subprocess, sys
cap = 6 << 30
def limit():
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
done = subprocess.run(sys.argv[1:], preexec_fn=limit, capture_output=True, text=True, timeout=240)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
print(json.dumps({"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr, "peak_mb": peak}))
"""


def measured(*command: str) -> dict:
    """rc, stdout, stderr and peak_mb of `command` run under the wrapper."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def launch(*args: str) -> dict:
    return measured(sys.executable, "launch.py", *args)


def script(code: str) -> dict:
    return measured(sys.executable, "-c", textwrap.dedent(code))


def assert_one_line_refusal(result: dict, expected: str) -> None:
    assert result["rc"] == 2, result
    assert result["stderr"].startswith("error: ") and expected in result["stderr"], result["stderr"]
    assert result["stderr"].count("\n") == 1 and "Traceback" not in result["stderr"]


@pytest.fixture(scope="module")
def good_pdf(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "good.pdf"
    path.write_bytes(text_pdf([page_sentence(n) for n in range(1, 4)]))
    return path


CLI_ATTACKS = {
    "zip-bomb-epub": (
        "book.epub",
        attack.zip_bomb_epub,
        "book.epub unpacks to 3.0 GiB, over the 1.0 GiB limit for a document",
    ),
    "header-lies-about-size": (
        "comic.cbz",
        attack.lying_cbz,
        "comic.cbz is a ZIP bomb: page001.png declares 1,000 bytes but inflates to more",
    ),
    "many-entries": (
        "pages.cbz",
        attack.many_entries_zip,
        "pages.cbz holds 20,000 files; the limit for a document is 10,000",
    ),
    "svg-inside-epub": (
        "book.epub",
        attack.epub_svg_image_bomb,
        "book.epub (drawing.svg) holds an image, over the 40,000,000 pixel limit",
    ),
    "svg-data-uri-bomb": (
        "drawing.svg",
        attack.svg_image_bomb,
        "drawing.svg holds an image, over the 40,000,000 pixel limit",
    ),
}


@pytest.mark.parametrize("label", sorted(CLI_ATTACKS))
def test_doc_refuses_archive_bombs_in_one_line_and_bounded_memory(tmp_path, good_pdf, label):
    name, make, expected = CLI_ATTACKS[label]
    path = tmp_path / name
    path.write_bytes(make())
    data_dir = str(tmp_path / "data")
    refused = launch("--data-dir", data_dir, "doc", str(path))
    assert_one_line_refusal(refused, expected)
    assert refused["peak_mb"] < PEAK_MB, f"{label} took {refused['peak_mb']} MB"
    after = launch("--data-dir", data_dir, "doc", str(good_pdf), "--json")
    assert after["rc"] == 0, after["stderr"]
    assert json.loads(after["stdout"].splitlines()[-1])["pages"] == 3


RENDER_ATTACKS = {
    "cbz": ("comic.cbz", "cbz_image_bomb"),
    "epub": ("book.epub", "epub_image_bomb"),
    "xps": ("page.xps", "xps_image_bomb"),
}


@pytest.mark.parametrize("kind", sorted(RENDER_ATTACKS))
def test_image_bombs_inside_archives_are_refused_when_drawn(kind):
    """The page's text reads (nothing is decoded for that); drawing it is refused from
    the image's header, and a valid page draws afterwards in the same process."""
    name, maker = RENDER_ATTACKS[kind]
    result = script(
        f"""
        from documents.reader import DocumentError, parse_document, render_page
        from tests.fixtures import attack_documents as attack
        from tests.fixtures.documents import page_sentence, text_pdf
        data = attack.{maker}()
        print("pages", len(parse_document(data, {name!r}).pages))
        try:
            render_page(data, 1, name={name!r})
            print("drawn")
        except DocumentError as exc:
            print("refused", exc)
        good = render_page(text_pdf([page_sentence(1)]), 1, name="good.pdf")
        print("next", good.width, good.height)
        """
    )
    assert result["rc"] == 0, result["stderr"]
    lines = result["stdout"].splitlines()
    side = f"{attack.BOMB_PNG_SIDE:,}"
    assert lines[0] == "pages 1"
    assert lines[1] == (
        f"refused {name} p. 1 holds an image of {side}x{side} pixels, over the 40,000,000 pixel limit"
    )
    assert lines[2].startswith("next ") and int(lines[2].split()[1]) > 300
    assert result["peak_mb"] < PEAK_MB, f"{kind} took {result['peak_mb']} MB"


def test_a_long_page_range_is_refused_at_once(good_pdf):
    long_range = attack.long_page_range()
    assert len(long_range) >= 64_000
    refused = launch("ask", "--file", str(good_pdf), "--pages", long_range, "what is on page 2?")
    assert_one_line_refusal(refused, f"the page range is {len(long_range):,} characters; the limit is 1,000")
    assert refused["peak_mb"] < PEAK_MB
    result = script(
        f"""
        from documents.context import parse_page_range
        from errors import UserError
        for text in ({long_range!r}, "1-99999,100001-199999", "1-20, 31"):
            try:
                print(len(parse_page_range(text)))
            except UserError as exc:
                print(exc)
        """
    )
    assert result["stdout"].splitlines()[1:] == [
        "the page range names 199,998 pages; the limit is 100,000",
        "21",
    ]
    assert result["peak_mb"] < PEAK_MB


def export_with_image(data: bytes) -> dict:
    sha = hashlib.sha256(data).hexdigest()
    when = "2026-01-01T00:00:00+00:00"
    return {
        "format": "llama4-playground/session",
        "version": 1,
        "session": {"title": "imported", "model": "", "settings": {}, "created": when, "updated": when},
        "messages": [
            {
                "id": 1,
                "parent_id": None,
                "role": "user",
                "created": when,
                "status": "complete",
                "parts": [{"text": "look"}, {"image": sha, "name": "picture.png"}],
            }
        ],
        "attachments": {
            sha: {"mime": "image/png", "width": 4, "height": 4, "data": base64.b64encode(data).decode()}
        },
    }


def test_sessions_import_checks_images_like_uploads(tmp_path):
    data_dir = str(tmp_path / "data")
    bomb = tmp_path / "bomb.json"
    bomb.write_text(json.dumps(export_with_image(attack.bomb_png())))
    refused = launch("--data-dir", data_dir, "sessions", "import", str(bomb))
    assert_one_line_refusal(refused, "declares too many pixels to open safely")
    assert refused["peak_mb"] < PEAK_MB
    big = tmp_path / "big.json"  # under Pillow's own bomb limit, over ours
    big.write_text(json.dumps(export_with_image(png_bytes(8000, 6000))))
    assert_one_line_refusal(
        launch("--data-dir", data_dir, "sessions", "import", str(big)),
        "is 8,000x6,000 = 48,000,000 pixels; this server takes 40,000,000 per image",
    )
    listed = launch("--data-dir", data_dir, "sessions", "list", "--json")
    assert listed["rc"] == 0 and "imported" not in listed["stdout"], "nothing half-written"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(export_with_image(png_bytes(4, 4))))
    imported = launch("--data-dir", data_dir, "sessions", "import", str(good))
    assert imported["rc"] == 0, imported["stderr"]


def test_an_imported_document_part_cannot_name_pages_its_document_lacks(tmp_path):
    from sessions import Store

    with Store(tmp_path / "store") as store:
        pdf = text_pdf([page_sentence(1), page_sentence(2)])
        sha = hashlib.sha256(pdf).hexdigest()
        export = export_with_image(png_bytes(4, 4))
        export["attachments"][sha] = {"document": "two.pdf", "data": base64.b64encode(pdf).decode()}
        part = {"document": sha, "name": "two.pdf", "total_pages": 2, "text_pages": [1, 2_000_000]}
        export["messages"][0]["parts"].append(part)

        with pytest.raises(UserError, match=r"document 'two.pdf' has 2 pages, not the pages"):
            store.import_json(export)
        part["text_pages"] = [1, 2]
        session_id = store.import_json(export)
        assert store.all_messages(session_id)[0].parts[-1].pages == (1, 2)
