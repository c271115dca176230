"""The metrics line in words: what was measured, nothing shown as 0 that never ran."""

from __future__ import annotations

from sessions.figures import format_metrics


def test_the_line_speaks_words():
    line = format_metrics(0.8, 410.4, 12.34, 28, 40, "stop")
    assert line == (
        "first token after 0.80 s · prompt read at 410 tokens/s · answer at 12.3 tokens/s · "
        "28 + 40 tokens · stop"
    )
    assert "TTFT" not in line and "tok/s" not in line


def test_an_answer_stopped_before_its_first_token_shows_no_zero_speeds():
    line = format_metrics(0, 0, 0, 0, 0, "cancelled")
    assert line == "0 + 0 tokens · cancelled"
    assert format_metrics(1.5, 300, 0, 20, 0, "cancelled", cached_tokens=5).startswith(
        "first token after 1.50 s · prompt read at 300 tokens/s · 20 + 0 tokens · cached 5 / new 15 · "
    )
