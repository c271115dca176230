"""What the KV cache holds, position by position, and how much of a new prompt it
already covers.

A context is a `Ledger`: one token id per KV position, with IMAGE_POSITION where an
image chunk's embeddings sit, plus `ImageSpan`s that name those chunks (hash of the
image bytes + projector + tile number). Two ledgers share a prefix only where every
text token is equal and every image chunk is the same chunk at the same place,
whole: an image is never split, since its positions were decoded together."""

from __future__ import annotations

import bisect
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

IMAGE_POSITION = -1  # marks KV positions holding image embeddings: no token id matches it
# llama.cpp's CPU kernels compute a batch of one token with slightly different
# rounding than a batch of several (batches of 2+ agree bit for bit). Reuse must
# not change answers, so a prompt's evaluated suffix is never a lone token, and
# tokens decoded one by one (a generated answer) are not reused: see
# LlamaCppEngine, which drops them after each turn.
MIN_BATCH = 2


@dataclass(frozen=True)
class ImageSpan:
    start: int
    n_pos: int
    key: str  # image sha256 : projector id : tile number

    @property
    def end(self) -> int:
        return self.start + self.n_pos


@dataclass
class Ledger:
    tokens: list[int] = field(default_factory=list)
    spans: list[ImageSpan] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)

    def add_text(self, tokens: list[int]) -> None:
        self.tokens.extend(tokens)

    def add_image(self, n_pos: int, key: str) -> None:
        self.spans.append(ImageSpan(len(self.tokens), n_pos, key))
        self.tokens.extend([IMAGE_POSITION] * n_pos)

    def spans_before(self, end: int) -> list[ImageSpan]:
        """The image spans that lie wholly before position `end`."""
        return [s for s in self.spans if s.end <= end]


def common_prefix(held_tokens, held_spans: list[ImageSpan], wanted: Ledger) -> int:
    """How many leading positions of `wanted` the held context already has."""
    n = _token_prefix(held_tokens, wanted.tokens)
    if not wanted.spans:
        return n
    held_by_start = {span.start: span for span in held_spans}
    for span in wanted.spans:
        if span.start >= n:
            break
        if held_by_start.get(span.start) != span or span.end > n:
            return span.start
    return n


def reusable_prefix(held_tokens, held_spans: list[ImageSpan], wanted: Ledger) -> int:
    """Positions to keep: the common prefix, less enough that the tail evaluated is
    at least MIN_BATCH tokens (sampling needs fresh logits of the last one), never
    cutting into an image."""
    n = max(min(common_prefix(held_tokens, held_spans, wanted), len(wanted) - MIN_BATCH), 0)
    starts = [span.start for span in wanted.spans]
    before = bisect.bisect_right(starts, n) - 1
    if before >= 0 and wanted.spans[before].start < n < wanted.spans[before].end:
        return wanted.spans[before].start
    # Within a text run, do not leave a lone token to evaluate before the next image:
    # a cold prefill evaluates that run as one batch.
    run_start = wanted.spans[before].end if before >= 0 else 0
    run_end = starts[before + 1] if before + 1 < len(starts) else len(wanted)
    if run_end - n < MIN_BATCH and n > run_start:
        n = max(run_start, run_end - MIN_BATCH)
    return n


def batches(n_tokens: int, size: int) -> list[tuple[int, int]]:
    """(start, end) slices of at most `size` tokens, none a lone token unless
    n_tokens is 1 (see MIN_BATCH)."""
    cuts = [*range(0, n_tokens, size), n_tokens]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < MIN_BATCH:
        cuts[-2] -= MIN_BATCH - (cuts[-1] - cuts[-2])
    return list(itertools.pairwise(cuts))


def _token_prefix(a, b) -> int:
    m = min(len(a), len(b))
    if m == 0:
        return 0
    left = np.asarray(a[:m], dtype=np.int64)
    right = np.asarray(b[:m], dtype=np.int64)
    differ = np.flatnonzero(left != right)
    return int(differ[0]) if differ.size else m


class EmbeddingCache:
    """Image-chunk embeddings by chunk key, least recently used dropped first once
    they pass `max_bytes`: a regenerated or edited turn reuses them, not the encoder."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> np.ndarray | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: str, embedding: np.ndarray) -> None:
        if embedding.nbytes > self.max_bytes:
            return  # would evict everything and still not fit
        if key in self._items:
            self._bytes -= self._items.pop(key).nbytes
        self._items[key] = embedding
        self._bytes += embedding.nbytes
        while self._bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
