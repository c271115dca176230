"""What the input's attachment chips say (chat/attachments.py, app/render.py): name,
size, and pages of a real PDF (its page tree, in a document worker) or pixels of an
image (its header); a file the question will refuse says why, never a traceback."""

from __future__ import annotations

from app.render import attachment_chips
from chat.attachments import Attachment, describe_upload, size_text
from tests.conftest import png_bytes
from tests.fixtures.bad_documents import encrypted_pdf
from tests.fixtures.documents import text_pdf


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_a_pdf_chip_counts_its_pages(tmp_path):
    data = text_pdf(["one", "two", "three"])
    chip = describe_upload(write(tmp_path, "report.pdf", data))
    assert chip == Attachment("report.pdf", len(data), "3 pages")
    one = describe_upload(write(tmp_path, "note.pdf", text_pdf(["only"])))
    assert one.detail == "1 page"


def test_an_image_chip_reads_pixels_from_the_header(tmp_path):
    chip = describe_upload(write(tmp_path, "wide.png", png_bytes(120, 40)))
    assert (chip.name, chip.detail) == ("wide.png", "120×40 px")


def test_files_the_question_refuses_say_why_in_one_line(tmp_path):
    locked = describe_upload(write(tmp_path, "locked.pdf", encrypted_pdf()))
    assert locked.detail == "locked: needs its password"
    fake = describe_upload(write(tmp_path, "photo.png", b"not an image at all"))
    assert fake.detail.startswith("⚠️ photo.png") and "\n" not in fake.detail
    lying = describe_upload(write(tmp_path, "report.pdf", png_bytes(10, 10)))
    assert lying.detail.startswith("⚠️ report.pdf is not a PDF")
    gone = describe_upload(str(tmp_path / "gone.png"))
    assert gone.detail == "no longer here: attach it again"


def test_a_pdf_too_large_to_count_is_named_and_sized_only(tmp_path):
    data = text_pdf(["one", "two"])
    chip = describe_upload(write(tmp_path, "big.pdf", data), max_bytes=len(data) - 1)
    assert chip == Attachment("big.pdf", len(data), "")


def test_sizes_read_as_a_person_reads_them():
    assert [size_text(n) for n in (812, 14_200, 3_100_000)] == ["812 B", "14.2 kB", "3.1 MB"]


def test_chips_escape_names_and_number_their_remove_buttons():
    shown = attachment_chips([Attachment("<b>x</b>.png", 2048, "4×4 px"), Attachment("r.pdf", 10, "2 pages")])
    assert "<b>x</b>" not in shown and "&lt;b&gt;x&lt;/b&gt;.png</span> · 2.0 kB · 4×4 px" in shown
    assert (
        "data-index='0'" in shown and "data-index='1'" in shown and "r.pdf</span> · 10 B · 2 pages" in shown
    )
    assert attachment_chips([]) == ""
