"""Live speed in a compare column (chat/comparison.py metrics_line): the time to the
first token and tokens per second while the answer streams, then the final figures."""

from __future__ import annotations

import threading

from chat.comparison import Column, metrics_line, new_comparison, run_turn
from chat.turns import Turn
from config import Settings
from documents.parts import ChatMessage
from models.catalogue import load_registry
from models.manager import ModelManager


def test_a_streaming_column_says_its_first_token_time_and_pace():
    column = Column("m", "M", 4096, text="Paris is", asked_at=10.0, first_at=10.8, pieces=13)
    line = metrics_line(column, now=11.8)
    assert line.startswith("first token after 0.8 s · 12.0 tokens/s so far")
    assert "a token is a word or a piece of one" in line and line.endswith("streaming…")
    one = Column("m", "M", 4096, text="P", asked_at=10.0, first_at=12.25, pieces=1)
    assert metrics_line(one, now=12.25).startswith("first token after 2.2 s (")  # no pace from one token


def test_a_real_turn_shows_live_speed_then_the_final_figures(tiny_llama4, tiny_llama4_seed1):
    extras = [f"{m}:{p}" for m, p in (tiny_llama4, tiny_llama4_seed1)]
    settings = Settings(extra_models=extras)
    registry = load_registry(settings)
    names = [name for name in registry.specs if "tiny" in name][:2]
    comparison = new_comparison(registry, names, blind=False)
    question = Turn(ChatMessage.text("user", "Name three colours."))
    live: list[str] = []
    manager = ModelManager(registry, settings)
    turn = run_turn(comparison, question, registry, manager, None, threading.Event(), max_tokens=24)
    try:
        for state in turn:
            live += [metrics_line(c) for c in state.columns if c.streaming and c.text]
    finally:
        manager.close()
    assert any(line.startswith("first token after") for line in live)
    assert any("tokens/s so far" in line for line in live)
    for column in comparison.columns:
        assert column.first_at >= column.asked_at and column.pieces >= 1
        assert metrics_line(column).startswith("first token after")
