"""Attacks on a shared server, ours against the anchor (the code before the security
work, by default fc7a80e), interleaved: the status and the time each attack gets,
the server's RSS growth, and another user's latency (bob opening his chat list on the
page) while ann's attacks run, against idle.

    python bench/attack.py [--anchor REF] [--reps 5] [--search-timeout 30]

Both servers serve two logins (ann, bob) with API keys on loopback, their data dirs
seeded alike: ann holds a chat with one ~1M-character message, bob a small one.
Progress goes to stderr. Last line: one JSON object, {"ours": {...}, "anchor": {...}}."""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.types import Message  # noqa: E402
from sessions import Store  # noqa: E402
from tests.conftest import free_port  # noqa: E402

ANN, BOB = ("ann", "ann-pw-1"), ("bob", "bob-pw-2")
KEYS = {"ann": "sk-ann-0123456789", "bob": "sk-bob-0123456789"}
CHAT = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
HUGE_CHARS = 1_000_000


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def anchor_tree(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def seed(data: Path) -> None:
    # The searched word all through it: FTS5's snippet() was quadratic in its occurrences.
    words = " ".join(f"quokka word{n % 997}" for n in range(HUGE_CHARS // 15))
    with Store(data) as store:
        huge = store.create_session(title="huge", owner="ann")
        store.add_user_message(huge, None, Message.text("user", words[:HUGE_CHARS]))
        small = store.create_session(title="bob's chat", owner="bob")
        store.add_user_message(small, None, Message.text("user", "a quokka smiles"))


class Server:
    def __init__(self, name: str, root: Path, data: Path, extra: list[str]):
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["--auth", ":".join(ANN), "--auth", ":".join(BOB)]
        args += ["--api-key", f"ann:{KEYS['ann']}", "--api-key", f"bob:{KEYS['bob']}"]
        self.proc = subprocess.Popen(
            [sys.executable, "launch.py", "--port", str(self.port), "--data-dir", str(data), *args, *extra],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"{name} did not start")

    def rss_mb(self, field: str = "VmRSS") -> float:
        with open(f"/proc/{self.proc.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:")) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def post(server: Server, raw: bytes, headers: dict | None = None) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {KEYS['bob']}",
        "Content-Type": "application/json",
        **(headers or {}),
    }
    return httpx.post(server.url + "/v1/chat/completions", content=raw, headers=headers, timeout=120)


ATTACKS = {
    "foreign_host": lambda s: httpx.get(
        s.url + "/v1/models", headers={"Host": "evil.example", "Authorization": f"Bearer {KEYS['bob']}"}
    ),
    "foreign_origin_post": lambda s: post(s, json.dumps(CHAT).encode(), {"Origin": "http://evil.example"}),
    "text_plain_post": lambda s: post(s, json.dumps(CHAT).encode(), {"Content-Type": "text/plain"}),
    "lone_surrogate": lambda s: post(
        s, b'{"messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 1}'
    ),
    "deep_json": lambda s: post(s, b'{"messages": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
    "seed_1e300": lambda s: post(s, json.dumps({**CHAT, "seed": 1e300}).encode()),
    # 40 GIFs of 6320x6320 (30 KB each) to the text-only model: refused from the headers,
    # or decoded one by one first (the anchor: over half a minute).
    "gifs_to_text_only": lambda s: post(s, gifs_request(40)),
}


@functools.cache
def gifs_request(count: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("P", (6320, 6320), 0).save(out, "GIF")
    url = "data:image/gif;base64," + base64.b64encode(out.getvalue()).decode()
    content = [{"type": "text", "text": "what is this?"}]
    content += [{"type": "image_url", "image_url": {"url": url}}] * count
    return json.dumps({**CHAT, "messages": [{"role": "user", "content": content}]}).encode()


def time_attacks(servers: list[Server], reps: int) -> dict[str, dict[str, dict]]:
    found: dict[str, dict[str, dict]] = {s.name: {} for s in servers}
    for name, attack in ATTACKS.items():
        times: dict[str, list[float]] = {s.name: [] for s in servers}
        statuses: dict[str, int] = {}
        for _ in range(reps):
            for server in servers:  # interleaved, so load on the machine hits both alike
                started = time.perf_counter()
                try:
                    statuses[server.name] = attack(server).status_code
                except httpx.HTTPError:
                    statuses[server.name] = -1
                times[server.name].append(time.perf_counter() - started)
        for server in servers:
            found[server.name][name] = {
                "status": statuses[server.name],
                "ms": round(statistics.median(times[server.name]) * 1000, 1),
            }
        log(f"{name}: " + ", ".join(f"{s.name} {found[s.name][name]}" for s in servers))
    return found


def search_and_latency(server: Server, search_timeout: float, rounds: int) -> dict:
    """Bob's chat list idle; then ann's search over the 1M-character message with bob's
    chat list asked for meanwhile."""
    from gradio_client import Client

    ann = Client(server.url + "/", auth=ANN, verbose=False)
    bob = Client(server.url + "/", auth=BOB, verbose=False)

    def bob_lists() -> float:
        started = time.perf_counter()
        bob.predict("", api_name="/list_chats")
        return time.perf_counter() - started

    idle = [bob_lists() for _ in range(rounds)]
    result: dict = {}

    def search():
        started = time.perf_counter()
        try:
            job = ann.submit("quokka", api_name="/search")
            job.result(timeout=search_timeout)
            result["search_s"] = round(time.perf_counter() - started, 2)
        except Exception as exc:  # the anchor may take minutes: reported, not waited for
            result["search_s"] = f">{search_timeout:g} ({type(exc).__name__})"

    searcher = threading.Thread(target=search, daemon=True)
    searcher.start()
    time.sleep(0.2)
    busy = []
    while searcher.is_alive() and len(busy) < rounds * 3:
        busy.append(bob_lists())
    searcher.join(timeout=search_timeout + 5)
    result["bob_idle_ms_p50"] = round(statistics.median(idle) * 1000, 1)
    result["bob_during_search_ms_p50"] = round(statistics.median(busy) * 1000, 1) if busy else None
    result["bob_during_search_ms_max"] = round(max(busy) * 1000, 1) if busy else None
    return result


def login_burst(server: Server, attempts: int) -> dict:
    """Wrong passwords for ann as fast as one client can send them."""
    statuses, started = [], time.perf_counter()
    for _ in range(attempts):
        reply = httpx.post(server.url + "/login", data={"username": "ann", "password": "guess"}, timeout=30)
        statuses.append(reply.status_code)
    took = time.perf_counter() - started
    return {
        "tries_checked": statuses.count(400),
        "tries_refused_429": statuses.count(429),
        "tries_per_s": round(attempts / took, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", default="fc7a80e", help="git ref of the code to compare against")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--search-timeout", type=float, default=30.0)
    parser.add_argument("--logins", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="l4p-attack-") as tmp:
        tmp = Path(tmp)
        roots = {"ours": REPO, "anchor": anchor_tree(args.anchor, tmp / "anchor")}
        extra = {"ours": ["--login-backoff-s", "60"], "anchor": []}
        servers = []
        for name in ("ours", "anchor"):
            (tmp / name).mkdir(exist_ok=True)
            seed(tmp / name / "data")
            servers.append(Server(name, roots[name], tmp / name / "data", extra[name]))
            log(f"{name} on {servers[-1].url}")
        try:
            rss_before = {s.name: s.rss_mb() for s in servers}
            found = time_attacks(servers, args.reps)
            for server in servers:
                found[server.name].update(search_and_latency(server, args.search_timeout, 10))
                log(f"{server.name}: search and bob's latency {found[server.name]}")
            for server in servers:
                found[server.name]["login_burst"] = login_burst(server, args.logins)
                found[server.name]["rss_growth_mb"] = round(server.rss_mb() - rss_before[server.name], 1)
                found[server.name]["rss_peak_mb"] = round(server.rss_mb("VmHWM"), 1)
        finally:
            for server in servers:
                server.stop()
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
