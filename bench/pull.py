"""Download throughput of `launch.py pull` (huggingface_hub's HTTP, plus a partial
file kept for resuming, sha256 hashed on a second thread, an atomic rename) against
plain `huggingface_hub.hf_hub_download` of the same file, both from the loopback
Hugging Face-compatible hub (tests/fixtures/hf_hub.py) in its own process, as a real
hub would be. Rounds are interleaved, the order alternating, each into an empty
directory; each download is checked against the source's sha256 afterwards (untimed).
Target: ratio >= 0.9.

    python bench/pull.py [--size-mb 512] [--rounds 5] [--link-mb-s 250]

Two runs, each interleaved: over a link of --link-mb-s (the hub's CDN throttled; 250
MB/s is a fast 2 Gbit/s line) and at full loopback speed, where our sha256 (about
1.2 GB/s on one core here) competes with the download for the CPU.

Last line: {"ratio": ours / hf_hub_download throughput over the link,
            "ratio_loopback": the same unthrottled, ...}"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.download import sha256_of
from hub.pull import plan_hf, run

REPO_DIR, FILE = "blob-GGUF", "blob-Q4_K_M.gguf"
REPO = f"test/{REPO_DIR}"  # how tests/fixtures/hf_hub.py names the folder it serves


def ours(endpoint: str, work: Path) -> float:
    models = work / "models"
    start = time.perf_counter()
    plan = plan_hf(REPO, "Q4_K_M", models, endpoint=endpoint)
    run(plan, models, endpoint=endpoint)  # verified: a wrong sha256 raises
    return time.perf_counter() - start


def anchor(endpoint: str, work: Path) -> float:
    from huggingface_hub import hf_hub_download

    start = time.perf_counter()
    hf_hub_download(REPO, FILE, cache_dir=work / "cache", endpoint=endpoint)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--link-mb-s", type=float, default=250.0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # neither side draws a bar

    work = Path(tempfile.mkdtemp(prefix="l4p-bench-pull-"))  # never the user's data
    source = work / REPO_DIR / FILE
    source.parent.mkdir()
    with source.open("wb") as f:
        for _ in range(args.size_mb):
            f.write(os.urandom(2**20))
    expected = sha256_of(source)
    try:
        link = compare(source, expected, args.rounds, int(args.link_mb_s * 1e6))
        loopback = compare(source, expected, args.rounds, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "ratio": round(link["ours"] / link["hf_hub_download"], 3),
                "ours_mb_s": round(link["ours"], 1),
                "hf_hub_download_mb_s": round(link["hf_hub_download"], 1),
                "link_mb_s": args.link_mb_s,
                "ratio_loopback": round(loopback["ours"] / loopback["hf_hub_download"], 3),
                "ours_loopback_mb_s": round(loopback["ours"], 1),
                "hf_hub_download_loopback_mb_s": round(loopback["hf_hub_download"], 1),
                "size_mb": args.size_mb,
                "rounds": args.rounds,
                "verified": True,
            }
        )
    )
    return 0


def compare(source: Path, expected: str, rounds: int, bps: int | None) -> dict[str, float]:
    """Median MB/s of each side over `rounds` interleaved rounds."""
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "tests.fixtures.hf_hub", str(source.parent)]
    server = subprocess.Popen(
        [*command, *([str(bps)] if bps else [])], cwd=root, stdout=subprocess.PIPE, text=True
    )
    endpoint = server.stdout.readline().strip().removeprefix("HF_ENDPOINT=")
    size, work = source.stat().st_size, source.parent.parent
    times: dict[str, list[float]] = {"ours": [], "hf_hub_download": []}
    sides = {"ours": ours, "hf_hub_download": anchor}
    where = f"{bps / 1e6:.0f} MB/s link" if bps else "loopback"
    try:
        for side, fetch in sides.items():  # untimed: imports and first connections
            fetch(endpoint, work / f"warm-{side}")
            shutil.rmtree(work / f"warm-{side}")
        for rnd in range(rounds):
            order = ["ours", "hf_hub_download"] if rnd % 2 == 0 else ["hf_hub_download", "ours"]
            for side in order:
                target = work / f"{side}-{rnd}"
                times[side].append(sides[side](endpoint, target))
                landed = next(p for p in target.rglob(FILE) if p.is_file())
                assert sha256_of(landed.resolve()) == expected, f"{side} landed other bytes"
                shutil.rmtree(target)
                mb_s = size / times[side][-1] / 1e6
                print(f"{where} round {rnd}: {side:<16} {mb_s:8.1f} MB/s", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {side: size / statistics.median(t) / 1e6 for side, t in times.items()}


if __name__ == "__main__":
    sys.exit(main())
