"""transformers backend: Llama 4 checkpoints (BF16 or Meta's FP8) on torch, spread
over every visible GPU with device_map="auto"; on CPU for small checkpoints.

The processor's chat template places each image where it sits in the message and
expands it into Llama 4's tile tokens (<|image_start|> … <|patch|> … <|image_end|>).
Generation runs on a worker thread that feeds a TextIteratorStreamer; Stop is a
stopping criterion checked after every token. A text prompt is read in chunks
(transformers' chunked prefill) with its progress reported, and Stop honoured, after
each; a prompt with images in one forward pass (raw pixel values cannot be split).
torch and transformers are imported when a model loads, never at import time."""

from __future__ import annotations

import gc
import io
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.base import BaseEngine
from engine.image_plan import META, TileBudget, plan_messages
from engine.protocol import ProgressFn, check_messages
from engine.spec import ModelSpec
from engine.timing import TokenCounter
from engine.types import (
    EngineInputError,
    EngineLoadError,
    FinishReason,
    ImagePart,
    Message,
    PromptProgress,
    SamplingParams,
    StreamEvent,
    TextDelta,
)

FP8_METHODS = ("fbgemm_fp8", "fp8")
DEFAULT_PREFILL_CHUNK = 512


class _Cancelled(Exception):
    """Stop pressed while the prompt is read: ends generate() between two chunks."""


class TransformersEngine(BaseEngine):
    def __init__(self, spec: ModelSpec, dtype: str = "auto", prefill_chunk: int = DEFAULT_PREFILL_CHUNK):
        super().__init__(spec)
        self.dtype = dtype
        self.prefill_chunk = prefill_chunk  # prompt tokens per forward pass while reading
        self.last_inputs: dict | None = None  # what the last stream sent, for inspection
        self.tile_budget: TileBudget | None = None  # set for Llama 4
        self._model = None
        self._processor = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self, progress: ProgressFn | None = None) -> None:
        if self.loaded:
            return
        report = progress or (lambda fraction, what: None)
        path = self.spec.model_path
        config = _read_config(path)
        report(0.05, f"loading {self.label} with transformers")
        import torch

        _check_quantization(config, self.label)
        _quiet_transformers()
        from transformers import AutoProcessor

        from engine.llama4_processor import register

        register()
        try:
            processor = AutoProcessor.from_pretrained(path)
            report(0.2, f"loading weights from {path}")
            model = (
                _model_class(config)
                .from_pretrained(path, device_map="auto", dtype=self._torch_dtype(torch))
                .eval()
            )
        except torch.OutOfMemoryError:
            raise EngineLoadError(f"not enough GPU memory for {self.label}") from None
        except (ImportError, OSError, ValueError, RuntimeError) as exc:
            raise EngineLoadError(f"cannot load {path}: {_first_line(exc)}") from None
        self._model, self._processor = model, processor
        self.tile_budget = _llama4_budget(config, processor)
        report(1.0, f"{self.label} ready on {_devices(model)}")

    def _torch_dtype(self, torch):
        if self.dtype != "auto":
            return getattr(torch, self.dtype)
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32

    def unload(self) -> None:
        with self._lock:
            if self._model is None:
                return
            self._model = self._processor = self.tile_budget = None
            gc.collect()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # -- prompts -----------------------------------------------------------------

    def count_tokens(self, messages: Sequence[Message]) -> int:
        self._require_loaded()
        with self._lock:
            return int(self._inputs(messages)["input_ids"].shape[-1])

    def tokenize_plain(self, text: str) -> list[int]:
        """Token ids of plain text: no BOS or other special tokens (a document's text)."""
        self._require_loaded()
        return self._tokenizer(text, add_special_tokens=False)["input_ids"]

    def detokenize(self, tokens: Sequence[int]) -> str:
        self._require_loaded()
        return self._tokenizer.decode(list(tokens))

    @property
    def bos_token(self) -> int:
        self._require_loaded()
        return self._tokenizer.bos_token_id

    def prompt_logprobs(self, tokens: Sequence[int]) -> Iterator:
        """Log-probabilities of the next token at every position of `tokens`: float32
        arrays of rows (position, vocab), a chunk of positions at a time."""
        import torch

        self._require_loaded()
        with self._lock, torch.no_grad():
            ids = torch.tensor([list(tokens)], device=self._model.device)
            logits = self._model(input_ids=ids).logits[0]
            for start in range(0, logits.shape[0], 512):
                yield torch.log_softmax(logits[start : start + 512].float(), dim=-1).cpu().numpy()

    @property
    def _tokenizer(self):
        return getattr(self._processor, "tokenizer", self._processor)

    def _inputs(self, messages: Sequence[Message]) -> dict:
        """Token ids (and pixel values) for the chat, on the model's first device."""
        check_messages(self, messages)
        try:
            inputs = self._processor.apply_chat_template(
                [_hf_message(m) for m in plan_messages(messages, self.tile_budget)],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
            )
        except (ValueError, OSError) as exc:
            raise EngineInputError(f"{self.label} cannot take this input: {_first_line(exc)}") from None
        inputs = dict(inputs.to(self._model.device))
        if "pixel_values" in inputs:  # the vision tower runs in the model's dtype
            inputs["pixel_values"] = inputs["pixel_values"].to(self._model.dtype)
        inputs.pop("aspect_ratios", None)
        return inputs

    # -- generation --------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        cancel: threading.Event | None = None,
        session_key: str | None = None,  # KV reuse across turns is llama.cpp's; accepted for the protocol
        cache_scope: str = "",  # nothing is reused between requests here
    ) -> Iterator[StreamEvent]:
        self._require_loaded()
        cancel = cancel or threading.Event()
        started = time.perf_counter()
        with self._lock:
            inputs = self._inputs(messages)
            n_prompt = int(inputs["input_ids"].shape[-1])
            if n_prompt >= self.spec.n_ctx:
                raise EngineInputError(
                    f"the prompt is {n_prompt:,} tokens but {self.label} runs with a "
                    f"{self.spec.n_ctx:,}-token context; shorten it or raise -c/--ctx"
                )
            self.last_inputs = inputs
            budget = min(params.max_tokens, self.spec.n_ctx - n_prompt)
            yield from self._generate(inputs, params, budget, cancel, TokenCounter(started, n_prompt))

    def _generate(self, inputs, params, budget, cancel, counter) -> Iterator[StreamEvent]:
        stop = threading.Event()  # set by Stop, or when the consumer goes away
        streamer = _streamer(self._processor, counter)
        result: dict = {}
        yield counter.reading(0)
        hooks = _watch_reading(self._model, counter, streamer.text_queue.put, _any_set(cancel, stop))
        worker = threading.Thread(
            target=self._run_generate,
            args=(inputs, params, budget, streamer, _stop_when(cancel, stop), result),
            name=f"generate-{self.name}",
            daemon=True,
        )
        worker.start()
        try:
            for item in streamer:  # the reading's progress comes through the same queue
                if isinstance(item, PromptProgress):
                    yield item
                elif item:
                    yield TextDelta(item)
        finally:
            stop.set()  # a consumer that left early stops the worker at the next token
            worker.join()
            for hook in hooks:
                hook.remove()
        if "cancelled" in result:
            yield counter.final("cancelled")
            return
        if "error" in result:
            yield counter.final("error", error=result["error"])
            return
        new_tokens = result["sequences"][0, inputs["input_ids"].shape[-1] :].tolist()
        reason = self._finish_reason(new_tokens, cancel, budget)
        counter.completion_tokens = len(self._trim_end(new_tokens))
        yield counter.final(reason)

    def _run_generate(self, inputs, params, budget, streamer, stopping, result: dict) -> None:
        import torch
        from transformers import StoppingCriteriaList

        # Raw pixel values cannot be split across chunks: a prompt with images is read at once.
        chunk = None if "pixel_values" in inputs else self.prefill_chunk
        try:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            with torch.inference_mode():
                result["sequences"] = self._model.generate(
                    **inputs,
                    max_new_tokens=max(budget, 1),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([stopping]),
                    prefill_chunk_size=chunk,
                    **_sampling_kwargs(params),
                )
        except _Cancelled:
            result["cancelled"] = True
            streamer.end()
        except Exception as exc:  # out of memory, a kernel error: end the stream, keep serving
            result["error"] = f"{type(exc).__name__}: {_first_line(exc)}"
            streamer.end()

    def _eos_ids(self) -> set[int]:
        eos = self._model.generation_config.eos_token_id
        return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])

    def _trim_end(self, tokens: list[int]) -> list[int]:
        ends = self._eos_ids() | {self._model.generation_config.pad_token_id}
        while tokens and tokens[-1] in ends:
            tokens = tokens[:-1]
        return tokens

    def _finish_reason(self, tokens: list[int], cancel: threading.Event, budget: int) -> FinishReason:
        if cancel.is_set():
            return "cancelled"
        if tokens and tokens[-1] in self._eos_ids():
            return "stop"
        return "length" if len(tokens) >= budget else "stop"


def _read_config(path: Path | None) -> dict:
    config_file = Path(path or "") / "config.json"
    if not config_file.is_file():
        raise EngineLoadError(f"not a transformers checkpoint (no config.json): {path}")
    try:
        return json.loads(config_file.read_text())
    except (OSError, ValueError):
        raise EngineLoadError(f"{config_file} is not readable JSON") from None


def _check_quantization(config: dict, label: str) -> None:
    """Say what an FP8 checkpoint needs before transformers fails deep inside loading."""
    method = (config.get("quantization_config") or {}).get("quant_method", "")
    if method not in FP8_METHODS:
        return
    import importlib.util

    import torch

    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (FP8 kernels do not run on CPU)")
    elif torch.cuda.get_device_capability()[0] < 9:
        missing.append("a GPU with compute capability 9.0+ (H100/H200; this one is older)")
    if method == "fbgemm_fp8" and importlib.util.find_spec("fbgemm_gpu") is None:
        missing.append("the fbgemm-gpu package (pip install fbgemm-gpu-genai)")
    if missing:
        raise EngineLoadError(
            f"{label} is an FP8 ({method}) checkpoint; missing here: {'; '.join(missing)}. "
            "Use the BF16 checkpoint, or serve it with vLLM (docs/serving.md)"
        )


def _model_class(config: dict):
    import transformers

    if config.get("model_type") == "llama4":
        return transformers.Llama4ForConditionalGeneration
    if "vision_config" in config:
        return transformers.AutoModelForImageTextToText
    return transformers.AutoModelForCausalLM


def _llama4_budget(config: dict, processor) -> TileBudget | None:
    """The tiles this checkpoint's processor cuts (Meta's: up to 16 of 336 px)."""
    if config.get("model_type") != "llama4":
        return None
    images = processor.image_processor
    vision = config.get("vision_config", {})
    max_tiles = int(getattr(images, "max_patches", META.max_tiles))
    return TileBudget(
        tile=int(images.size["height"]),
        max_tiles=max_tiles,
        max_side=max_tiles,
        patch=int(vision.get("patch_size", META.patch)),
        merge=round(1 / float(vision.get("pixel_shuffle_ratio", 1 / META.merge))),
    )


def _hf_message(message: Message) -> dict:
    """A chat message as processors take it; images decoded, in their place."""
    if not message.images:  # a plain string suits every template, text-only ones too
        return {"role": message.role, "content": message.plain_text}
    content = [
        {"type": "image", "image": _pil(part)}
        if isinstance(part, ImagePart)
        else {"type": "text", "text": part.text}
        for part in message.parts
    ]
    return {"role": message.role, "content": content}


def _pil(part: ImagePart):
    from PIL import Image

    with Image.open(io.BytesIO(part.data)) as img:
        return img.convert("RGB")


def _sampling_kwargs(params: SamplingParams) -> dict:
    if params.temperature <= 0:
        return {"do_sample": False, "repetition_penalty": params.repeat_penalty}
    return {
        "do_sample": True,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "min_p": params.min_p or None,
        "top_k": params.top_k,  # 0 = off (transformers' own default would be 50)
        "repetition_penalty": params.repeat_penalty,
    }


def _streamer(processor, counter: TokenCounter):
    """A TextIteratorStreamer that notes when the first new token arrives."""
    from transformers import TextIteratorStreamer

    class TimedStreamer(TextIteratorStreamer):
        def put(self, value):
            if not (self.skip_prompt and self.next_tokens_are_prompt) and counter.first_at is None:
                counter.first_at = time.perf_counter()
            super().put(value)

    tokenizer = getattr(processor, "tokenizer", processor)
    return TimedStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def _watch_reading(model, counter: TokenCounter, report, cancelled) -> list:
    """Forward hooks on `model` that, while the prompt is read, `report` the tokens read
    after each forward pass and raise _Cancelled before the next one once `cancelled()`.
    Decoding passes (after the whole prompt) return at once."""
    read = [0]

    def length(kwargs) -> int:
        tokens = kwargs.get("input_ids")
        tokens = tokens if tokens is not None else kwargs.get("inputs_embeds")
        return int(tokens.shape[1]) if tokens is not None else 0

    def before(module, args, kwargs):
        if read[0] < counter.prompt_tokens and cancelled():
            raise _Cancelled

    def after(module, args, kwargs, output):
        if read[0] < counter.prompt_tokens:
            read[0] = min(read[0] + length(kwargs), counter.prompt_tokens)
            report(counter.reading(read[0]))

    return [
        model.register_forward_pre_hook(before, with_kwargs=True),
        model.register_forward_hook(after, with_kwargs=True),
    ]


def _any_set(*events: threading.Event):
    return lambda: any(event.is_set() for event in events)


def _stop_when(*events: threading.Event):
    """A stopping criterion that ends generation once any of the events is set."""
    import torch
    from transformers import StoppingCriteria

    class StopOnEvent(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            stop = any(event.is_set() for event in events)
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return StopOnEvent()


def _quiet_transformers() -> None:
    # Progress bars and advice on stderr would interleave with `ask` output.
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _devices(model) -> str:
    placement = getattr(model, "hf_device_map", None) or {}
    devices = sorted({str(d) for d in placement.values()}) or [str(model.device)]
    return ", ".join(devices)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
