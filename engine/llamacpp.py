"""llama.cpp backend: GGUF models through llama-cpp-python, images through mtmd.

Text-only prompts go through `Llama.generate`, which keeps the longest common token
prefix between turns. Prompts with images are tokenized by mtmd into text and image
chunks and evaluated chunk by chunk, so every image lands at its place in the text."""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from engine.images import IMAGE_MIME_TYPES
from engine.protocol import ProgressFn, check_messages
from engine.registry import ModelSpec
from engine.types import (
    Capabilities,
    EngineInputError,
    EngineLoadError,
    Final,
    FinishReason,
    ImagePart,
    Message,
    SamplingParams,
    StreamEvent,
    TextDelta,
    TextPart,
    Usage,
)

RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a fresh random seed per request
IMAGE_POSITION = -1  # marks KV positions holding image embeddings: no token id matches it


def default_threads() -> int:
    cores = os.cpu_count() or 1
    # Hyper-threads slow llama.cpp down on big machines; small ones need every core.
    return cores if cores <= 8 else cores // 2


@dataclass
class PromptPlan:
    """A rendered prompt: for text, its tokens; with images, mtmd's chunk layout."""

    text: str
    images: list[ImagePart]
    tokens: list[int] = field(default_factory=list)
    # One entry per chunk: ("text", n_tokens, -1) or ("image", n_tokens, image_index).
    # A tiled image spans several chunks (Llama 4: one per 336 px tile + an overview).
    layout: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        return sum(n for _, n, _ in self.layout) if self.images else len(self.tokens)

    @property
    def image_tokens(self) -> list[int]:
        """Tokens each image costs, in the order the images sit in the prompt."""
        totals: dict[int, int] = {}
        for kind, n, index in self.layout:
            if kind == "image":
                totals[index] = totals.get(index, 0) + n
        return list(totals.values())


class LlamaCppEngine:
    def __init__(
        self,
        spec: ModelSpec,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        verbose: bool = False,
    ):
        self.spec = spec
        self.name = spec.name
        self.label = spec.label
        self.capabilities = Capabilities(
            vision=spec.vision,
            max_context=spec.n_ctx,
            accepted_mime=("text/plain", *IMAGE_MIME_TYPES) if spec.vision else ("text/plain",),
        )
        self.n_gpu_layers = n_gpu_layers
        self.n_threads = n_threads or default_threads()
        self.verbose = verbose
        self.last_plan: PromptPlan | None = None  # what the last stream sent, for inspection
        self._llm = None
        self._mtmd = None  # MTMDChatHandler: owns the mtmd context for the projector
        self._formatter = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def load(self, progress: ProgressFn | None = None) -> None:
        if self.loaded:
            return
        report = progress or (lambda fraction, what: None)
        missing = self.spec.missing_files()
        if missing:
            raise EngineLoadError(f"{self.label}: file not found: {missing[0]}")
        size_gb = (self.spec.file_bytes() or 0) / 1e9
        report(0.05, f"loading {self.label} ({size_gb:.1f} GB)")
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import MTMDChatHandler

        handler = None
        if self.spec.mmproj_path is not None:
            _quiet_mtmd_logs()
            handler = MTMDChatHandler(clip_model_path=str(self.spec.mmproj_path), verbose=self.verbose)
        try:
            llm = Llama(
                model_path=str(self.spec.model_path),
                n_ctx=self.spec.n_ctx,
                n_gpu_layers=self.n_gpu_layers,
                n_threads=self.n_threads,
                chat_handler=handler,
                verbose=self.verbose,
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineLoadError(f"cannot load {self.spec.model_path}: {exc}") from None
        try:
            if handler is not None:
                report(0.8, "loading the vision projector")
                handler._init_mtmd_context(llm)
            self._formatter = _chat_formatter(llm)
        except Exception as exc:
            llm.close()
            raise EngineLoadError(f"cannot load {self.label}: {exc}") from None
        self._llm, self._mtmd = llm, handler
        report(1.0, f"{self.label} ready")

    def share_cpu(self, engines: int) -> None:
        """Use 1/`engines` of the configured threads (at least one) until told 1 again:
        models answering at the same time split the cores instead of fighting over
        them (llama.cpp's threads spin while they wait, so oversubscribing is slow)."""
        if self._llm is not None:
            threads = max(1, self.n_threads // max(1, engines))
            self._llm._ctx.set_n_threads(threads, threads)

    def unload(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()  # frees the mtmd context too (registered on its exit stack)
            self._llm = self._mtmd = self._formatter = None

    # -- prompts -----------------------------------------------------------------

    def count_tokens(self, messages: Sequence[Message]) -> int:
        self._require_loaded()
        with self._lock, self._prompt(messages) as (plan, _):
            return plan.n_tokens

    def _require_loaded(self) -> None:
        if not self.loaded:
            self.load()

    @contextlib.contextmanager
    def _prompt(self, messages: Sequence[Message]) -> Iterator[tuple[PromptPlan, list | None]]:
        """The rendered prompt and, with images, mtmd's chunks (freed on exit)."""
        check_messages(self, messages)
        images = [img for m in messages for img in m.images]
        plan = PromptPlan(text=self._render(messages, self._media_marker() if images else ""), images=images)
        if not images:
            plan.tokens = self._tokenize(plan.text)
            plan.layout = [("text", len(plan.tokens), -1)]
            yield plan, None
            return
        with self._mtmd_chunks(plan) as chunks:
            mtmd = self._mtmd_cpp
            plan.layout = [_chunk_entry(mtmd, c) for c in chunks]
            yield plan, chunks

    def _render(self, messages: Sequence[Message], marker: str) -> str:
        turns = [
            {
                "role": m.role,
                "content": "".join(p.text if isinstance(p, TextPart) else marker for p in m.parts),
            }
            for m in messages
        ]
        return self._formatter(messages=turns).prompt

    def _tokenize(self, text: str) -> list[int]:
        llm = self._llm
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        bos = llm.token_bos()
        # Templates usually write the BOS text themselves; add it only where missing.
        if llm._model.add_bos_token() and bos >= 0 and tokens[:1] != [bos]:
            tokens.insert(0, bos)
        return tokens

    @property
    def _mtmd_cpp(self):
        return self._mtmd._mtmd_cpp

    def _media_marker(self) -> str:
        return self._mtmd_cpp.mtmd_default_marker().decode("utf-8")

    @contextlib.contextmanager
    def _mtmd_chunks(self, plan: PromptPlan) -> Iterator[list]:
        """mtmd's chunk list for the prompt; C memory freed on exit."""
        mtmd = self._mtmd_cpp
        bitmaps = []
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            for index, image in enumerate(plan.images):
                bitmap = self._mtmd._create_bitmap_from_bytes(image.data)
                bitmaps.append(bitmap)
                # The id travels with every chunk of this image (a tiled image has many).
                mtmd.mtmd_bitmap_set_id(bitmap, str(index).encode())
            text = mtmd.mtmd_input_text()
            encoded = plan.text.encode("utf-8")
            text.text, text.text_len = encoded, len(encoded)
            text.add_special = not encoded.startswith(self._bos_text().encode("utf-8"))
            text.parse_special = True
            array = (mtmd.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
            status = mtmd.mtmd_tokenize(self._mtmd.mtmd_ctx, chunks, ctypes.byref(text), array, len(bitmaps))
            if status != 0:
                raise EngineInputError(
                    f"the images could not be prepared for {self.label} (mtmd error {status})"
                )
            yield [mtmd.mtmd_input_chunks_get(chunks, i) for i in range(mtmd.mtmd_input_chunks_size(chunks))]
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def _bos_text(self) -> str:
        return self._llm.detokenize([self._llm.token_bos()], special=True).decode("utf-8", "ignore")

    # -- generation --------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[StreamEvent]:
        self._require_loaded()
        cancel = cancel or threading.Event()
        started = time.perf_counter()
        with self._lock, self._prompt(messages) as (plan, chunks):
            n_ctx = self._llm.n_ctx()
            if plan.n_tokens >= n_ctx:
                raise EngineInputError(
                    f"the prompt is {plan.n_tokens:,} tokens but {self.label} is loaded with a "
                    f"{n_ctx:,}-token context; shorten it or raise -c/--ctx"
                )
            self.last_plan = plan
            yield from self._generate(plan, chunks, params, cancel, started)

    def _generate(self, plan, chunks, params, cancel, started) -> Iterator[StreamEvent]:
        counter = _TokenCounter(started, plan.n_tokens)
        try:
            tokens = self._eval_chunks(chunks, cancel) if chunks is not None else plan.tokens
            if cancel.is_set():
                yield counter.final("cancelled")
                return
            budget = min(params.max_tokens, self._llm.n_ctx() - plan.n_tokens)
            reason = yield from self._decode(tokens, params, budget, cancel, counter)
        except Exception as exc:  # a C-level failure mid-stream: end it, keep serving
            yield counter.final("error", error=f"{type(exc).__name__}: {exc}")
            return
        yield counter.final(reason)

    def _eval_chunks(self, chunks: list, cancel: threading.Event) -> list[int]:
        """Evaluate text and image chunks in order; returns the token list for generate()."""
        import llama_cpp

        llm, mtmd = self._llm, self._mtmd_cpp
        llm.reset()
        llm._ctx.kv_cache_clear()
        for chunk in chunks:
            if cancel.is_set():
                break
            if _chunk_kind(mtmd, chunk) == "text":
                llm.eval(_chunk_text_tokens(mtmd, chunk))
                continue
            n_past = llm.n_tokens
            new_n_past = llama_cpp.llama_pos(0)
            status = mtmd.mtmd_helper_eval_chunk_single(
                self._mtmd.mtmd_ctx,
                llm._ctx.ctx,
                chunk,
                llama_cpp.llama_pos(n_past),
                llama_cpp.llama_seq_id(0),
                llm.n_batch,
                False,
                ctypes.byref(new_n_past),
            )
            if status != 0:
                raise RuntimeError(f"image evaluation failed (mtmd error {status})")
            llm.input_ids[n_past : new_n_past.value] = IMAGE_POSITION
            llm.n_tokens = new_n_past.value
        return llm.input_ids[: llm.n_tokens].tolist()

    def _decode(self, tokens, params: SamplingParams, budget: int, cancel, counter) -> Iterator[TextDelta]:
        import llama_cpp

        llm = self._llm
        vocab = llm._model.vocab
        llm.set_seed(RANDOM_SEED if params.seed is None else params.seed)
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        generator = llm.generate(
            tokens,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
        )
        reason: FinishReason = "length"
        try:
            for token in generator:
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    reason = "stop"
                    break
                counter.token()
                if text := utf8.decode(llm.detokenize([token])):
                    yield TextDelta(text)
                if cancel.is_set():
                    reason = "cancelled"
                    break
                if counter.completion_tokens >= budget:
                    break
        finally:
            generator.close()
        if tail := utf8.decode(b"", final=True):
            yield TextDelta(tail)
        return reason


class _TokenCounter:
    """Times one request: first token, decode rate, and the final event."""

    def __init__(self, started: float, prompt_tokens: int):
        self.started = started
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.first_at: float | None = None

    def token(self) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.completion_tokens += 1

    def final(self, reason: FinishReason, error: str | None = None) -> Final:
        now = time.perf_counter()
        first = self.first_at or now
        ttft = first - self.started
        decode_time = now - first
        usage = Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            ttft_s=ttft,
            prompt_tps=self.prompt_tokens / ttft if ttft > 0 else 0.0,
            decode_tps=(self.completion_tokens - 1) / decode_time
            if self.completion_tokens > 1 and decode_time > 0
            else 0.0,
            total_s=now - self.started,
        )
        return Final(finish_reason=reason, usage=usage, error=error)


def _quiet_mtmd_logs() -> None:
    """mtmd prints per-image progress to stderr on its own logger; send it through
    llama-cpp-python's, which honours verbose=False, so `ask` output stays clean."""
    import llama_cpp.mtmd_cpp as mtmd
    from llama_cpp._logger import llama_log_callback

    mtmd.mtmd_log_set(llama_log_callback, ctypes.c_void_p(0))
    mtmd.mtmd_helper_log_set(llama_log_callback, ctypes.c_void_p(0))


def _chat_formatter(llm):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise EngineLoadError("the GGUF file has no chat template (tokenizer.chat_template)")

    def piece(token: int) -> str:
        return llm.detokenize([token], special=True).decode("utf-8", "ignore") if token >= 0 else ""

    return Jinja2ChatFormatter(
        template=template, eos_token=piece(llm.token_eos()), bos_token=piece(llm.token_bos())
    )


def _chunk_kind(mtmd, chunk) -> str:
    return "text" if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT else "image"


def _chunk_entry(mtmd, chunk) -> tuple[str, int, int]:
    kind = _chunk_kind(mtmd, chunk)
    index = int(mtmd.mtmd_input_chunk_get_id(chunk) or -1) if kind == "image" else -1
    return kind, mtmd.mtmd_input_chunk_get_n_tokens(chunk), index


def _chunk_text_tokens(mtmd, chunk) -> list[int]:
    count = ctypes.c_size_t()
    pointer = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
    return [pointer[i] for i in range(count.value)]
