"""Document ingest against raw PyMuPDF on the same 500-page PDF, in one run.

raw:  pymupdf.open + page.get_text() for every page (the floor: nothing but extraction)
ours: Store.ingest_document: parse_document (sniffing, per-page text, vision detection,
      progress and cancel checks) + storing the document and its pages (FTS5 indexed).

Repetitions are interleaved and the order alternates because the host is noisy.
Targets: ratio (raw / ours) >= 0.8 and ours under 5 s.

    python bench/ingest.py [--pages 500] [--reps 5]

Last line: {"ratio": ..., "seconds": ..., "pages": ...}"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions import Store
from tests.fixtures.documents import page_sentence, text_pdf

PARAGRAPH = (
    "The keeper climbed the tower at dusk, trimmed the wick and logged the wind, the swell "
    "and every ship that passed the point before the fog came in from the north. "
)


def build_pdf(pages: int) -> bytes:
    """Full pages of prose (about 3,000 characters each), each naming its number."""
    return text_pdf([page_sentence(n) + "\n" + PARAGRAPH * 18 for n in range(1, pages + 1)], fontsize=9)


def raw_pymupdf(data: bytes) -> int:
    import pymupdf

    with pymupdf.open(stream=data, filetype="pdf") as doc:
        return sum(len(page.get_text()) for page in doc)


def ours(data: bytes, store: Store) -> int:
    """What attaching a document does: parse it and keep it in the open session store
    (the bytes, a documents row, every page row and its FTS5 entry, one transaction)."""
    doc = store.ingest_document(
        data, "bench.pdf", progress=lambda fraction, message: None, cancel=threading.Event()
    )
    return doc.chars


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    data = build_pdf(args.pages)
    built_s = time.perf_counter() - started
    print(f"built a {args.pages}-page PDF ({len(data) / 1e6:.1f} MB) in {built_s:.1f} s", file=sys.stderr)
    raw_times, our_times = [], []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, ExitStack() as stores:
        # One store per repetition, opened beforehand (the app opens its store once), so
        # the document is new to each and the timing is the ingest alone.
        fresh = [stores.enter_context(Store(Path(tmp) / f"store-{n}")) for n in range(args.reps + 1)]
        raw_pymupdf(data), ours(data, fresh[-1])  # imports and caches, untimed
        for rep in range(args.reps):
            runs = [("raw", lambda: raw_pymupdf(data)), ("ours", lambda store=fresh[rep]: ours(data, store))]
            for name, run in runs if rep % 2 == 0 else runs[::-1]:
                t0 = time.perf_counter()
                chars = run()
                (raw_times if name == "raw" else our_times).append(time.perf_counter() - t0)
                assert chars > args.pages * 2000, "every page has its text"
            print(f"rep {rep}: raw {raw_times[-1]:.3f} s, ours {our_times[-1]:.3f} s", file=sys.stderr)
    raw_s, ours_s = statistics.median(raw_times), statistics.median(our_times)
    print(f"median: raw PyMuPDF {raw_s:.3f} s, parse + store {ours_s:.3f} s", file=sys.stderr)
    print(json.dumps({"ratio": round(raw_s / ours_s, 4), "seconds": round(ours_s, 3), "pages": args.pages,
                      "raw_seconds": round(raw_s, 3), "reps": args.reps}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
