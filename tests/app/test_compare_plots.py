"""The compare tab's finished charts: value axes from 0, units in words."""

from __future__ import annotations

from app.compare_tab import _plots, from_zero
from chat.comparison import Column, Comparison
from engine.types import Final, Usage


def test_axes_start_at_zero_above_the_tallest_bar():
    assert from_zero([0.8, 2.0]) == [0.0, 2.2]
    assert from_zero([]) == [0.0, 1.0] and from_zero([float("nan")]) == [0.0, 1.0]


def test_finished_charts_start_at_zero_and_say_their_units():
    done = [
        Column(name, name, 4096, final=Final("stop", Usage(completion_tokens=5, ttft_s=ttft, decode_tps=tps)))
        for name, ttft, tps in (("a", 0.5, 30.0), ("b", 1.5, 12.0))
    ]
    ttft, speed = _plots(Comparison(done))
    assert ttft.y_lim == [0.0, 1.5 * 1.1] and speed.y_lim == [0.0, 30.0 * 1.1]
    assert ttft.value["data"] == [["a", 0.5], ["b", 1.5]] and speed.value["columns"] == ["model", "tokens/s"]


def test_the_chart_axes_are_titled_in_words():
    import gradio as gr

    from app.compare_tab import _main_area

    with gr.Blocks():
        view, _, _ = _main_area()
    assert view.ttft_plot.y_title == "seconds until the first token"
    assert view.speed_plot.y_title.startswith("tokens per second (a token is a word")
