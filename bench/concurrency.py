"""Many people at once on one server. 1, 4, 8 and 16 users each send a question through
the page (its own protocol, as its browser code speaks it) to a model behind a scripted
streaming OpenAI-compatible server on loopback that answers in about 2 s and serves any
number at once; the figure is the time until the last user has their whole answer. With
every generation in one line, 8 users take 8 times as long as one; with a lane per
model, about as long. Then two local models side by side: while one user streams a long
answer from the embedded model, another asks a second local model (a tiny Llama 4)
and we time their whole answer.

    python bench/concurrency.py [--repo DIR]   # DIR: another checkout to measure (before)

Then the local case: 1 and 8 users at once ask the tiny
Llama 4 for 64 tokens through our /v1, and the same through a raw llama-server (the
same binary and flags, started by hand) on the same GGUF, interleaved, best of two.

    python bench/concurrency.py --case local   # only the local case

Last line: {"ratio_8": T8/T1 (target <= 1.5), "ratio_16": T16/T1 (target <= 2.0),
"users_s": {...}, "most_at_server": ..., "other_local_model_s": ..., "long_answer_s": ...,
"local": {"ours_ratio_8": T8/T1 through our /v1 (target <= 5 on 2 cores),
"raw_ratio_8": the same for raw llama-server, "ours_vs_raw_8": our T8 / raw T8, "s": {...}}}"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.local_users import local_case
from bench.page_client import PageClient, start_playground
from tests.fixtures.scripted_openai import Script, ScriptedServer

REPO = Path(__file__).resolve().parent.parent
MODEL = "scripted"
WORDS = tuple(f" word{i}" for i in range(20))  # 0.2 s to the first, 20 x 0.09 s: ~2 s a stream
# Indexes of the page's inputs (app/chat_tab.py): /send [box, turns, session, model, page
# mode, password, system, temperature, top_p, max tokens, context, seed]; /respond the
# same without the box, page mode and password, with strategy and page range.
SEND_MODEL, SEND_MAX, SEND_CTX = 3, 9, 10
RESPOND_MODEL, RESPOND_MAX, RESPOND_CTX = 2, 8, 9


def one_user(page: PageClient, text: str, model: str | None = None, max_tokens: int | None = None) -> float:
    """A fresh tab sends `text` and reads the whole answer; seconds it took."""
    chat = page.session()
    send: dict = {0: {"text": text, "files": []}}
    respond: dict = {}
    if model:
        send.update({SEND_MODEL: model, SEND_CTX: None})
        respond.update({RESPOND_MODEL: model, RESPOND_CTX: None})
    if max_tokens:
        send[SEND_MAX] = respond[RESPOND_MAX] = max_tokens
    started = time.perf_counter()
    chat.call("send", send)
    chat.call("respond", respond)
    return time.perf_counter() - started


def users_at_once(page: PageClient, users: int) -> float:
    """Seconds until the last of `users`, all asking at the same moment, has their answer."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(users) as pool:
        list(pool.map(lambda i: one_user(page, f"Question {i}?"), range(users)))
    return time.perf_counter() - started


def other_local_model(page: PageClient, other: str) -> tuple[float, float]:
    """A long answer streams from the embedded model; meanwhile another user asks
    `other`. (seconds for the other user's whole answer, seconds of the long one)."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        long = pool.submit(one_user, page, "Write a long story about a lighthouse.", "smollm2-135m", 400)
        time.sleep(1.0)  # it is answering now
        short = one_user(page, "Hi", other, 16)
        return short, long.result()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to measure")
    parser.add_argument("--users", type=int, nargs="*", default=[1, 4, 8, 16])
    parser.add_argument("--case", choices=("all", "scripted", "local"), default="all")
    args = parser.parse_args()
    result = scripted_case(args) if args.case != "local" else {}
    if args.case != "scripted":
        result["local"] = local_case(args.repo.resolve())
    print(json.dumps(result))
    return 0


def scripted_case(args) -> dict:
    from tests.fixtures.tiny_llama4 import write_tiny_llama4

    script = Script(model=MODEL, first_s=0.2, gap_s=0.09, words=WORDS)
    with ScriptedServer(script) as server, tempfile.TemporaryDirectory() as scratch:
        model, mmproj = write_tiny_llama4(Path(scratch) / "tiny")
        flags = ["--endpoint", server.url, "--model", MODEL, "--extra-model", f"{model}:{mmproj}"]
        flags += ["--data-dir", str(Path(scratch) / "data")]
        proc, url = start_playground(flags, args.repo.resolve())
        try:
            page = PageClient(url)
            one_user(page, "warm up")
            one_user(page, "warm up", "tiny-llama4", 16)
            times = {}
            for users in args.users:  # interleaved: each size twice, the best kept
                times[users] = users_at_once(page, users)
            for users in reversed(args.users):
                times[users] = min(times[users], users_at_once(page, users))
            most = script.most_live
            short, long = other_local_model(page, "tiny-llama4")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for users, seconds in times.items():
        print(f"{users:>3} users: {seconds:.2f} s", file=sys.stderr)
    print(f"other local model: {short:.2f} s while a long answer took {long:.2f} s", file=sys.stderr)
    base = times[min(times)]
    result = {
        "ratio_8": round(times[8] / base, 2) if 8 in times else None,
        "ratio_16": round(times[16] / base, 2) if 16 in times else None,
        "users_s": {str(users): round(seconds, 2) for users, seconds in times.items()},
        "most_at_server": most,
        "other_local_model_s": round(short, 2),
        "long_answer_s": round(long, 2),
    }
    return result


if __name__ == "__main__":
    sys.exit(main())
