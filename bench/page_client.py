"""The page's own protocol, spoken the way its browser code speaks it (Gradio's sse_v3:
POST queue/join, then one server-sent event stream per session), for benchmarks that
time what a person at the page waits for. gradio_client would add its own polling (it
looks for new messages every 50 ms), which is no part of the page.

    page = PageClient("http://127.0.0.1:7860/")
    chat = page.session()          # a fresh browser tab: a new chat
    chat.call("send", {0: {"text": "hi", "files": []}})
    for message in chat.events("respond"): ..."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent


def start_playground(
    args: list[str], repo: Path = REPO, timeout: float = 120
) -> tuple[subprocess.Popen, str]:
    """`launch.py ARGS` from `repo` on a free port, quiet; returns once the page answers."""
    from tests.fixtures.scripted_openai import free_port

    port = free_port()
    command = [sys.executable, "launch.py", "--port", str(port), *args]
    proc = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the playground did not start")


class PageClient:
    def __init__(self, url: str, timeout: float = 120):
        self.url = url.rstrip("/") + "/"
        self.http = httpx.Client(timeout=timeout)
        config = self.http.get(self.url + "config").json()
        self.prefix = self.url + config.get("api_prefix", "/gradio_api").strip("/") + "/"
        values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
        self.endpoints: dict[str, tuple[int, list[Any]]] = {}
        for index, dependency in enumerate(config["dependencies"]):
            if dependency.get("api_name"):
                defaults = [values.get(i) for i in dependency["inputs"]]
                self.endpoints[dependency["api_name"]] = (index, defaults)

    def session(self) -> PageSession:
        return PageSession(self, uuid.uuid4().hex[:11])

    def close(self) -> None:
        self.http.close()


class PageSession:
    """One browser tab: its session hash keeps its chat (Gradio's State) on the server."""

    def __init__(self, page: PageClient, session_hash: str):
        self.page = page
        self.session_hash = session_hash

    def events(self, api_name: str, inputs: dict[int, Any] | None = None) -> Iterator[dict]:
        """Every message of one call (estimation, process_generating, ...) as it comes,
        ending with process_completed; the inputs not given keep the page's defaults."""
        page = self.page
        fn_index, defaults = page.endpoints[api_name]
        data = [(inputs or {}).get(i, value) for i, value in enumerate(defaults)]
        body = {"data": data, "fn_index": fn_index, "session_hash": self.session_hash, "event_data": None}
        joined = page.http.post(page.prefix + "queue/join", json=body)
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        url = page.prefix + "queue/data"
        with page.http.stream("GET", url, params={"session_hash": self.session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") not in (None, event_id):
                    continue
                yield message
                if message.get("msg") in ("process_completed", "close_stream"):
                    return

    def call(self, api_name: str, inputs: dict[int, Any] | None = None) -> dict:
        """Runs one call to the end; its process_completed message."""
        messages = list(self.events(api_name, inputs))
        last = messages[-1] if messages else {}
        if not last.get("success", True):
            raise RuntimeError(f"/{api_name} failed: {last.get('output')}")
        return last
