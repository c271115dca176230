"""OCR of scanned pages: our pipeline against raw PyMuPDF + Tesseract (and the plain
`tesseract` command when one is installed), on scans made from real text PDFs in
English, French, Russian and Chinese (tests/fixtures/scans.py), each page clean and
poor (grey, turned 1.5 degrees, JPEG quality 40), Latin-script ones also scanned on
their side (turned 90 degrees: ours finds which way up, documents/rotation.py),
interleaved, the order alternating.

ours:       parse_document in a document worker: text layer, then OCR of the pages
            without one (documents/ocr.py: 300 DPI capped at 12 MP, fork per page).
raw-72:     page.get_textpage_ocr(full=True) as PyMuPDF's defaults have it (72 DPI).
raw-300:    the same at 300 DPI, in this process (ours without the worker and bounds).
tesseract:  the page image through the `tesseract` command (skipped when absent).

Scores: word recall and precision against the text PDF's own text (a CJK character
counts as a word), all pages and Latin-script ones; seconds a page (median).

    python bench/ocr.py [--reps 1]

Last line: {"ours": {"recall": ..., "recall_latin": ..., "precision": ..., "s_page": ...}, ...}"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from documents import ocr, workers
from documents.reader import parse_document
from tests.fixtures import scans


def corpus() -> list[tuple[str, str, bytes]]:
    """(label, language, text PDF)."""
    docs = [(f"udhr-{lang}", lang, scans.udhr_pdf(lang, 2 if lang == "en" else 1)) for lang in scans.UDHR]
    apache = scans.licence_pages("Apache-2.0", pages=2, lines_per_page=40)
    if apache:
        docs.append(("apache-2.0", "en", scans.text_pdf(apache, font_px=12)))
    return docs


def ours(scanned: bytes) -> list[str]:
    return [page.text for page in parse_document(scanned, "scan.pdf").pages]


def raw(scanned: bytes, dpi: int) -> list[str]:
    import pymupdf

    folder = ocr.tessdata_folder(ocr.current())
    language = ocr.language_spec(ocr.current(), folder)  # the languages ours reads with
    with pymupdf.open(stream=scanned, filetype="pdf") as doc:
        texts = []
        for page in doc:
            textpage = page.get_textpage_ocr(language=language, dpi=dpi, full=True, tessdata=folder)
            texts.append(page.get_text(textpage=textpage))
        return texts


def plain_tesseract(scanned: bytes) -> list[str]:
    import pymupdf

    texts = []
    with tempfile.TemporaryDirectory() as tmp, pymupdf.open(stream=scanned, filetype="pdf") as doc:
        for page in doc:
            image = Path(tmp) / "page.png"
            page.get_pixmap(dpi=300).save(image)
            command = ["tesseract", str(image), "stdout", "-l", "eng"]
            done = subprocess.run(command, capture_output=True, text=True)
            texts.append(done.stdout)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--tessdata", default="", help="a .traineddata folder (setup-ocr's)")
    args = parser.parse_args()
    ocr.configure(ocr.OcrSettings(tessdata=args.tessdata))
    print("languages:", ocr.language_spec(ocr.current(), ocr.tessdata_folder(ocr.current())), file=sys.stderr)
    workers.configure(1)
    engines = {"ours": ours, "raw-72": lambda s: raw(s, 72), "raw-300": lambda s: raw(s, 300)}
    if shutil.which("tesseract"):
        engines["tesseract"] = plain_tesseract
    else:
        print("tesseract: not installed here, left out", file=sys.stderr)
    scores = {
        name: {"all": [], "latin": [], "precision": [], "precision_latin": [], "seconds": []}
        for name in engines
    }
    turn = 0
    for label, language, pdf in corpus():
        truth = scans.pages_text(pdf)
        kinds = [("clean", scans.CLEAN), ("poor", scans.POOR)]
        kinds += [("turned", scans.TURNED)] if language in scans.LATIN else []
        for scan_name, scan in kinds:
            scanned = scans.scanned_pdf(pdf, scan)
            for _ in range(args.reps):
                order = list(engines) if turn % 2 == 0 else list(reversed(engines))
                turn += 1
                for name in order:
                    started = time.perf_counter()
                    texts = engines[name](scanned)
                    seconds = (time.perf_counter() - started) / len(texts)
                    row = scores[name]
                    row["seconds"].append(seconds)
                    for original, found in zip(truth, texts, strict=True):
                        recall, precision, words = scans.recall_precision(original, found)
                        read = len(scans.words(found))  # precision is over the words read
                        row["all"].append((recall, words))
                        row["precision"].append((precision, read))
                        if language in scans.LATIN:
                            row["latin"].append((recall, words))
                            row["precision_latin"].append((precision, read))
                    shown = f"{label} {scan_name} {name}: recall {recall:.3f} {seconds:.2f} s/page"
                    print(shown, file=sys.stderr)
    workers.configure(None)
    summary = {}
    for name, row in scores.items():
        summary[name] = {
            "recall": weighted(row["all"]),
            "recall_latin": weighted(row["latin"]),
            "precision": weighted(row["precision"]),
            "precision_latin": weighted(row["precision_latin"]),
            "s_page": round(statistics.median(row["seconds"]), 2),
        }
        print(f"{name}: {summary[name]}")
    print(json.dumps(summary))


def weighted(pairs: list[tuple[float, int]]) -> float:
    total = sum(words for _, words in pairs)
    return round(sum(value * words for value, words in pairs) / total, 3) if total else 0.0


if __name__ == "__main__":
    main()
