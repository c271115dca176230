"""The Compare tab driven through gradio_client, the way a script or the page does:
real models streaming side by side, votes stored, names hidden until the vote."""

from __future__ import annotations

import os

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from sessions import Store  # noqa: E402
from tests.conftest import visible_text  # noqa: E402

# What /compare returns (the state stays on the server): the input box, the notice,
# 4 titles, 4 chats, 4 metrics lines, 2 plots, the model picker and the blind switch.
SMOL = "SmolLM2 135M Instruct Q4_1 (embedded, text only)"
NOTICE, TITLES, CHATS, METRICS, PLOTS = 1, slice(2, 6), slice(6, 10), slice(10, 14), slice(14, 16)


def compare(client: Client, text: str, models=(), blind=False, files=(), max_tokens=32):
    message = {"text": text, "files": [handle_file(f) for f in files]}
    return client.predict(message, list(models), blind, max_tokens, api_name="/compare")


def answer_text(chat: list[dict]) -> str:
    """The last answer as a reader sees it (answers are sanitized HTML: app/safe_markdown.py)."""
    shown = " ".join(part.get("text", "") for part in chat[-1]["content"] if part.get("type") == "text")
    return visible_text(shown)


def leaderboard_rows(board: dict) -> dict[str, tuple[int, int]]:
    """model -> (votes, wins)"""
    return {row[0]: (row[1], row[3]) for row in board["data"] if row and row[0]}


def stored_sessions() -> int:
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        return len(store.list_sessions(limit=10_000))


def test_two_models_stream_side_by_side_with_metrics_plots_and_a_vote(compare_app_url):
    client = Client(compare_app_url, verbose=False)
    out = compare(client, "What is the capital of France?", ["smollm2-135m", "tiny-llama4"])
    assert out[NOTICE] == ""
    titles, chats, metrics = list(out[TITLES]), list(out[CHATS]), list(out[METRICS])
    assert titles[:2] == [
        f"**Model A: {SMOL}**",
        "**Model B: tiny-llama4**",
    ]
    assert "Paris" in answer_text(chats[0]) and answer_text(chats[1])
    assert chats[2:] == [[], []]  # only two columns in use
    for line in metrics[:2]:
        assert "first token after" in line and "answer at" in line and "tokens/s" in line
        assert "context" in line and "TTFT" not in line and "tok/s" not in line
    ttft_plot, speed_plot = out[PLOTS]
    assert ttft_plot["visible"] and [row[0] for row in ttft_plot["value"]["data"]] == [
        "smollm2-135m",
        "tiny-llama4",
    ]
    speeds = dict(speed_plot["value"]["data"])
    # The embedded model always decodes; the random-weight one may sample its end token
    # first, and one token has no decode rate.
    assert speeds["smollm2-135m"] > 0 and speeds["tiny-llama4"] >= 0
    before = leaderboard_rows(client.predict(api_name="/leaderboard"))  # other tests vote too
    *_, board = client.predict("B is better", api_name="/vote")
    after = leaderboard_rows(board)
    for model, won in (("tiny-llama4", 1), ("smollm2-135m", 0)):
        votes, wins = before.get(model, (0, 0))
        assert after[model] == (votes + 1, wins + won)
    notice = client.predict("A is better", api_name="/vote")[0]
    assert "already voted" in notice  # one vote per answer set


def test_blind_mode_hides_names_and_speeds_until_the_vote(compare_app_url):
    client = Client(compare_app_url, verbose=False)
    models = ["smollm2-135m", "tiny-llama4", "tiny-llama4-2"]
    out = compare(client, "Name a colour.", models, blind=True, max_tokens=16)
    assert list(out[TITLES][:3]) == ["**Model A**", "**Model B**", "**Model C**"]
    assert all("after your vote" in line for line in out[METRICS][:3])
    assert not any("tokens/s" in answer_text(chat) for chat in out[CHATS][:3])
    assert not out[PLOTS][0]["visible"]
    voted = client.predict("B is best", api_name="/vote")
    titles = voted[1:5]
    revealed = [title.strip("*").split(": ", 1)[1] for title in titles[:3]]
    assert sorted(revealed) == sorted([SMOL, "tiny-llama4", "tiny-llama4 (tiny-llama4-2)"])
    assert all("tokens/s" in line for line in voted[9:12])  # speeds shown now
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        vote = store.comparisons.votes()[-1]
        session = store.comparisons.get(vote.comparison_id).session_id
        assert store.get_session(session).model == "compare (blind)"  # the chat list names no model
    assert vote.outcome == "best" and len(vote.engine_ids) == 3
    assert vote.winner == vote.engine_ids[1]  # the model shown in column B
    # Stored in the shuffled order the user saw.
    assert vote.engine_ids.index("smollm2-135m") == revealed.index(SMOL)


def test_a_follow_up_goes_to_each_model_with_its_own_history(compare_app_url):
    client = Client(compare_app_url, verbose=False)
    compare(client, "What is the capital of France?", ["smollm2-135m", "tiny-llama4"])
    out = compare(client, "And the capital of Japan?")  # same models: the picker is locked
    chats = out[CHATS]
    assert [len(chat) for chat in chats[:2]] == [4, 4]
    assert "Tokyo" in answer_text(chats[0])
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        *_, first, second = store.comparisons.for_session(store.list_sessions(limit=1)[0].id)
        for position, engine in enumerate(second.engine_ids):
            branch = store.branch(second.session_id, second.answer_ids[position])
            answers = [m for m in branch if m.role == "assistant"]
            assert [m.id for m in answers] == [first.answer_ids[position], second.answer_ids[position]]
            assert {m.engine_id for m in answers} == {engine}


def test_bad_input_gets_one_line_and_stores_nothing(compare_app_url, write_png):
    client = Client(compare_app_url, verbose=False)
    before = stored_sessions()
    out = compare(client, "hi", ["smollm2-135m"])
    assert out[NOTICE] == "⚠️ choose 2 to 4 models to compare, not 1"
    client.predict(api_name="/new_comparison")
    out = compare(client, "what is this?", ["tiny-llama4", "smollm2-135m"], files=[write_png("red.png")])
    assert "cannot see images" in out[NOTICE]
    assert out[0]["value"]["text"] == "what is this?"  # kept for the user to fix
    assert stored_sessions() == before


def test_stop_ends_every_answer_that_is_still_streaming(compare_app_url):
    client = Client(compare_app_url, verbose=False)
    message = {"text": "Write a very long story about a dragon, a knight and a castle.", "files": []}
    job = client.submit(message, ["smollm2-135m", "tiny-llama4"], False, 2048, api_name="/compare")
    for update in job:
        if len(answer_text(update[CHATS][0])) > 20:
            client.predict(api_name="/stop_comparison")
            break
    out = job.result()
    assert "cancelled" in out[METRICS][0]
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        comparison = store.comparisons.for_session(store.list_sessions(limit=1)[0].id)[-1]
        assert store.message(comparison.answer_ids[0]).status == "cancelled"


def test_the_page_says_when_models_will_run_one_after_another(tmp_path, tiny_llama4):
    import threading

    from app.compare_tab import plan_text
    from chat.comparison import new_comparison, run_turn
    from chat.runtime import build_runtime
    from chat.turns import Turn
    from config import Settings
    from documents.parts import ChatMessage

    names = ["smollm2-135m", "tiny-llama4"]
    extra = [str(tiny_llama4[0])]
    roomy = build_runtime(Settings(data_dir=tmp_path / "a", extra_models=extra, memory_budget_gb=100))
    assert "fit together" in plan_text(roomy, names)
    hosted = plan_text(roomy, ["openrouter-scout", "deepinfra-scout"])
    assert hosted.startswith("These run on their servers") and "GB" not in hosted  # no "0.0 GB"
    mixed = plan_text(roomy, ["smollm2-135m", "openrouter-scout"])
    assert "GB here; 1 on their servers" in mixed and "about 0.0 GB" not in mixed
    tight = build_runtime(Settings(data_dir=tmp_path / "b", extra_models=extra, memory_budget_gb=0.01))
    assert "one after another" in plan_text(tight, names)
    comparison = new_comparison(tight.registry, names, blind=False)
    question = Turn(ChatMessage.text("user", "hello"))
    turns = run_turn(comparison, question, tight.registry, tight.models, tight.store, threading.Event(), 4)
    *_, done = turns
    tight.models.close()
    assert "one after another" in done.notice
    assert all(column.final.finish_reason in ("stop", "length") for column in done.columns)


def test_a_comparison_stays_in_compare_and_is_not_listed_as_a_chat(compare_app_url):
    client = Client(compare_app_url, verbose=False)
    out = compare(client, "Say the word zanzibarite once.", ["smollm2-135m", "tiny-llama4"], max_tokens=16)
    assert out[NOTICE] == ""
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        compared = next(s for s in store.list_sessions(limit=1) if s.settings.get("compare"))
    listed = client.predict("", api_name="/list_chats")
    assert compared.id not in [value for _, value in listed["choices"]]
    found = client.predict("zanzibarite", api_name="/search")  # a hit is "<chat id>#<message id>"
    assert compared.id not in [value.split("#")[0] for _, value in found["choices"]]
    with Store(os.environ["L4P_DATA_DIR"]) as store:  # the store finds it; the chat search leaves it out
        assert compared.id in [hit.session_id for hit in store.search("zanzibarite")]
        assert compared.id not in [hit.session_id for hit in store.search("zanzibarite", chats_only=True)]
    with pytest.raises(Exception, match="not in the list of choices"):  # nothing to open it by
        client.predict(compared.id, api_name="/open_chat")
