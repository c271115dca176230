"""Time to the first answer token: through the page (its own protocol, as its browser
code speaks it: `/send` then `/respond`), through gradio_client (which adds its own
50 ms polling), and through the playground's own `/v1` (the openai client), against
the same backend called directly. The backend is a scripted streaming
OpenAI-compatible server on loopback (its first token after --first-ms), so what is
left is our own overhead: saving the question, counting and fitting the prompt, the
queue, streaming to the client. Rounds are interleaved, the order rotating.
Target: <= 50 ms of our own, through the page and through /v1.

    python bench/first_token.py [--rounds 15] [--first-ms 100]

Last line: {"direct_ms": ..., "page_ms": ..., "api_ms": ..., "page_overhead_ms": ...,
"api_overhead_ms": ..., "gradio_client_ms": ...}"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.page_client import PageClient, start_playground
from tests.fixtures.scripted_openai import Script, ScriptedServer

MODEL = "scripted"
KEY = "sk-bench-0123456789"
PROMPT = "Say hello."
FIRST_WORD = "Hello"  # the scripted server's; the prompt has only "hello"


def openai_first_token(client, model: str) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], stream=True, max_tokens=16
    )
    try:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                return time.perf_counter() - started
    finally:
        stream.close()
    raise SystemExit("no token came")


def page_first_token(page: PageClient) -> float:
    """From sending the question (in a new chat: a fresh tab) until the first answer
    word reaches the page."""
    chat = page.session()
    started = time.perf_counter()
    chat.call("send", {0: {"text": PROMPT, "files": []}})
    events = chat.events("respond")
    try:
        for message in events:
            if message.get("msg") == "process_generating" and FIRST_WORD in json.dumps(message["output"]):
                return time.perf_counter() - started
    finally:
        events.close()
    raise SystemExit("no token came on the page")


def gradio_client_first_token(client) -> float:
    """The same through gradio_client, as a script would drive the page."""
    client.predict(api_name="/new_chat")
    started = time.perf_counter()
    client.predict({"text": PROMPT, "files": []}, api_name="/send")
    job = client.submit(api_name="/respond")
    for chat, _notice in job:
        last = chat[-1] if chat else {}
        if last.get("role") == "assistant" and FIRST_WORD in _text(last):
            elapsed = time.perf_counter() - started
            job.cancel()
            _drain(job)
            return elapsed
    raise SystemExit("no token came through gradio_client")


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if part.get("type") == "text")


def _drain(job) -> None:
    deadline = time.monotonic() + 10
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.01)


def measure(backend_url: str, url: str, rounds: int) -> dict[str, list[float]]:
    import openai
    from gradio_client import Client

    direct = openai.OpenAI(base_url=backend_url, api_key="none", max_retries=0)
    ours = openai.OpenAI(base_url=url + "v1", api_key=KEY, max_retries=0)
    page, client = PageClient(url), Client(url, verbose=False)
    runs = {
        "direct": lambda: openai_first_token(direct, MODEL),
        "page": lambda: page_first_token(page),
        "api": lambda: openai_first_token(ours, MODEL),
        "gradio_client": lambda: gradio_client_first_token(client),
    }
    for run in runs.values():  # warm up: model connection, first queue join
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(runs[name]())
    page.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--first-ms", type=float, default=100)
    args = parser.parse_args()

    script = Script(model=MODEL, first_s=args.first_ms / 1000)
    with ScriptedServer(script) as backend, tempfile.TemporaryDirectory() as data_dir:
        flags = ["--endpoint", backend.url, "--model", MODEL, "--api-key", KEY, "--data-dir", data_dir]
        proc, url = start_playground(flags)
        try:
            times = measure(backend.url, url, args.rounds)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    for name, values in times.items():
        shown = ", ".join(f"{v * 1000:.0f}" for v in values)
        print(f"{name:>6}: median {medians[name]:.1f} ms  ({shown})", file=sys.stderr)
    result = {
        "direct_ms": round(medians["direct"], 1),
        "page_ms": round(medians["page"], 1),
        "api_ms": round(medians["api"], 1),
        "page_overhead_ms": round(medians["page"] - medians["direct"], 1),
        "api_overhead_ms": round(medians["api"] - medians["direct"], 1),
        "gradio_client_ms": round(medians["gradio_client"], 1),
        "rounds": args.rounds,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
