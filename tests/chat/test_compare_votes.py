"""Comparisons and votes in the session store, and the leaderboard math on known votes."""

from __future__ import annotations

import math

import pytest

from app.leaderboard import bradley_terry, elo, games, standings
from documents.parts import ChatMessage
from engine.types import Final, Usage
from errors import UserError
from sessions import Store, VoteRow


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path) as store:
        yield store


def compare_once(store, engines, session=None, parents=None, speeds=None):
    """One stored comparison with finished answers; returns (session, comparison id, writers)."""
    session = session or store.create_session(model=engines[0])
    if parents is None:
        question = store.add_user_message(session, None, ChatMessage.text("user", "Which is better?"))
        parents = [question] * len(engines)
    started = store.comparisons.start(session, parents, engines, [{}] * len(engines))
    for writer, engine, tps in zip(started.writers, engines, speeds or [10.0] * len(engines), strict=True):
        writer.append(f"answer from {engine}")
        writer.finish(Final("stop", Usage(prompt_tokens=5, completion_tokens=3, ttft_s=0.1, decode_tps=tps)))
    return session, started.id, started.writers


def test_a_comparison_is_sibling_answers_to_one_question(store):
    _, comparison, writers = compare_once(store, ["a", "b", "c"])
    row = store.comparisons.get(comparison)
    assert row.engine_ids == ("a", "b", "c") and row.outcome is None
    assert store.siblings(writers[0].id) == [w.id for w in writers]
    answers = [store.message(w.id) for w in writers]
    assert [(m.engine_id, m.text, m.status) for m in answers] == [
        ("a", "answer from a", "complete"),
        ("b", "answer from b", "complete"),
        ("c", "answer from c", "complete"),
    ]


def test_a_follow_up_continues_each_models_own_branch(store):
    session, _, writers = compare_once(store, ["a", "b"])
    follow_ups = [
        store.add_user_message(session, w.id, ChatMessage.text("user", "and why?")) for w in writers
    ]
    _, second, new_writers = compare_once(store, ["a", "b"], session=session, parents=follow_ups)
    for first, latest, engine in zip(writers, new_writers, "ab", strict=True):
        branch = store.branch(session, latest.id)
        assert [m.id for m in branch][1] == first.id  # its own earlier answer, not the other model's
        assert [m.engine_id for m in branch if m.role == "assistant"] == [engine, engine]
    assert [c.id for c in store.comparisons.for_session(session)][-1] == second


def test_votes_are_stored_once_and_checked(store):
    _, comparison, _ = compare_once(store, ["a", "b"])
    with pytest.raises(UserError, match="no answer 3"):
        store.comparisons.vote(comparison, "best", 2)
    with pytest.raises(UserError, match="unknown vote"):
        store.comparisons.vote(comparison, "great")
    with pytest.raises(UserError, match="names one answer"):
        store.comparisons.vote(comparison, "best")
    row = store.comparisons.vote(comparison, "best", 1)
    assert (row.outcome, row.winner_position) == ("best", 1)
    with pytest.raises(UserError, match="already has a vote"):
        store.comparisons.vote(comparison, "tie")
    assert store.comparisons.votes() == [VoteRow(comparison, ("a", "b"), "best", "b")]


def test_deleting_the_session_deletes_its_comparisons_and_votes(store):
    session, comparison, _ = compare_once(store, ["a", "b"])
    store.comparisons.vote(comparison, "tie")
    store.delete_session(session)
    assert store.comparisons.votes() == [] and store.comparisons.speeds() == []
    assert store.db.execute("SELECT count(*) FROM comparison_answers").fetchone()[0] == 0


def test_nothing_is_written_when_a_parent_is_wrong(store):
    session = store.create_session()
    with pytest.raises(Exception, match="12345"):
        store.comparisons.start(session, [12345, 12345], ["a", "b"], [{}, {}])
    assert store.all_messages(session) == [] and store.comparisons.for_session(session) == []


def test_elo_moves_by_k_over_two_from_equal_ratings():
    assert elo([("a", "b", 1.0)]) == {"a": 1016.0, "b": 984.0}
    ratings = elo([("a", "b", 1.0), ("a", "b", 0.5)])
    expected = 1 / (1 + 10 ** ((984 - 1016) / 400))  # a's expectation in the 2nd game
    assert ratings["a"] == pytest.approx(1016 + 32 * (0.5 - expected))
    assert ratings["a"] + ratings["b"] == pytest.approx(2000)  # Elo is zero-sum


def test_bradley_terry_matches_the_closed_form_for_two_models():
    # 3 wins to 1: the maximum-likelihood strength ratio is exactly 3.
    played = [("a", "b", 1.0)] * 3 + [("b", "a", 1.0)]
    ratings = bradley_terry(played, prior=0)
    assert ratings["a"] - ratings["b"] == pytest.approx(400 * math.log10(3))
    assert ratings["a"] + ratings["b"] == pytest.approx(2000)  # geometric mean at 1000
    # Order does not matter, unlike online Elo.
    assert bradley_terry(played[::-1], prior=0) == pytest.approx(ratings)


def test_bradley_terry_orders_a_cycle_free_league_and_stays_finite_when_undefeated():
    played = [("a", "b", 1.0), ("b", "c", 1.0), ("a", "c", 1.0), ("a", "b", 0.5)]
    ratings = bradley_terry(played)
    assert ratings["a"] > ratings["b"] > ratings["c"]
    assert all(math.isfinite(r) for r in ratings.values())  # a never lost: the prior keeps it finite


def test_best_of_three_counts_as_two_wins_and_a_tie_as_draws_between_every_pair():
    votes = [
        VoteRow(1, ("a", "b", "c"), "best", "b"),
        VoteRow(2, ("a", "b", "c"), "bad", None),
    ]
    assert games(votes) == [
        ("b", "a", 1.0),
        ("b", "c", 1.0),
        ("a", "b", 0.5),
        ("a", "c", 0.5),
        ("b", "c", 0.5),
    ]


def test_standings_from_stored_votes(store):
    wins = [("a", "b", 0), ("a", "b", 0), ("a", "b", 1), ("c", "a", 1)]
    for first, second, winner in wins:
        _, comparison, _ = compare_once(store, [first, second], speeds=[20.0, 40.0])
        store.comparisons.vote(comparison, "best", winner)
    _, tie, _ = compare_once(store, ["b", "c"])
    store.comparisons.vote(tie, "tie")
    compare_once(store, ["a", "d"])  # not voted on: speed only
    table = {row.model: row for row in standings(store.comparisons.votes(), store.comparisons.speeds())}
    assert (table["a"].votes, table["a"].wins, table["a"].draws) == (4, 3, 0)
    assert table["a"].win_rate == pytest.approx(0.75)
    assert (table["b"].votes, table["b"].wins, table["b"].draws) == (4, 1, 1)
    assert table["d"].votes == 0 and table["d"].answers == 1 and table["d"].bt == 1000
    # a answered at 20 tok/s three times, 40 once (second column) and 10 once (against d).
    assert table["a"].decode_tps == pytest.approx((20 * 3 + 40 + 10) / 5)
    assert next(iter(table)) == "a"  # best rating first


def test_vote_buttons_read_as_outcomes():
    from app.compare_tab import parse_vote

    assert parse_vote("A is better", 2) == ("best", 0)
    assert parse_vote("D is best", 4) == ("best", 3)
    assert parse_vote("Both bad", 2) == ("bad", None)
    assert parse_vote("All bad", 3) == ("bad", None)
    assert parse_vote("Tie", 3) == ("tie", None)
    with pytest.raises(UserError, match="unknown vote"):
        parse_vote("C is best", 2)  # no third column
