"""What llama.cpp's one context holds in process (engine/llamacpp.py, which serves
no chats: fidelity scoring and parity checks), so a prompt that shares a prefix with
the last one evaluates only its new tokens. Chats' KV state is saved by llama-server's
slots (engine/slot_state.py)."""

from __future__ import annotations

from engine.prefix import ImageSpan, Ledger, reusable_prefix


class KVContext:
    """What the one llama.cpp context holds: the image spans beside llm.input_ids
    (which has the token ids), and the login whose prompts filled it."""

    def __init__(self):
        self.spans: list[ImageSpan] = []
        self.scope = ""  # the login those tokens came from: only its requests reuse them

    def enter(self, llm, scope: str = "") -> None:
        """A prompt reuses whatever prefix matches, but only a prefix left by the same
        `scope`: another login's context is emptied first, so its tokens are neither
        reused nor counted as cached."""
        if scope != self.scope:
            self.forget(llm)
            self.scope = scope

    def keep_prefix(self, llm, wanted: Ledger) -> int:
        """Drops the KV tail that `wanted` does not share; returns positions kept."""
        n_keep = reusable_prefix(llm.input_ids[: llm.n_tokens], self.spans, wanted)
        if n_keep < llm.n_tokens and not (n_keep > 0 and llm._ctx.kv_cache_seq_rm(-1, n_keep, -1)):
            n_keep = 0  # nothing shared, or a cache that cannot drop a tail (recurrent)
            llm.reset()
            llm._ctx.kv_cache_clear()
        llm.n_tokens = n_keep
        self.spans = [span for span in self.spans if span.end <= n_keep]
        return n_keep

    def end_turn(self, llm, prompt_end: int) -> None:
        """Keeps the prompt, drops the answer: its tokens were decoded one at a time,
        and the next turn's prompt evaluates them as a batch, as a cold prefill does."""
        if llm.n_tokens > prompt_end:
            llm._ctx.kv_cache_seq_rm(-1, prompt_end, -1)
            llm.n_tokens = prompt_end

    def forget(self, llm) -> None:
        llm.reset()
        llm._ctx.kv_cache_clear()
        self.spans = []
