"""Whether a remote model (a hosted preset, an endpoint preset, --endpoint) can answer
now: its server's `GET /v1/models`, asked with the key when one is set, with a short
timeout, every server at once, and remembered for a few minutes. Each model is then
ready · no key · not reachable · key refused · not served (with the Llama 4 models the
server does list), each with one line that says why and what to do.

`launch.py models`, the Models tab and the pickers read this; a picker offers only the
ready ones. Local models are not checked here: their files are (ModelSpec.missing)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from engine.spec import ModelSpec
from models.discovery import ServedModel, find_served

TIMEOUT_S = 3.0  # one listing; a provider that takes longer is taken as not reachable now
TTL_S = 180.0  # how long one listing is trusted
MAX_WORKERS = 8

READY = "ready"
NO_ENDPOINT = "no endpoint"
NO_KEY = "no key"
KEY_REFUSED = "key refused"
UNREACHABLE = "not reachable"
NOT_SERVED = "not served"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


@dataclass(frozen=True)
class Listing:
    """What one server answered to `GET /v1/models`, and when."""

    at: float
    models: tuple[ServedModel, ...] | None = None  # None: no list (see status/error)
    status: int | None = None  # the HTTP status when it answered without a list
    error: str = ""  # why it could not be asked (connection refused, timeout)


@dataclass(frozen=True)
class Availability:
    state: str
    why: str = ""  # one line: what keeps it from answering and what to do ("" when ready)
    reachable: bool | None = None  # None: not asked (no key, no endpoint)
    served: bool | None = None  # None: not asked, or the server does not list its models
    checked_at: float | None = None
    llama4: tuple[str, ...] = ()  # the Llama 4 models the server lists

    @property
    def ready(self) -> bool:
        return self.state == READY

    def as_dict(self) -> dict:
        when = None
        if self.checked_at is not None:
            when = datetime.fromtimestamp(self.checked_at, UTC).isoformat(timespec="seconds")
        return {
            "availability": self.state,
            "why": self.why,
            "reachable": self.reachable,
            "served": self.served,
            "checked_at": when,
            "llama4_served": list(self.llama4),
        }


NOT_CHECKED = {"availability": None, "why": "", "reachable": None, "served": None, "checked_at": None}


class Checker:
    """Listings by (URL, key variable), each kept for `ttl_s`; safe from many threads
    (two asks for one server at once make one request)."""

    def __init__(self, ttl_s: float = TTL_S, timeout_s: float = TIMEOUT_S):
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._listings: dict[tuple[str, str], Listing] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def check(self, spec: ModelSpec) -> Availability:
        if not spec.endpoint:
            return Availability(NO_ENDPOINT, "needs an endpoint URL: --endpoint URL --model NAME")
        if spec.api_key_env and not os.environ.get(spec.api_key_env):
            return Availability(NO_KEY, f"no key: set ${spec.api_key_env} to use it")
        return classify(spec, self.listing(spec.endpoint, spec.api_key_env))

    def check_all(self, specs: list[ModelSpec]) -> dict[str, Availability]:
        """Every remote model in `specs` by name, their servers asked in parallel."""
        remote = [s for s in specs if s.is_remote]
        if not remote:
            return {}
        with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(remote))) as pool:
            return dict(zip((s.name for s in remote), pool.map(self.check, remote), strict=True))

    def listing(self, url: str, key_env: str = "") -> Listing:
        slot = (url.rstrip("/"), key_env)
        with self._guard:
            lock = self._locks.setdefault(slot, threading.Lock())
        with lock:
            cached = self._listings.get(slot)
            if cached is not None and time.time() - cached.at < self.ttl_s:
                return cached
            fresh = fetch_listing(slot[0], os.environ.get(key_env, "") if key_env else "", self.timeout_s)
            self._listings[slot] = fresh
            return fresh

    def forget(self) -> None:
        with self._guard:
            self._listings.clear()


def fetch_listing(url: str, key: str, timeout_s: float = TIMEOUT_S) -> Listing:
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    now = time.time()
    try:
        response = httpx.get(f"{url}/models", headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        return Listing(now, error=f"no answer in {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return Listing(now, error=_short(exc))
    if response.status_code != 200:
        return Listing(now, status=response.status_code)
    try:
        payload = response.json()
    except ValueError:
        return Listing(now, status=response.status_code)
    entries = payload.get("data") if isinstance(payload, dict) else payload  # Together: a bare list
    if not isinstance(entries, list):
        return Listing(now, status=response.status_code)
    models = tuple(
        ServedModel(str(e["id"]), _positive(e.get("max_model_len") or e.get("context_length")))
        for e in entries
        if isinstance(e, dict) and e.get("id")
    )
    return Listing(now, models=models)


def classify(spec: ModelSpec, listing: Listing) -> Availability:
    at = listing.at
    if listing.error:
        return Availability(UNREACHABLE, _unreachable(spec, listing.error), False, None, at)
    if listing.status in (401, 403):
        why = f"{_who(spec)} refused the key in ${spec.api_key_env or 'its key variable'}"
        return Availability(KEY_REFUSED, why + "; check it", True, None, at)
    if listing.models is None:
        if listing.status is not None and listing.status >= 500:
            why = f"{_who(spec)} answered HTTP {listing.status}; try again later"
            return Availability(UNREACHABLE, why, False, None, at)
        return Availability(READY, "", True, None, at)  # it answers but lists nothing: try it
    llama4 = tuple(m.short_name for m in listing.models if is_llama4_id(m.id))
    if find_served(list(listing.models), spec.remote_model or spec.name) is not None:
        return Availability(READY, "", True, True, at, llama4)
    return Availability(NOT_SERVED, _not_served(spec, listing.models, llama4), True, False, at, llama4)


def is_llama4_id(model_id: str) -> bool:
    lowered = model_id.lower()
    return "llama-4" in lowered or "llama4" in lowered


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK


def start_command(spec: ModelSpec) -> str:
    """How to start a server for a loopback preset (docs/serving.md has the full recipes)."""
    port = urlsplit(spec.endpoint).port or 80
    if spec.tiles == "llama.cpp":
        alias = spec.remote_model or "llama4"
        return (
            f"llama-server -m MODEL.gguf --mmproj MMPROJ.gguf -c {spec.n_ctx} --jinja "
            f"--alias {alias} --port {port}"
        )
    return f"vllm serve {spec.remote_model or spec.name} --max-model-len {spec.n_ctx} --port {port}"


def _unreachable(spec: ModelSpec, error: str) -> str:
    why = f"not reachable: nothing answers at {spec.endpoint} ({error})"
    if is_loopback(spec.endpoint):
        return f"{why}; start one with `{start_command(spec)}` (docs/serving.md)"
    return why


def _not_served(spec: ModelSpec, models: tuple[ServedModel, ...], llama4: tuple[str, ...]) -> str:
    model = spec.remote_model or spec.name
    if spec.provider:
        offer = f"its Llama 4 models: {', '.join(llama4)}" if llama4 else "it lists no Llama 4 model"
        return f"no longer served: {spec.provider} does not list {model}; {offer}"
    listed = ", ".join(m.short_name for m in models[:8]) or "nothing"
    return f"not served: {spec.endpoint} does not serve {model}; it serves {listed}"


def _who(spec: ModelSpec) -> str:
    return spec.provider or spec.endpoint


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _positive(value) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


_shared: Checker | None = None
_shared_guard = threading.Lock()


def shared_checker() -> Checker:
    """The one checker a process shares (its cache spans the CLI, the page and the API)."""
    global _shared
    with _shared_guard:
        if _shared is None:
            _shared = Checker()
        return _shared


def check_all(specs: list[ModelSpec]) -> dict[str, Availability]:
    return shared_checker().check_all(specs)
