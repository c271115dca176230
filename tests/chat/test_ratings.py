"""Bradley–Terry ratings with bootstrap intervals (chat/ratings.py) on synthetic votes,
and `launch.py eval leaderboard` on stored ones."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from chat.ratings import games, rate, strengths
from documents.parts import ChatMessage
from engine.types import Final, Usage
from sessions import Store, VoteRow
from tests.conftest import REPO


def votes_between(a: str, b: str, a_wins: int, b_wins: int, ties: int = 0) -> list[VoteRow]:
    made = [VoteRow(0, (a, b), "best", a)] * a_wins + [VoteRow(0, (a, b), "best", b)] * b_wins
    made += [VoteRow(0, (a, b), "tie", None)] * ties
    order = np.random.default_rng(1).permutation(len(made))
    return [made[i] for i in order]


def test_a_clearly_better_model_ranks_first_with_an_interval_apart():
    ratings = rate(votes_between("strong", "weak", 40, 8))
    strong, weak = ratings["strong"], ratings["weak"]
    assert list(ratings) == ["strong", "weak"] and strong.ranked and weak.ranked
    assert strong.low > weak.high  # the intervals do not overlap
    assert strong.low < strong.rating < strong.high
    assert (strong.votes, strong.wins, strong.ties) == (48, 40, 0)


def test_equal_models_overlap():
    ratings = rate(votes_between("left", "right", 15, 15, ties=6))
    left, right = ratings["left"], ratings["right"]
    assert abs(left.rating - right.rating) < 1e-6
    assert left.low < right.high and right.low < left.high
    assert left.ties == right.ties == 6


def test_too_few_votes_are_not_ranked():
    votes = votes_between("a", "b", 6, 2) + votes_between("a", "newcomer", 1, 1)
    ratings = rate(votes)
    assert ratings["a"].ranked and ratings["b"].ranked and not ratings["newcomer"].ranked
    assert list(ratings)[-1] == "newcomer"  # unranked after every ranked model
    assert not rate(votes, min_votes=3)["newcomer"].ranked
    assert rate(votes, min_votes=2)["newcomer"].ranked


def test_the_bootstrap_is_seeded_and_ties_count_half():
    votes = votes_between("x", "y", 7, 3, ties=4)
    assert rate(votes) == rate(votes)
    # A tie alone leaves both at the start, whatever the order of the names.
    tied = strengths(["x", "y"], games([VoteRow(0, ("x", "y"), "tie", None)]))
    assert tied[0] == tied[1] == 1000.0
    # A three-way 'best' vote is two wins for the chosen one.
    assert games([VoteRow(0, ("p", "q", "r"), "best", "q")]) == [("q", "p", 1.0), ("q", "r", 1.0)]


def _stored_votes(store, owner: str, pairs) -> None:
    for first, second, winner in pairs:
        session = store.create_session(model=first, owner=owner)
        question = store.add_user_message(session, None, ChatMessage.text("user", "which?"))
        started = store.comparisons.start(session, [question] * 2, [first, second], [{}, {}])
        for writer in started.writers:
            writer.append("answer")
            writer.finish(Final("stop", Usage(prompt_tokens=5, completion_tokens=3, decode_tps=9.0)))
        store.comparisons.vote(started.id, "best", winner)


def test_eval_leaderboard_pooled_and_per_login(tmp_path):
    with Store(tmp_path) as store:
        _stored_votes(store, "ann", [("m1", "m2", 0)] * 5 + [("m1", "m2", 1)])
        _stored_votes(store, "bob", [("m3", "m2", 0)] * 2)

    def board(*flags):
        command = [sys.executable, "launch.py", "--data-dir", str(tmp_path), "eval", "leaderboard", *flags]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)

    pooled = board("--json")
    assert pooled.returncode == 0, pooled.stderr
    rows = {r["model"]: r for r in map(json.loads, pooled.stdout.splitlines())}
    assert set(rows) == {"m1", "m2", "m3"}
    assert rows["m1"]["ranked"] and rows["m1"]["votes"] == 6 and rows["m1"]["wins"] == 5
    assert rows["m1"]["low"] <= rows["m1"]["bradley_terry"] <= rows["m1"]["high"]
    assert not rows["m3"]["ranked"] and rows["m3"]["decode_tps"] == 9.0
    ann = board("--login", "ann")
    assert ann.returncode == 0 and "m3" not in ann.stdout and "95% interval" in ann.stdout
    bob = board("--login", "bob")
    assert bob.stdout.count("too few votes to rank") == 2
    bad = board("--min-votes", "0")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--min-votes" in bad.stderr
