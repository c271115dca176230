"""The prompt's reading as a stream reports it: PromptProgress rising to the prompt's
token count before the first token, one report per batch (llama.cpp), per prefill
chunk (transformers), the server's figures or the wait (endpoints); Stop honoured
while the prompt is read; and `launch.py ask` drawing it as a bar on a terminal only."""

from __future__ import annotations

import itertools
import os
import pty
import subprocess
import sys
import threading

import pytest

from engine import Final, Message, PromptProgress, SamplingParams, TextDelta
from engine.prefix import batches
from models.catalogue import load_registry
from models.engines import engine_for
from tests.conftest import REPO
from tests.engine.test_engine_vision import image, user

GREEDY = SamplingParams(temperature=0, max_tokens=4)
SMALL_BATCH = 256
_cold_logins = itertools.count()
TOPICS = ("harbour", "orchard", "railway", "library", "glacier", "market", "observatory", "vineyard")


def long_document(paragraphs: int = 150) -> str:
    """Plain prose of about 6,000 SmolLM2 tokens, every paragraph different."""
    lines = []
    for number in range(1, paragraphs + 1):
        topic, other = TOPICS[number % len(TOPICS)], TOPICS[(number * 3) % len(TOPICS)]
        lines.append(
            f"Section {number}. The survey of the {topic} near the {other} found {number * 7} workers, "
            f"{number % 13 + 2} new buildings and a budget of {number * 1130} crowns in {1800 + number}."
        )
    return "\n".join(lines)


def split(events: list) -> tuple[list[PromptProgress], list]:
    """The leading PromptProgress events and the rest; asserts none comes later."""
    reading = list(itertools.takewhile(lambda e: isinstance(e, PromptProgress), events))
    assert not any(isinstance(e, PromptProgress) for e in events[len(reading) :])
    return reading, events[len(reading) :]


@pytest.fixture(scope="module")
def small_batches(settings):
    """The embedded model reading SMALL_BATCH tokens per step."""
    registry = load_registry(settings)
    small = settings.model_copy(update={"n_batch": SMALL_BATCH})
    engine = engine_for(registry.get(registry.default), small)
    engine.load()
    yield engine
    engine.unload()


def document_question() -> list[Message]:
    return [Message.text("user", long_document() + "\n\nHow many workers were in section 3?")]


def cold(engine, messages, params=GREEDY, cancel=None):
    """The stream as a login that never asked: every token is read."""
    return engine.stream(messages, params, cancel, cache_scope=f"cold-{next(_cold_logins)}")


def steps(reading: list[PromptProgress]) -> list[int]:
    """The tokens read at each report, rising (the stream repeats the last figure
    while it waits for the next batch, so the wait shows too)."""
    done = [r.done for r in reading]
    assert done == sorted(done)
    return sorted(set(done))


def test_reading_rises_batch_by_batch_to_the_prompt_token_count(small_batches):
    messages = document_question()
    n_prompt = small_batches.count_tokens(messages)
    assert 5_500 < n_prompt < 7_500  # the ~6,000-token document the page test reads too
    reading, rest = split(list(cold(small_batches, messages)))
    final = rest[-1]
    assert isinstance(final, Final) and final.finish_reason in ("stop", "length")
    assert any(isinstance(e, TextDelta) for e in rest)
    # One report before the first batch, then one after each.
    assert steps(reading) == [0, *(end for _, end in batches(n_prompt, SMALL_BATCH))]
    assert all(r.total == n_prompt == final.usage.prompt_tokens for r in reading)
    assert all(r.reused == 0 for r in reading)
    elapsed = [r.elapsed_s for r in reading]
    assert elapsed == sorted(elapsed) and reading[-1].done == n_prompt
    halfway = next(r for r in reading if r.done >= n_prompt // 2)
    assert halfway.seconds_left > 0 and reading[-1].seconds_left == 0


def test_stop_while_reading_ends_before_the_first_token(small_batches):
    messages = [Message.text("user", long_document(30) + "\n\nWhich section is the longest?")]
    n_prompt = small_batches.count_tokens(messages)
    assert n_prompt > 3 * SMALL_BATCH
    cancel = threading.Event()
    events = []
    scope = f"cold-{next(_cold_logins)}"
    params = SamplingParams(temperature=0, max_tokens=200)
    for event in small_batches.stream(messages, params, cancel, cache_scope=scope):
        events.append(event)
        if isinstance(event, PromptProgress) and event.done:
            cancel.set()  # Stop pressed after the first batch
    reading, rest = split(events)
    assert steps(reading) == [0, SMALL_BATCH]
    assert len(rest) == 1 and rest[0].finish_reason == "cancelled"
    assert rest[0].usage.completion_tokens == 0
    # Asking again reads on from where Stop left the slot's cache (the server may
    # have read a batch more before it saw the closed stream; never the whole prompt).
    reading, rest = split(list(small_batches.stream(messages, GREEDY, cache_scope=scope)))
    kept = reading[0].reused
    assert kept % SMALL_BATCH == 0 and SMALL_BATCH <= kept < n_prompt - SMALL_BATCH
    assert reading[0].done == kept and rest[-1].usage.cached_tokens == kept
    assert reading[-1].done == reading[-1].total == n_prompt


def test_short_prompt_reports_start_and_end(smollm2):
    messages = [Message.text("user", "Name a colour.")]
    n_prompt = smollm2.count_tokens(messages)
    reading, rest = split(list(cold(smollm2, messages)))
    assert steps(reading) == [0, n_prompt] and reading[-1].total == n_prompt
    assert isinstance(rest[-1], Final)


def test_images_count_as_their_tokens(tiny_engine):
    small, wide = image(56, 56, "red"), image(700, 400, "blue")  # one tile; a tiled grid + overview
    messages = [user("first", small, "then", wide, "compare them")]
    n_prompt = tiny_engine.count_tokens(messages)
    text_only = tiny_engine.count_tokens([user("first", "then", "compare them")])
    assert n_prompt > text_only  # the images' tiles, counted before the server reads them
    reading, rest = split(list(cold(tiny_engine, messages)))
    assert steps(reading)[0] == 0
    assert reading[-1].done == reading[-1].total == n_prompt == rest[-1].usage.prompt_tokens


# -- transformers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_chunked(tiny_llama4_hf, settings):
    from models.catalogue import hf_model

    engine = engine_for(hf_model(tiny_llama4_hf), settings.model_copy(update={"n_batch": 16}))
    engine.load()
    yield engine
    engine.unload()


def test_transformers_reports_each_prefill_chunk(hf_chunked):
    messages = [user("tell me about " + "the long road and the river " * 12)]
    n_prompt = hf_chunked.count_tokens(messages)
    assert n_prompt > 3 * 16
    reading, rest = split(list(hf_chunked.stream(messages, GREEDY)))
    assert [r.done for r in reading] == [0, *range(16, n_prompt, 16), n_prompt]
    assert all(r.total == n_prompt for r in reading)
    assert rest[-1].finish_reason in ("stop", "length") and rest[-1].usage.prompt_tokens == n_prompt


def test_transformers_reads_images_in_one_pass(hf_chunked):
    messages = [user(image(56, 56, "red"), "and", image(700, 400, "blue"), "compare")]
    n_prompt = hf_chunked.count_tokens(messages)
    reading, rest = split(list(hf_chunked.stream(messages, GREEDY)))
    assert [(r.done, r.total) for r in reading] == [(0, n_prompt), (n_prompt, n_prompt)]
    assert rest[-1].error is None


def test_transformers_stop_while_reading(hf_chunked):
    messages = [user("tell me about " + "the long road and the river " * 12)]
    cancel = threading.Event()
    events = []
    for event in hf_chunked.stream(messages, SamplingParams(temperature=0, max_tokens=50), cancel):
        events.append(event)
        if isinstance(event, PromptProgress) and event.done:
            cancel.set()
    reading, rest = split(events)
    assert reading[-1].done < reading[-1].total  # the rest of the prompt was never read
    assert len(rest) == 1 and rest[0].finish_reason == "cancelled" and rest[0].usage.completion_tokens == 0


# -- launch.py ask ------------------------------------------------------------------


def ask_command(tmp_path) -> tuple[list[str], dict]:
    prompt = long_document(12) + "\nWhich section mentions the harbour first?"
    command = [sys.executable, "launch.py", "ask", "--no-save", "--max-tokens", "3", prompt]
    env = {**os.environ, "L4P_DATA_DIR": str(tmp_path), "L4P_N_BATCH": "64"}
    return command, env


def test_ask_draws_the_reading_bar_on_a_terminal(tmp_path):
    command, env = ask_command(tmp_path)
    leader, follower = pty.openpty()
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=follower) as proc:
        os.close(follower)
        seen = b""
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            seen += data
        answer = proc.stdout.read()
    os.close(leader)
    assert proc.returncode == 0, seen.decode(errors="replace")
    text = seen.decode()
    bars = [line for line in text.split("\r") if line.startswith("[") and "reading the prompt:" in line]
    done = [int(line.split("reading the prompt: ")[1].split(" of ")[0].replace(",", "")) for line in bars]
    assert len(set(done)) >= 3 and done == sorted(done)  # a bar that fills, batch by batch
    assert "#" in bars[-1] and bars[-1].count(".") < bars[0].count(".")
    assert text.rstrip("\r\n").endswith("\x1b[K")  # wiped before the answer
    assert answer.strip() and b"reading the prompt" not in answer


def test_ask_draws_no_bar_when_stderr_is_piped(tmp_path):
    command, env = ask_command(tmp_path)
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "reading the prompt" not in result.stderr and "\x1b[K" not in result.stderr
    assert result.stdout.strip()


def test_the_reading_line_says_what_is_known():
    from chat.metrics import reading_line

    # 100 tokens/s over the tokens evaluated; reused ones came for free.
    assert reading_line(PromptProgress(3_100, 6_928, 10.0, reused=2_100)) == (
        "reading the prompt: 3,100 of 6,928 tokens · 38 s left"
    )
    assert reading_line(PromptProgress(0, 6_928, 0.2)) == "reading the prompt: 0 of 6,928 tokens"
    read = reading_line(PromptProgress(6_928, 6_928, 69.0))
    assert read == "reading the prompt: 6,928 of 6,928 tokens · the answer starts"
    assert reading_line(PromptProgress(None, 900, 12.4)) == (
        "the server is reading the prompt (about 900 tokens) · 12 s"
    )


def test_a_batch_size_out_of_range_is_one_line(tmp_path):
    command = [sys.executable, "launch.py", "ask", "--no-save", "-b", "4", "hi"]
    env = {**os.environ, "L4P_DATA_DIR": str(tmp_path)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "error: --batch-size: input should be greater than or equal to 16\n"
