"""Page renders while another document is being read: one process-wide MuPDF lock
(the anchor, L4P_DOC_WORKERS=0) against the pool of worker processes, in one run.

A long PDF is read (parse_document, as an upload's ingest) while another thread draws
pages of a short PDF one after another, as a second user looking at a page would.
Under the lock each render waits for the whole ingest; in the pool it takes a worker
of its own. Repetitions are interleaved and alternate in order (the host is noisy).

    python bench/documents_parallel.py [--pages 1000] [--reps 3] [--workers 2]

Last line: {"first_render_ms_lock": ..., "first_render_ms_pool": ..., "ratio": lock / pool,
"renders_during_ingest_*", "ingest_s_*", ...}. Target: ratio >= 10 and the ingest no slower
than 1.25x under the pool."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import build_pdf
from documents import workers
from documents.reader import parse_document, render_page
from tests.fixtures.documents import page_sentence, text_pdf

VIEWING_S = 0.1  # between one user's page renders


def one_run(long_pdf: bytes, short_pdf: bytes) -> tuple[float, list[float]]:
    """(ingest seconds, the latency of each render made while the ingest was going;
    the first starts as the ingest reports its first page)."""
    started, finished = threading.Event(), threading.Event()
    ingest: dict[str, float] = {}

    def read() -> None:
        t0 = time.perf_counter()
        parse_document(long_pdf, "long.pdf", progress=lambda fraction, message: started.set())
        ingest["s"] = time.perf_counter() - t0
        finished.set()

    reader = threading.Thread(target=read)
    reader.start()
    started.wait()
    latencies = []
    while not latencies or not finished.is_set():
        t0 = time.perf_counter()
        render_page(short_pdf, len(latencies) % 3 + 1, name="short.pdf")
        latencies.append(time.perf_counter() - t0)
        finished.wait(VIEWING_S)  # a person turning pages, not a tight loop
    reader.join()
    return ingest["s"], latencies


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=workers.default_size())
    args = parser.parse_args()
    size = max(2, args.workers)  # one for the ingest, one for the renders

    long_pdf = build_pdf(args.pages)
    short_pdf = text_pdf([page_sentence(n) for n in range(1, 4)])
    print(f"built a {args.pages}-page PDF ({len(long_pdf) / 1e6:.1f} MB)", file=sys.stderr)
    results: dict[str, dict[str, list[float]]] = {
        m: {"ingest": [], "first": [], "count": []} for m in ("lock", "pool")
    }
    modes = {"lock": 0, "pool": size}
    warm_pdf = build_pdf(20)
    for rep in range(args.reps):
        for mode in ("lock", "pool") if rep % 2 == 0 else ("pool", "lock"):
            workers.configure(modes[mode])
            one_run(warm_pdf, short_pdf)  # untimed: imports, caches, the pool's workers started
            ingest_s, latencies = one_run(long_pdf, short_pdf)
            results[mode]["ingest"].append(ingest_s)
            results[mode]["first"].append(latencies[0])
            results[mode]["count"].append(len(latencies))
            print(
                f"rep {rep} {mode}: ingest {ingest_s:.2f} s, first render {latencies[0] * 1000:.0f} ms, "
                f"{len(latencies)} renders during the ingest",
                file=sys.stderr,
            )
    workers.configure(None)
    summary: dict[str, float | int] = {"pages": args.pages, "reps": args.reps, "workers": size}
    for mode, measured in results.items():
        summary[f"first_render_ms_{mode}"] = round(statistics.median(measured["first"]) * 1000, 1)
        summary[f"renders_during_ingest_{mode}"] = int(statistics.median(measured["count"]))
        summary[f"ingest_s_{mode}"] = round(statistics.median(measured["ingest"]), 3)
    summary["ratio"] = round(summary["first_render_ms_lock"] / summary["first_render_ms_pool"], 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
