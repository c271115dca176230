"""llama.cpp backend: GGUF models through llama-cpp-python, images through mtmd.

Every prompt becomes a ledger of what each KV position should hold (text tokens;
with images, mtmd's chunks keyed by image hash). Only the part after the longest
prefix already in the KV cache is evaluated, so a follow-up turn costs its new
tokens, and an image already in the context is never encoded again. Reuse stays
within a `cache_scope` (one login): another user's request starts cold, so the
"cached" count says nothing about what others sent.

It serves no chats: every GGUF chat is answered by a llama-server child
(engine/llama_server.py). This engine is for what needs llama.cpp's logits, which
the server does not hand out: fidelity scoring and the parity tests."""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import hashlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.base import BaseEngine
from engine.image_plan import LLAMA_CPP, TileBudget, plan_messages
from engine.kv_state import KVContext
from engine.mtmd_chunks import ImageEvaluator, chunk_entry, chunk_keys, chunks_ledger
from engine.prefix import IMAGE_POSITION, ImageSpan, Ledger, batches
from engine.protocol import ProgressFn, check_messages
from engine.slot_state import file_identity
from engine.spec import ModelSpec
from engine.timing import TokenCounter
from engine.types import (
    EngineInputError,
    EngineLoadError,
    FinishReason,
    ImagePart,
    Message,
    SamplingParams,
    StreamEvent,
    TextDelta,
    TextPart,
)

RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a fresh random seed per request
DEFAULT_IMAGE_CACHE_BYTES = 512 * 2**20
DEFAULT_BATCH = 512  # prompt tokens per llama_decode call (llama-cpp-python's default)


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
    ledger: Ledger = field(default_factory=Ledger)  # what the KV cache holds once evaluated
    keys: list[str] = field(default_factory=list)  # per chunk: "" for text, else the image chunk key
    starts: list[int] = field(default_factory=list)  # per chunk: its first KV position

    @property
    def n_tokens(self) -> int:
        return sum(n for _, n, _ in self.layout) if self.images else len(self.tokens)

    def tokens_before(self, position: int) -> int:
        """Prompt tokens that fill the KV cache up to `position` (an image chunk may take
        a different number of positions than it has tokens)."""
        if not self.images:
            return position
        ends = [*self.starts[1:], len(self.ledger)]
        done = 0
        for (kind, n, _), start, end in zip(self.layout, self.starts, ends, strict=True):
            if position >= end:
                done += n
            elif position > start and kind == "text":
                done += position - start
        return done

    @property
    def image_tokens(self) -> list[int]:
        """Tokens each image costs, in the order the images sit in the prompt."""
        totals: dict[int, int] = {}
        for kind, n, index in self.layout:
            if kind == "image":
                totals[index] = totals.get(index, 0) + n
        return list(totals.values())


class LlamaCppEngine(BaseEngine):
    def __init__(
        self,
        spec: ModelSpec,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        verbose: bool = False,
        image_cache_bytes: int = DEFAULT_IMAGE_CACHE_BYTES,
        n_batch: int = DEFAULT_BATCH,
    ):
        super().__init__(spec)
        self.n_batch = n_batch  # the prompt's reading is reported after each batch
        self.n_gpu_layers = n_gpu_layers
        self.n_threads = n_threads or default_threads()
        self.verbose = verbose
        self.image_cache_bytes = image_cache_bytes
        self.last_plan: PromptPlan | None = None  # what the last stream sent, for inspection
        self._llm = None
        self._mtmd = None  # MTMDChatHandler: owns the mtmd context for the projector
        self._formatter = None
        self._images: ImageEvaluator | None = None
        self._projector_id = ""
        self.tile_budget: TileBudget | None = None  # set for a Llama 4 projector
        self._context = KVContext()
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def image_encodes(self) -> int:
        """Vision-encoder runs since load (a tiled image may take several)."""
        return self._images.encodes if self._images else 0

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
                n_batch=self.n_batch,
                chat_handler=handler,
                # Sliding-window layers (Llama 4's chunked attention) keep every position,
                # so the KV tail after any reused prefix can be dropped and re-evaluated.
                swa_full=True,
                verbose=self.verbose,
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineLoadError(f"cannot load {self.spec.model_path}: {exc}") from None
        try:
            if handler is not None:
                report(0.8, "loading the vision projector")
                handler._init_mtmd_context(llm)
                self._images = ImageEvaluator(handler, self.image_cache_bytes)
                self.tile_budget = mmproj_tile_budget(self.spec.mmproj_path)
                projector = file_identity(self.spec.mmproj_path) or ""
                self._projector_id = hashlib.sha256(projector.encode()).hexdigest()[:12]
            self._formatter = _chat_formatter(llm)
        except Exception as exc:
            llm.close()
            raise EngineLoadError(f"cannot load {self.label}: {exc}") from None
        self._llm, self._mtmd = llm, handler
        self._context = KVContext()
        report(1.0, f"{self.label} ready")

    def unload(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()  # frees the mtmd context too (registered on its exit stack)
            self._llm = self._mtmd = self._formatter = self._images = None
            self.tile_budget = None
            self._context = KVContext()

    def drop_context(self) -> None:
        """Empty the KV cache and the image embeddings: the next prompt is evaluated
        cold, as after a fresh load."""
        with self._lock:
            if self._llm is not None:
                self._context.forget(self._llm)
            if self._images is not None:
                self._images.cache.clear()

    # -- prompts -----------------------------------------------------------------

    def count_tokens(self, messages: Sequence[Message]) -> int:
        self._require_loaded()
        with self._lock, self._prompt(messages) as (plan, _):
            return plan.n_tokens

    def prompt_sequence(self, messages: Sequence[Message]) -> list[int]:
        """The prompt as the KV cache will hold it: token ids, and IMAGE_POSITION at
        each position an image embedding takes (for parity checks against Meta's)."""
        self._require_loaded()
        with self._lock, self._prompt(messages) as (plan, _):
            return list(plan.ledger.tokens)

    def next_token_logits(self, messages: Sequence[Message]):
        """Evaluates the prompt (reusing the KV prefix as a turn does) and returns the
        float32 logits of the token that would come next."""
        import llama_cpp
        import numpy as np

        self._require_loaded()
        with self._lock, self._prompt(messages) as (plan, chunks):
            self._context.enter(self._llm)
            kept = self._context.keep_prefix(self._llm, plan.ledger)
            for _ in self._evaluate(plan, chunks, kept, threading.Event()):
                pass
            n_vocab = llama_cpp.llama_vocab_n_tokens(self._llm._model.vocab)
            logits = llama_cpp.llama_get_logits_ith(self._llm._ctx.ctx, -1)
            result = np.ctypeslib.as_array(logits, shape=(n_vocab,)).copy()
            self._context.end_turn(self._llm, len(plan.ledger))
            return result

    def tokenize_plain(self, text: str) -> list[int]:
        """Token ids of plain text: no BOS, special tokens not parsed (a document's text)."""
        self._require_loaded()
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def detokenize(self, tokens: Sequence[int]) -> str:
        self._require_loaded()
        return self._llm.detokenize(list(tokens)).decode("utf-8", "replace")

    @property
    def bos_token(self) -> int:
        self._require_loaded()
        return self._llm.token_bos()

    def prompt_logprobs(self, tokens: Sequence[int]) -> Iterator:
        """Log-probabilities of the next token at every position of `tokens`, evaluated
        from an empty context: one float32 array of rows (position, vocab) per batch, so
        memory stays at one batch of logits. The KV cache is emptied before and after."""
        import llama_cpp
        import numpy as np

        self._require_loaded()
        with self._lock:
            llm = self._llm
            if len(tokens) > llm.n_ctx():
                raise EngineInputError(
                    f"{len(tokens):,} tokens do not fit {self.label}'s {llm.n_ctx():,} context"
                )
            n_vocab = llama_cpp.llama_vocab_n_tokens(llm._model.vocab)
            self._context.forget(llm)
            try:
                for start, end in batches(len(tokens), llm.n_batch):
                    llm._batch.set_batch(batch=list(tokens[start:end]), n_past=start, logits_all=True)
                    llm._ctx.decode(llm._batch)
                    rows = llama_cpp.llama_get_logits(llm._ctx.ctx)
                    yield log_softmax(np.ctypeslib.as_array(rows, shape=(end - start, n_vocab)))
            finally:
                self._context.forget(llm)

    def answer_logprobs(self, messages: Sequence[Message], answer: Sequence[int]):
        """Log-probabilities of the next token at each of `answer`'s positions after the
        prompt `messages` (images on their planned canvases, as a turn sees them), as
        one float32 array (len(answer), vocab), and the tokens each image took. The
        context starts empty and is emptied after."""
        import llama_cpp
        import numpy as np

        self._require_loaded()
        with self._lock, self._prompt(messages) as (plan, chunks):
            llm = self._llm
            if plan.n_tokens + len(answer) > llm.n_ctx():
                raise EngineInputError(
                    f"{plan.n_tokens + len(answer):,} tokens do not fit "
                    f"{self.label}'s {llm.n_ctx():,} context"
                )
            n_vocab = llama_cpp.llama_vocab_n_tokens(llm._model.vocab)
            self._context.enter(llm)
            self._context.forget(llm)
            try:
                for _ in self._evaluate(plan, chunks, 0, threading.Event()):
                    pass
                first = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
                rows = [log_softmax(np.ctypeslib.as_array(first, shape=(1, n_vocab)))]
                n_past = llm.n_tokens
                for start, end in batches(len(answer) - 1, llm.n_batch):
                    batch = list(answer[start:end])
                    llm._batch.set_batch(batch=batch, n_past=n_past + start, logits_all=True)
                    llm._ctx.decode(llm._batch)
                    out = llama_cpp.llama_get_logits(llm._ctx.ctx)
                    rows.append(log_softmax(np.ctypeslib.as_array(out, shape=(end - start, n_vocab))))
                return np.concatenate(rows), plan.image_tokens
            finally:
                self._context.forget(llm)

    @contextlib.contextmanager
    def _prompt(self, messages: Sequence[Message]) -> Iterator[tuple[PromptPlan, list | None]]:
        """The rendered prompt and, with images, mtmd's chunks (freed on exit)."""
        check_messages(self, messages)
        # Llama 4: every image on the canvas our plan chose, so mtmd cuts Meta's tiles.
        messages = plan_messages(messages, self.tile_budget)
        images = [img for m in messages for img in m.images]
        plan = PromptPlan(text=self._render(messages, self._media_marker() if images else ""), images=images)
        if not images:
            plan.tokens = self._tokenize(plan.text)
            plan.layout = [("text", len(plan.tokens), -1)]
            plan.ledger = Ledger(list(plan.tokens))
            yield plan, None
            return
        with self._mtmd_chunks(plan) as chunks:
            mtmd = self._mtmd_cpp
            plan.layout = [chunk_entry(mtmd, c) for c in chunks]
            plan.keys = chunk_keys(mtmd, chunks, images, self._projector_id)
            plan.ledger, plan.starts = chunks_ledger(mtmd, chunks, plan.keys)
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
        return prompt_tokens(self._llm, text)

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
        *,
        session_key: str | None = None,
        cache_scope: str = "",
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
            self._context.enter(self._llm, cache_scope)
            counter = TokenCounter(started, plan.n_tokens)
            try:
                yield from self._generate(plan, chunks, params, cancel, counter)
            finally:
                # After the Final event (or the caller leaving early), so saving never
                # delays the answer's metrics.
                if counter.failed:
                    self._context.forget(self._llm)
                else:
                    self._context.end_turn(self._llm, len(plan.ledger))

    def _generate(self, plan, chunks, params, cancel, counter) -> Iterator[StreamEvent]:
        try:
            kept = self._context.keep_prefix(self._llm, plan.ledger)
            counter.cached = plan.tokens_before(kept)
            yield counter.reading(counter.cached)
            for position in self._evaluate(plan, chunks, kept, cancel):
                yield counter.reading(plan.tokens_before(position))
            if cancel.is_set():
                yield counter.final("cancelled")
                return
            budget = min(params.max_tokens, self._llm.n_ctx() - plan.n_tokens)
            tokens = self._llm.input_ids[: self._llm.n_tokens].tolist()
            reason = yield from self._decode(tokens, params, budget, cancel, counter)
        except Exception as exc:  # a C-level failure mid-stream: end it, keep serving
            counter.failed = True  # the KV cache may not match the ledger any more
            yield counter.final("error", error=f"{type(exc).__name__}: {exc}")
            return
        yield counter.final(reason)

    def _evaluate(self, plan: PromptPlan, chunks, n_keep: int, cancel: threading.Event) -> Iterator[int]:
        """Evaluates the prompt from position `n_keep` on: text in batches, image
        chunks from cached embeddings where the encoder already saw them. Yields the
        KV position reached after each batch and each image chunk; stops early, between
        two of them, once `cancel` is set."""
        if chunks is None:
            yield from self._eval_text(plan.tokens[n_keep:], cancel)
            return
        llm, context = self._llm, self._context
        ends = [*plan.starts[1:], len(plan.ledger)]
        for chunk, key, start, end in zip(chunks, plan.keys, plan.starts, ends, strict=True):
            if end <= n_keep:
                continue
            if cancel.is_set():
                return
            if not key:
                yield from self._eval_text(plan.ledger.tokens[max(start, n_keep) : end], cancel)
                continue
            llm.n_tokens = self._images.decode(llm, chunk, key, context.scope)
            llm.input_ids[start : llm.n_tokens] = IMAGE_POSITION
            context.spans.append(ImageSpan(start, llm.n_tokens - start, key))
            yield llm.n_tokens

    def _eval_text(self, tokens: list[int], cancel: threading.Event) -> Iterator[int]:
        llm = self._llm
        for start, end in batches(len(tokens), llm.n_batch):
            if cancel.is_set():
                return
            llm.eval(tokens[start:end])
            yield llm.n_tokens

    def _decode(self, tokens, params: SamplingParams, budget: int, cancel, counter) -> Iterator[TextDelta]:
        import llama_cpp

        llm = self._llm
        vocab = llm._model.vocab
        # Mod 2**32: llama.cpp seeds are 32-bit; a bigger one (the API takes 64-bit) must not overflow.
        llm.set_seed(RANDOM_SEED if params.seed is None else params.seed % 2**32)
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        # The whole prompt is in the KV cache with fresh logits: generate() samples at once.
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
                counter.tokens()
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


def log_softmax(logits):
    """Row-wise log-softmax as a new float32 array (llama.cpp reuses its logits buffer)."""
    import numpy as np

    rows = np.array(logits, dtype=np.float32)
    rows -= rows.max(axis=-1, keepdims=True)
    rows -= np.log(np.exp(rows).sum(axis=-1, keepdims=True))
    return rows


def mmproj_tile_budget(path: Path) -> TileBudget | None:
    """The tiles a Llama 4 projector takes (its tile and patch size from the mmproj
    header, llama.cpp's 3x3 grids); None for other projectors, which tile their own way."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path), "r").fields

    def value(key: str):
        field = fields.get(key)
        return field.contents() if field is not None else None

    if (value("clip.projector_type") or value("clip.vision.projector_type")) != "llama4":
        return None
    return TileBudget(
        tile=int(value("clip.vision.image_size")),
        patch=int(value("clip.vision.patch_size")),
        merge=int(value("clip.vision.projector.scale_factor") or LLAMA_CPP.merge),
        max_tiles=LLAMA_CPP.max_tiles,
        max_side=LLAMA_CPP.max_side,
    )


def _quiet_mtmd_logs() -> None:
    """mtmd prints per-image progress to stderr on its own logger; send it through
    llama-cpp-python's, which honours verbose=False, so `ask` output stays clean."""
    import llama_cpp.mtmd_cpp as mtmd
    from llama_cpp._logger import llama_log_callback

    mtmd.mtmd_log_set(llama_log_callback, ctypes.c_void_p(0))
    mtmd.mtmd_helper_log_set(llama_log_callback, ctypes.c_void_p(0))


def prompt_tokens(llm, text: str) -> list[int]:
    """A rendered prompt's tokens, special tokens parsed, BOS first where the model wants one."""
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    bos = llm.token_bos()
    # Templates usually write the BOS text themselves; add it only where missing.
    if llm._model.add_bos_token() and bos >= 0 and tokens[:1] != [bos]:
        tokens.insert(0, bos)
    return tokens


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
