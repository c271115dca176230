"""Which pages go when a document does not fit: recall@k of the pages ranked for a
question, over real text (the GPL-3 and Apache-2.0 licences a Debian system carries,
laid out as PDFs), as typed PDFs and as poor scans of them.

A question set of our own: each question, worded as a user would ask it (not copied
from the licence), names a passage that answers it; the pages holding the passage are
the pages that answer. recall@k: of those pages, the share ranked in the first k,
averaged over the questions.

today:    FTS5 bm25 over the stored text layer (sessions/documents.py rank), pages in
          order when nothing matches (what documents/context.py then sends); on a scan
          there is no text layer, so pages go in order.
ocr:      the same ranking over page text including OCR (documents/ocr.py).
bm25-py:  Okapi BM25 (k1 1.2, b 0.75) without stemming over the same text, as a check
          on FTS5's porter-stemmed ranking.

    python bench/page_selection.py [--k 1 3 5]

Last line: {"questions": ..., "pages": ..., "recall@3": {"text/today": ..., ...}, ...}"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from documents import ocr
from sessions import Store
from sessions.documents import STOPWORDS
from tests.fixtures import scans

QUESTIONS = {
    "GPL-3": [
        ("Can I charge money for the copies I give to people?", "You may charge any price or no price"),
        ("What must I provide when I ship only compiled binaries?", "Conveying Non-Source Forms"),
        ("If I break the rules, can I lose my rights under it?", "You may not propagate or modify a covered"),
        ("Is there anything about DRM and laws against circumventing it?", "Protecting Users' Legal Rights"),
        ("What install information must a consumer device come with?", '"Installation Information" for'),
        ("May I add extra permissions on top of the licence?", '"Additional permissions" are terms'),
        ("Do contributors give me rights to their patents?", "Each contributor grants you a non-exclusive"),
        ("Can I link this code with Affero-licensed code?", "Use with the GNU Affero General Public"),
        ("How is source code defined?", 'The "source code" for a work means'),
        ("Must I agree to these terms just to run the program?", "You are not required to accept this"),
        ("Who can publish newer versions of the licence?", "Revised Versions of this License"),
        ("How should I apply these terms to a new program I write?", "How to Apply These Terms to Your New"),
        ("What if a court order contradicts the licence conditions?", "If conditions are imposed on you"),
    ],
    "Apache-2.0": [
        ("Do contributors give me a license to their patents?", "Grant of Patent License"),
        ("What happens to my patent rights if I sue over infringement?", "institute patent litigation"),
        ("Do I have to keep the NOTICE file when redistributing?", 'If the Work includes a "NOTICE"'),
        ("Am I allowed to use the licensor's trademarks?", "This License does not grant permission to use"),
        ("Does the software come with any warranty?", "Disclaimer of Warranty"),
        ("Can a contributor be held liable for damages?", "Limitation of Liability"),
        ("Can I sell support or warranties for the software?", "Accepting Warranty or Additional Liability"),
        ("How do I put my own project under this license?", "How to apply the Apache License to your work"),
        ("What counts as a derivative work?", '"Derivative Works" shall mean'),
        ("Are my patches covered by the license when I send them in?", "Submission of Contributions"),
    ],
}
LINES_PER_PAGE = 40
WORD = re.compile(r"\w{2,}")


def squashed(text: str) -> str:
    return re.sub(r"\s+", " ", text).lower()


def answering_pages(pages: list[str], passage: str) -> list[int]:
    """Pages (from 1) holding the passage's start."""
    needle = squashed(passage)
    return [n for n, text in enumerate(pages, start=1) if needle in squashed(text)]


def corpus() -> list[tuple[str, bytes, list[tuple[str, list[int]]]]]:
    """(name, text PDF, [(question, answering pages)]) for each licence found here."""
    found = []
    for name, questions in QUESTIONS.items():
        laid_out = scans.licence_pages(name, pages=10_000 // LINES_PER_PAGE, lines_per_page=LINES_PER_PAGE)
        if laid_out is None:
            continue
        pdf = scans.text_pdf([page for page in laid_out if page], font_px=12)
        texts = scans.pages_text(pdf)
        asked = [(q, answering_pages(texts, passage)) for q, passage in questions]
        missing = [q for q, pages in asked if not pages]
        if missing:
            print(f"{name}: {len(missing)} passage(s) not on one page, left out: {missing}", file=sys.stderr)
        found.append((name, pdf, [(q, pages) for q, pages in asked if pages]))
    return found


def recall_at(ranked: list[int], wanted: list[int], k: int) -> float:
    return len(set(ranked[:k]) & set(wanted)) / len(wanted)


def fts_ranking(store: Store, sha256: str, total: int, question: str) -> list[int]:
    ranked = store.rank_pages(sha256, question)
    return ranked or list(range(1, total + 1))  # no match: pages in order, as sent


def bm25_ranking(pages: list[str], question: str, k1: float = 1.2, b: float = 0.75) -> list[int]:
    docs = [Counter(WORD.findall(text.lower())) for text in pages]
    lengths = [sum(d.values()) for d in docs]
    average = sum(lengths) / len(docs) or 1
    terms = [w for w in dict.fromkeys(WORD.findall(question.lower())) if w not in STOPWORDS]
    scores = []
    for number, (doc, length) in enumerate(zip(docs, lengths, strict=True), start=1):
        score = 0.0
        for term in terms:
            have = sum(1 for d in docs if term in d)
            if not doc[term]:
                continue
            idf = math.log(1 + (len(docs) - have + 0.5) / (have + 0.5))
            score += idf * doc[term] * (k1 + 1) / (doc[term] + k1 * (1 - b + b * length / average))
        scores.append((-score, number))
    return [number for score, number in sorted(scores) if score < 0] or list(range(1, len(pages) + 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5])
    args = parser.parse_args()
    docs = corpus()
    if not docs:
        sys.exit("no licence texts under /usr/share/common-licenses")
    results: dict[str, list[tuple[list[int], list[int]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"ocr": Store(Path(tmp) / "ocr"), "today": Store(Path(tmp) / "today")}
        for name, pdf, asked in docs:
            scanned = scans.scanned_pdf(pdf, scans.POOR)
            ocr.configure(ocr.OcrSettings(enabled=False))  # today: no OCR
            typed = stores["today"].ingest_document(pdf, f"{name}.pdf")
            scan_today = stores["today"].ingest_document(scanned, f"{name}-scan.pdf")
            ocr.configure(ocr.OcrSettings())
            scan_ocr = stores["ocr"].ingest_document(scanned, f"{name}-scan.pdf")
            ocr_texts = [p.text for p in stores["ocr"].document_pages(scan_ocr.sha256)]
            typed_texts = scans.pages_text(pdf)
            print(f"{name}: {typed.pages} pages, {len(asked)} questions", file=sys.stderr)
            for question, wanted in asked:
                rankings = {
                    "text/today": fts_ranking(stores["today"], typed.sha256, typed.pages, question),
                    "text/bm25-py": bm25_ranking(typed_texts, question),
                    "scan/today": fts_ranking(stores["today"], scan_today.sha256, scan_today.pages, question),
                    "scan/ocr": fts_ranking(stores["ocr"], scan_ocr.sha256, scan_ocr.pages, question),
                    "scan/ocr-bm25-py": bm25_ranking(ocr_texts, question),
                }
                for label, ranked in rankings.items():
                    results.setdefault(label, []).append((ranked, wanted))
        for store in stores.values():
            store.close()
    summary: dict = {
        "questions": sum(len(a) for _, _, a in docs),
        "pages": sum(len(scans.pages_text(pdf)) for _, pdf, _ in docs),
    }
    for k in args.k:
        summary[f"recall@{k}"] = {
            label: round(sum(recall_at(r, w, k) for r, w in rows) / len(rows), 3)
            for label, rows in results.items()
        }
        print(f"recall@{k}: " + ", ".join(f"{lab} {v}" for lab, v in summary[f"recall@{k}"].items()))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
