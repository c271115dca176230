"""Suites (evals/suite_run.py) on the embedded model: accuracy is the share of checks
passed, a run is saved conversation by conversation and resumes, CSV export."""

from __future__ import annotations

import csv
import io
import threading

from engine import SamplingParams
from evals.suite_file import Conversation, Turn
from evals.suite_run import run_suite, summarize
from sessions import Store

QUICK = SamplingParams(temperature=0.0, max_tokens=24)
PASSABLE = {"type": "min_words", "value": 1}
IMPOSSIBLE = {"type": "contains", "value": "zqxwvk"}


def conversation(name: str, *turn_checks) -> Conversation:
    prompts = ("Name a fruit.", "Name another one.", "And a vegetable?")
    return Conversation(
        name, "en", tuple(Turn(p, tuple(c)) for p, c in zip(prompts, turn_checks, strict=False))
    )


def test_one_passable_and_one_impossible_check_score_exactly_half(smollm2, tmp_path):
    store = Store(tmp_path)
    run = store.evals.start("suite", "half", ["smollm2"], {})
    suite = [conversation("c1", [PASSABLE, IMPOSSIBLE])]
    assert run_suite(store, run, smollm2, "smollm2", suite, QUICK) == 1
    (report,) = summarize(store.evals.results(run), ["smollm2"])
    assert report.accuracy == 0.5 and report.turns == (0.5,)
    assert report.by_check == {"contains": 0.0, "min_words": 1.0}
    assert report.conversations == 1 and 0 < report.tokens_per_turn[0] <= 24


def test_turns_are_reported_one_by_one_and_later_turns_carry_earlier_checks(smollm2, tmp_path):
    store = Store(tmp_path)
    run = store.evals.start("suite", "turns", ["smollm2"], {})
    suite = [conversation("c1", [PASSABLE], [PASSABLE, IMPOSSIBLE], [PASSABLE, IMPOSSIBLE, IMPOSSIBLE])]
    run_suite(store, run, smollm2, "smollm2", suite, QUICK)
    (report,) = summarize(store.evals.results(run), ["smollm2"])
    assert report.turns == (1.0, 0.5, round(1 / 3, 4)) and report.accuracy == round(3 / 6, 4)
    answers = [r.answer for r in store.evals.results(run)]
    assert len(answers) == 3 and all(answers)


def test_a_stopped_run_resumes_at_the_first_conversation_it_lacks(smollm2, tmp_path):
    store = Store(tmp_path)
    run = store.evals.start("suite", "resume", ["smollm2"], {})
    suite = [conversation(f"c{i}", [PASSABLE]) for i in range(3)]
    cancel = threading.Event()

    def stop_after_first(fraction, what):
        if "c1" in what:
            cancel.set()  # c1 starts: it is stopped mid-answer and not saved

    run_suite(store, run, smollm2, "smollm2", suite, QUICK, progress=stop_after_first, cancel=cancel)
    assert store.evals.done_items(run, "smollm2") == {"c0"}
    assert run_suite(store, run, smollm2, "smollm2", suite, QUICK) == 2  # only what it lacks
    assert store.evals.done_items(run, "smollm2") == {"c0", "c1", "c2"}
    (report,) = summarize(store.evals.results(run), ["smollm2"])
    assert report.conversations == 3 and report.accuracy == 1.0


def test_runs_belong_to_their_owner_and_export_as_csv(smollm2, tmp_path):
    store = Store(tmp_path)
    run = store.evals.start("suite", "mine", ["smollm2"], {"max_tokens": 24}, owner="ann")
    run_suite(store, run, smollm2, "smollm2", [conversation("c1", [PASSABLE, IMPOSSIBLE])], QUICK)
    assert store.evals.run(run, owner="ann").settings == {"max_tokens": 24}
    assert [r.id for r in store.evals.runs(owner="bob")] == []
    rows = list(csv.DictReader(io.StringIO(store.evals.to_csv(run))))
    assert len(rows) == 1 and rows[0]["model"] == "smollm2" and rows[0]["passed"] == "1"
    assert rows[0]["total"] == "2" and "zqxwvk" in rows[0]["detail"]
