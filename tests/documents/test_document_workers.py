"""Documents read and drawn in worker processes: a long ingest does not hold another
document's page render, Stop and progress cross the process boundary, workers are
replaced after their task limit, when they run out of memory and when they die, and
the pool can be turned off (everything in this process, one document at a time)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from documents import workers
from documents.reader import DocumentError, IngestCancelled, parse_document, render_page
from tests.fixtures import attack_documents as attack
from tests.fixtures.documents import blank_pages_pdf, page_sentence, text_pdf

GUARD_S = 120  # only so a regression fails instead of hanging; never reached when it works


@pytest.fixture
def pool_of():
    def configure(size: int, **limits) -> workers.DocumentWorkers | None:
        workers.configure(size, **limits)
        return workers.shared()

    yield configure
    workers.configure(None)


@pytest.fixture(scope="module")
def short_pdf() -> bytes:
    return text_pdf([page_sentence(n) for n in range(1, 4)])


def test_a_page_renders_while_another_document_is_being_read(pool_of, short_pdf):
    pool_of(2)
    reading, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def hold(fraction: float, message: str) -> None:
        reading.set()
        release.wait(GUARD_S)  # the ingest cannot end while its progress is held

    def ingest() -> None:
        outcome["pages"] = len(parse_document(blank_pages_pdf(400), "long.pdf", progress=hold).pages)

    reader = threading.Thread(target=ingest)
    reader.start()
    assert reading.wait(GUARD_S), "the ingest started"
    renderer = threading.Thread(target=lambda: outcome.update(image=render_page(short_pdf, 2, name="s.pdf")))
    renderer.start()
    renderer.join(GUARD_S)
    try:
        assert not renderer.is_alive(), "the render waited for the other document's ingest"
        assert reader.is_alive() and "pages" not in outcome, "the ingest was still going"
        assert outcome["image"].width > 300
    finally:
        release.set()
        reader.join(GUARD_S)
    assert outcome["pages"] == 400


def test_stop_crosses_the_process_boundary_and_the_worker_is_kept(pool_of, short_pdf):
    pool = pool_of(1)
    cancel = threading.Event()
    seen: list[float] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(fraction)
        if len(seen) == 3:
            cancel.set()

    with pytest.raises(IngestCancelled, match=r"^reading long.pdf was cancelled$"):
        parse_document(blank_pages_pdf(600), "long.pdf", progress=progress, cancel=cancel)
    assert len(seen) == 3, "no progress is shown after Stop"
    assert len(parse_document(short_pdf, "short.pdf").pages) == 3
    assert pool.started == 1, "a cancelled read leaves its worker usable"


def test_workers_are_replaced_after_their_task_limit(pool_of, short_pdf):
    pool = pool_of(1, max_tasks=2)
    sizes = {render_page(short_pdf, n % 3 + 1, name="s.pdf").width for n in range(5)}
    assert len(sizes) == 1 and pool.started == 3  # tasks 1-2, 3-4, 5


def test_a_worker_out_of_memory_refuses_in_one_line_and_the_next_works(pool_of, short_pdf):
    """The backstop under the pixel checks: with the limit lifted, a 400 MP PNG inside
    a CBZ fails to allocate in a worker capped at 512 MB, instead of taking the host."""
    pool = pool_of(1, memory_mb=512)
    with pytest.raises(DocumentError) as refused:
        render_page(attack.cbz_image_bomb(), 1, name="c.cbz", max_pixels=10**12)
    assert (
        str(refused.value) == "c.cbz cannot be read: it needs more than the 512 MB a document reader may take"
    )
    assert render_page(short_pdf, 1, name="s.pdf").width > 300
    assert pool.started == 2


def worker_pids() -> list[int]:
    """This process's document workers, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"documents.workers" in command:
            found.append(int(entry.name))
    return found


def test_a_worker_that_dies_mid_read_is_one_line_and_replaced(pool_of, short_pdf):
    pool = pool_of(1)
    parse_document(short_pdf, "short.pdf")  # the worker is started, and known
    (worker,) = worker_pids()
    killed: list[int] = []

    def kill_the_worker(fraction: float, message: str) -> None:
        if not killed:  # at the first 1% of 2,000 pages: the read is far from done
            os.kill(worker, signal.SIGKILL)
            killed.append(worker)

    with pytest.raises(
        DocumentError, match=r"^long.pdf cannot be read: the document reader was stopped by signal 9"
    ):
        parse_document(blank_pages_pdf(2000), "long.pdf", progress=kill_the_worker)
    assert killed == [worker] and worker not in worker_pids()
    assert len(parse_document(short_pdf, "short.pdf").pages) == 3
    assert pool.started == 2


def test_without_a_pool_documents_are_read_in_this_process(pool_of, short_pdf):
    assert pool_of(0) is None
    assert len(parse_document(short_pdf, "short.pdf").pages) == 3
    assert render_page(short_pdf, 1, name="s.pdf").width > 300
    assert worker_pids() == []


def test_a_worker_keeps_documents_open_and_resends_when_it_closed_one(pool_of, short_pdf):
    """B is drawn, then A fails (its worker holds it all the same), then C: the worker
    closes B, not A, while the caller still thinks it holds B. Drawing B again must
    fall back to sending its bytes."""
    pool_of(1)
    a_pdf, c_pdf = text_pdf(["a"]), text_pdf(["c", "c"])
    first = render_page(short_pdf, 1, name="b.pdf")
    with pytest.raises(DocumentError, match=r"^a.pdf has no page 9 \(it has 1\)$"):
        render_page(a_pdf, 9, name="a.pdf")
    render_page(c_pdf, 2, name="c.pdf")
    assert render_page(short_pdf, 1, name="b.pdf").data == first.data
    assert render_page(short_pdf, 2, name="b.pdf").data != first.data


def test_a_document_kept_open_with_its_password_does_not_open_without_it(pool_of):
    from documents.reader import PasswordRequired
    from tests.fixtures.bad_documents import encrypted_pdf

    pool_of(1)
    locked = encrypted_pdf()
    assert render_page(locked, 1, name="locked.pdf", password="s3cret").width > 300
    with pytest.raises(PasswordRequired, match=r"^locked.pdf is encrypted; give its password$"):
        render_page(locked, 1, name="locked.pdf")
