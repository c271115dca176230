"""Several people at once: 8 gradio_client users each hold a 3-turn chat on the embedded
model. Its llama-server child answers 2 at once here (-np 2; its lane, chat/lanes.py,
admits as many), so the others wait in its line and are told their place in it."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

from sessions import Store
from tests.conftest import QUICK_RESPOND as QUICK
from tests.conftest import start_app, stop_app, visible_text

CLIENTS, TURNS = 8, 3


def question(client: int, turn: int) -> str:
    return f"Client {client}, turn {turn}: name a colour."


def answer_of(chat: list[dict]) -> str:
    return visible_text(chat[-1]["content"][0]["text"])


def chat_as_one_user(url: str, index: int) -> dict:
    """Three turns; returns the answers shown and every place in line the client was
    told (how many requests were ahead of it: 0 = next)."""
    client = Client(url, verbose=False)
    answers, places = [], []
    for turn in range(TURNS):
        _, _, notice = client.predict(
            {"text": question(index, turn), "files": []}, password="", api_name="/send"
        )
        assert notice == ""
        job = client.submit(**QUICK, api_name="/respond")
        for _, shown in job:
            if "waiting for" in shown:
                ahead = re.search(r"(\d+) requests? ahead of you", shown)
                places.append(int(ahead.group(1)) if ahead else 0)
                assert ahead or "you are next" in shown, shown
        chat, notice = job.result()
        assert notice == "", notice
        answers.append(answer_of(chat))
    return {"answers": answers, "places": places}


@pytest.mark.slow
def test_eight_users_chat_at_once_and_keep_their_own_answers(tmp_path):
    data_dir = tmp_path / "data"
    proc, url = start_app("--data-dir", str(data_dir), "--parallel", "2")
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(lambda i: chat_as_one_user(url, i), range(CLIENTS)))
        Client(url, verbose=False).predict("", api_name="/list_chats")  # still serving
    finally:
        stop_app(proc)

    with Store(data_dir) as store:
        sessions = store.list_sessions(limit=100)
        assert len(sessions) == CLIENTS
        by_client = {int(s.title.split(",")[0].removeprefix("Client ")): s.id for s in sessions}
        assert sorted(by_client) == list(range(CLIENTS))
        for index, result in enumerate(results):
            rows = store.branch(by_client[index])
            assert [r.role for r in rows] == ["user", "assistant"] * TURNS
            assert [r.text for r in rows[::2]] == [question(index, t) for t in range(TURNS)]
            for turn, (asked, answer) in enumerate(zip(rows[::2], rows[1::2], strict=True)):
                assert answer.parent_id == asked.id and answer.status == "complete"
                # What this client was shown is what its own session holds, word for word.
                assert result["answers"][turn].startswith(answer.text) and answer.text.strip()
        assert store.db.execute("SELECT count(*) FROM messages WHERE status != 'complete'").fetchone()[0] == 0

    places = [place for result in results for place in result["places"]]
    waited = [result for result in results if result["places"]]
    assert len(waited) >= CLIENTS // 2, "most users should have waited in line"
    assert max(places) >= 2  # told "2 requests ahead of you" or further back
    assert all(0 <= ahead < CLIENTS for ahead in places)
