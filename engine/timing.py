"""Times one request the same way for every backend: the prompt's reading progress,
time to first token, prompt and decode rates, and the Final event that ends the stream."""

from __future__ import annotations

import time

from engine.types import Final, FinishReason, PromptProgress, Usage


class TokenCounter:
    def __init__(self, started: float, prompt_tokens: int):
        self.started = started
        self.prompt_tokens = prompt_tokens
        self.cached = 0  # prompt tokens a KV cache already held (not evaluated)
        self.completion_tokens = 0
        self.failed = False
        self.first_at: float | None = None

    def reading(self, done: int | None, reused: int | None = None) -> PromptProgress:
        """`done` of the prompt's tokens read so far (None: not known, only the wait)."""
        reused = self.cached if reused is None else reused
        return PromptProgress(done, self.prompt_tokens, time.perf_counter() - self.started, reused)

    def tokens(self, count: int = 1) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.completion_tokens += count

    def final(self, reason: FinishReason, error: str | None = None) -> Final:
        now = time.perf_counter()
        first = self.first_at or now
        ttft = first - self.started
        decode_time = now - first
        usage = Usage(
            prompt_tokens=self.prompt_tokens,
            cached_tokens=self.cached,
            completion_tokens=self.completion_tokens,
            ttft_s=ttft,
            # The rate of what was evaluated: reused tokens cost nothing.
            prompt_tps=(self.prompt_tokens - self.cached) / ttft if ttft > 0 else 0.0,
            decode_tps=(self.completion_tokens - 1) / decode_time
            if self.completion_tokens > 1 and decode_time > 0
            else 0.0,
            total_s=now - self.started,
        )
        return Final(finish_reason=reason, usage=usage, error=error)
