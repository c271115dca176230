"""Local GGUF models through llama-server: one managed child per loaded model
(engine/server_process.py), spoken to over HTTP by the OpenAI backend.

What the child gives that llama-cpp-python's `Llama` cannot: parallel slots with
continuous batching (many users on one model at once), MoE experts kept in RAM
(`--n-cpu-moe`, `--cpu-moe`), a prompt cache per slot that includes images, and
isolation: a crash or out-of-memory in llama.cpp ends the child, never the web server.

A crash mid-answer ends that answer with one line ("the model process stopped;
restarting it"), whatever was streamed is kept by the caller, and the child is
restarted on the same port and key at once, so the next request is served."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from engine.image_plan import BUDGETS, image_tokens
from engine.openai_compat import EndpointError, OpenAIEngine
from engine.prompt_count import LocalCounter, open_counter
from engine.protocol import ProgressFn
from engine.server_process import ServerProcess, server_binary
from engine.slot_state import SlotStates, slot_fingerprint
from engine.slot_table import SlotTable
from engine.spec import ModelSpec
from engine.types import EngineInputError, EngineLoadError, Final, Message, SamplingParams, StreamEvent

CRASH_LINE = "the model process stopped; restarting it"
# A broken stream and the child's exit status arrive a moment apart: over a second
# apart on a loaded machine (a child killed with -9 still exiting).
DEATH_WAIT_S = 5.0
# Slot saves and restores, prompt counts: small requests a working child answers in
# seconds. Past this the child is taken as hung, and nothing (a slot) waits on it.
CONTROL_TIMEOUT_S = 30.0
DEFAULT_SLOTS = 8
SAVE_WAIT_S = 10.0  # unload waits this long for slot files being written
COUNTS_KEPT = 256  # prompts whose token count is remembered (a few hundred KB at most)


def server_args(
    spec: ModelSpec,
    *,
    slots: int = DEFAULT_SLOTS,
    n_gpu_layers: int | str = 0,
    n_cpu_moe: int | None = None,
    cpu_moe: bool = False,
    n_threads: int | None = None,
    n_batch: int = 512,
    slot_dir: Path | None = None,
) -> list[str]:
    """llama-server's flags for this model (host, port and key are added at start).

    llama-server splits `-c` evenly among its slots (KV not unified), so each slot
    gets exactly the model's context: -c is n_ctx x slots, and the KV cache costs
    that many positions."""
    args = ["--model", str(spec.model_path), "--alias", spec.name]
    if spec.mmproj_path is not None:
        args += ["--mmproj", str(spec.mmproj_path)]
    args += ["--ctx-size", str(spec.n_ctx * slots), "--parallel", str(slots), "--no-kv-unified"]
    args += ["--cont-batching"]
    # Sliding-window layers (Llama 4's chunked attention) keep every position, so a
    # cached prefix can be reused however the conversation went on (as in-process).
    args += ["--swa-full", "--batch-size", str(n_batch), "--ubatch-size", str(min(n_batch, 512))]
    ngl = "all" if n_gpu_layers == -1 else str(n_gpu_layers)
    args += ["--n-gpu-layers", ngl]
    if ngl != "auto":
        args += ["--fit", "off"]  # what we chose stands; --fit would change unset flags
    if cpu_moe:
        args += ["--cpu-moe"]
    elif n_cpu_moe:
        args += ["--n-cpu-moe", str(n_cpu_moe)]
    if n_threads:
        args += ["--threads", str(n_threads), "--threads-batch", str(n_threads)]
    if slot_dir is not None:
        args += ["--slot-save-path", str(slot_dir)]
    # No prompt cache in host RAM: it would hand one login's prefix to another's
    # request across slots (the slot table keeps reuse within a login).
    args += ["--cache-ram", "0", "--no-webui", "--metrics", "--log-colors", "off"]
    return args


class LlamaServerEngine(OpenAIEngine):
    def __init__(
        self,
        spec: ModelSpec,
        *,
        log_dir: Path,
        slots: int = DEFAULT_SLOTS,
        binary: Path | None = None,
        address_space: int | None = None,
        plan_line: str = "",
        kv_dir: Path | None = None,
        kv_cache_bytes: int = 0,
        **options,
    ):
        # llama-server's mtmd tiles Llama 4 images its way (3x3 grids at most).
        super().__init__(replace(spec, tiles="llama.cpp", remote_model=spec.name))
        self.tile_budget = BUDGETS["llama.cpp"] if spec.is_llama and spec.vision else None
        self.slots = slots
        slot_dir = kv_dir  # chats' KV state saved there (engine/slot_state.py); None: not saved
        self.args = server_args(spec, slots=slots, slot_dir=slot_dir, **options)
        self.process = ServerProcess(
            self.args,
            log_dir / f"llama-server-{_file_safe(spec.name)}.log",
            spec.label,
            memory_needed=lambda: spec.estimated_memory(spec.n_ctx * slots),
            binary=binary,
            address_space=address_space,
        )
        self._slot_dir = slot_dir
        self._kv_cache_bytes = kv_cache_bytes
        self.slot_states: SlotStates | None = None  # set at load when chats' KV state is kept
        self.plan_line = plan_line  # the GPU/RAM split models/ chose for -ngl auto, if any
        self._restart_lock = threading.Lock()
        self._saving: set[threading.Thread] = set()  # slot saves under way
        self.slot_table = SlotTable(slots)
        self._request_slot = threading.local()  # this thread's (slot, reuse) for _request
        self._counts: OrderedDict[str, int] = OrderedDict()  # prompt -> the server's token count
        self._counts_lock = threading.Lock()
        self._local_counter: LocalCounter | None = None  # text prompts counted here (load)

    @property
    def restarts(self) -> int:
        return max(self.process.starts - 1, 0)

    # -- lifecycle ---------------------------------------------------------------

    def load(self, progress: ProgressFn | None = None) -> None:
        if self.loaded:
            return
        if missing := self.spec.missing_files():
            raise EngineLoadError(f"{self.label}: file not found: {missing[0]}")
        size_gb = (self.spec.file_bytes() or 0) / 1e9
        report = progress or (lambda fraction, what: None)
        report(0.05, f"starting llama-server for {self.label} ({size_gb:.1f} GB, {self.slots} slots)")
        if self._slot_dir is not None:
            self._slot_dir.mkdir(parents=True, exist_ok=True)
            binary = self.process.binary or server_binary()
            print_ = slot_fingerprint(self.spec.model_path, self.spec.mmproj_path, self.spec.n_ctx, binary)
            self.slot_states = SlotStates(self._slot_dir, self.spec.name, print_, self._kv_cache_bytes)
        if self.tile_budget is not None:  # the projector's own tile and patch size
            from engine.llamacpp import mmproj_tile_budget

            self.tile_budget = mmproj_tile_budget(self.spec.mmproj_path) or self.tile_budget
        self._local_counter = open_counter(self.spec.model_path)
        self.process.start(report)
        self.spec = replace(self.spec, endpoint=f"{self.process.url}/v1")
        try:
            super().load(None)
        except EngineLoadError:
            self.process.stop()
            raise
        report(1.0, f"{self.label} ready ({self.slots} at once)")

    def _api_key(self) -> str:
        return self.process.key

    def unload(self) -> None:
        """After the slot saves under way: a chat's last turn is on disk, and no save
        thread talks to a closed client."""
        for saving in list(self._saving):
            saving.join(SAVE_WAIT_S)
        super().unload()
        self.process.stop()
        counter, self._local_counter = self._local_counter, None
        if counter is not None:
            counter.close()

    def _ensure_running(self) -> None:
        """A child that died between requests is started again before this one; a
        restart under way (the lock's holder) is waited for."""
        if self.loaded:
            with self._restart_lock:
                if not self.process.alive():
                    self.process.start()
                    self.slot_table.forget()
                    self._follow_port()

    def _follow_port(self) -> None:
        """The restarted child keeps its port unless another program took it."""
        endpoint = f"{self.process.url}/v1"
        if endpoint != self.spec.endpoint:
            self.spec = replace(self.spec, endpoint=endpoint)
            self._client = self._client.with_options(base_url=endpoint)

    def _restart_soon(self) -> None:
        def restart() -> None:
            with contextlib.suppress(EngineLoadError):  # the next request tries again, shows why
                self._ensure_running()

        threading.Thread(target=restart, name=f"restart-{self.name}", daemon=True).start()

    def _died(self) -> bool:
        """Did the child crash, now that its stream broke? It did once it exits; it did
        not while it answers /health. One that does neither within DEATH_WAIT_S is
        hung: it is killed, to be restarted."""
        deadline = time.monotonic() + DEATH_WAIT_S
        while self.process.alive():
            if self.process.healthy():
                return False
            if time.monotonic() >= deadline:
                self.process.kill()
                return True
            time.sleep(0.05)
        return True

    # -- prompts -----------------------------------------------------------------

    def _server_count(self, wire: list[dict], messages: Sequence[Message]) -> int | None:
        """A prompt's exact count: here, with the model's own vocabulary and template
        (engine/prompt_count.py) and each planned image's tile cost, while that agrees
        with what the server reports; else, for text, the server's (/apply-template,
        then /tokenize), and for images an estimate (None: the server cannot count them).

        The server's is remembered per prompt: a turn counts its prompt to fit the
        context, then streams the same prompt, and each round trip waits behind the
        slots' decoding (~0.25 s a count with 8 users on 2 cores)."""
        key = _prompt_key(wire)
        counter = self._local_counter
        images = [image for message in messages for image in message.images]
        if counter is not None and counter.agrees:
            costs = [image_tokens(i.width or 0, i.height or 0, self.tile_budget) for i in images]
            return counter.count(key, wire, costs)
        if images:
            return None
        with self._counts_lock:
            if key in self._counts:
                self._counts.move_to_end(key)
                return self._counts[key]
        count = self._count_on_server(wire)
        if count is not None:
            with self._counts_lock:
                self._counts[key] = count
                while len(self._counts) > COUNTS_KEPT:
                    self._counts.popitem(last=False)
        return count

    def _count_on_server(self, wire: list[dict]) -> int | None:
        import openai

        root = self._client.with_options(base_url=self.process.url, timeout=CONTROL_TIMEOUT_S)
        try:
            prompt = root.post("/apply-template", body={"messages": wire}, cast_to=object)["prompt"]
            body = {"content": prompt, "add_special": True, "parse_special": True}
            return len(root.post("/tokenize", body=body, cast_to=object)["tokens"])
        except (openai.APIError, KeyError, TypeError):
            return None

    # -- generation --------------------------------------------------------------

    def _request(self, wire: list[dict], params: SamplingParams, max_tokens: int) -> dict:
        request = super()._request(wire, params, max_tokens)
        slot, reuse = getattr(self._request_slot, "value", (-1, False))
        request["extra_body"].update(id_slot=slot, cache_prompt=reuse)
        self._request_slot.prompt = _prompt_key(wire)  # to check the count against the server's
        return request

    def stream(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        cancel: threading.Event | None = None,
        session_key: str | None = None,
        cache_scope: str = "",
    ) -> Iterator[StreamEvent]:
        self._require_loaded()
        try:
            self._ensure_running()
        except EngineLoadError as exc:
            raise EngineInputError(str(exc)) from None
        slot, reuse, warm = self.slot_table.take(cache_scope, session_key)
        if session_key and slot >= 0 and not warm:
            reuse = self._restore(slot, cache_scope, session_key) or reuse
        self._request_slot.value = slot, reuse
        self._request_slot.prompt = None
        ended = None
        try:
            for event in self._guarded(super().stream(messages, params, cancel, session_key, cache_scope)):
                if isinstance(event, Final):
                    ended = event
                    self._check_count(event)
                yield event
        finally:
            if session_key and slot >= 0 and ended is not None and ended.finish_reason in ("stop", "length"):
                self._save_then_free(slot, cache_scope, session_key)
            else:
                self.slot_table.give_back(slot)

    def _check_count(self, final: Final) -> None:
        counter, prompt = self._local_counter, getattr(self._request_slot, "prompt", None)
        if counter is not None and prompt is not None and final.usage is not None:
            counter.check(prompt, final.usage.prompt_tokens)

    # -- chats' KV state (engine/slot_state.py) ------------------------------------

    def _slot_action(self, slot: int, action: str, filename: str) -> dict | None:
        import openai

        root = self._client.with_options(base_url=self.process.url, timeout=CONTROL_TIMEOUT_S)
        try:
            return root.post(
                f"/slots/{slot}",
                body={"filename": filename},
                cast_to=object,
                options={"params": {"action": action}},
            )
        except openai.APIError:
            return None

    def _restore(self, slot: int, scope: str, session_key: str) -> bool:
        """The chat's saved state into `slot`; True when the server took it."""
        name = self.slot_states.restorable(scope, session_key) if self.slot_states else None
        if name is None:
            return False
        reply = self._slot_action(slot, "restore", name)
        return bool(reply and reply.get("n_restored"))

    def _save_then_free(self, slot: int, scope: str, session_key: str) -> None:
        """Saved on a thread (the answer is complete; nobody waits for the file); the
        slot stays taken until then, so no other chat's request overwrites it first."""
        if self.slot_states is None:
            self.slot_table.give_back(slot)
            return
        states = self.slot_states
        self.slot_table.saving(slot)

        def save() -> None:
            try:
                if self._slot_action(slot, "save", states.writing_name(scope, session_key)):
                    states.seal(scope, session_key)
                    states.evict()
            finally:
                self.slot_table.give_back(slot)
                self._saving.discard(saver)

        saver = threading.Thread(target=save, name=f"save-slot-{slot}", daemon=True)
        self._saving.add(saver)
        saver.start()

    def _guarded(self, events: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
        """The stream, with a dead child's error replaced by one line and a restart."""
        try:
            for event in events:
                if isinstance(event, Final) and event.finish_reason == "error" and self._died():
                    self._restart_soon()
                    yield replace(event, error=CRASH_LINE)
                    return
                yield event
        except EndpointError:
            if self._died():  # before the first token: nothing to keep
                self._restart_soon()
                raise EndpointError(CRASH_LINE) from None
            raise


def _prompt_key(wire: list[dict]) -> str:
    return json.dumps(wire, sort_keys=True, ensure_ascii=False)


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
