"""Ratings from stored votes: win rate, online Elo and Bradley–Terry, with mean speed.
Pure functions (no Gradio), so the math is tested on known votes.

A vote over N answers counts as pairwise games: 'best' is a win of the chosen model
over each other one; 'tie' and 'bad' (all answers bad) are a draw between every pair,
as in LMArena, where "both bad" is a tie."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from chat.ratings import games
from sessions import SpeedRow, VoteRow

ELO_K = 32.0
ELO_START = 1000.0
BT_PRIOR = 1.0  # virtual drawn games against a 1000-rated reference: keeps undefeated models finite

Game = tuple[str, str, float]  # (model a, model b, a's score: 1 win, 0.5 draw, 0 loss)
__all__ = ["games"]  # moved to chat/ratings.py (the CLI rates votes too); kept importable here


def elo(played: Sequence[Game], k: float = ELO_K, start: float = ELO_START) -> dict[str, float]:
    """Online Elo, replayed in vote order."""
    ratings: dict[str, float] = {}
    for a, b, score in played:
        ra, rb = ratings.get(a, start), ratings.get(b, start)
        expected = 1 / (1 + 10 ** ((rb - ra) / 400))
        ratings[a] = ra + k * (score - expected)
        ratings[b] = rb - k * (score - expected)
    return ratings


def bradley_terry(
    played: Sequence[Game], prior: float = BT_PRIOR, iterations: int = 10_000, tolerance: float = 1e-12
) -> dict[str, float]:
    """Maximum-likelihood Bradley–Terry strengths (Hunter's MM algorithm; a draw is
    half a win each), on the Elo scale: 1000 + 400·log10(strength). Independent of
    vote order. With `prior` > 0 every model also drew `prior` games against a
    reference of strength 1 (rating 1000); with 0 the geometric mean is 1000."""
    models = sorted({m for a, b, _ in played for m in (a, b)})
    wins = {m: prior / 2 for m in models}
    pairs: dict[tuple[str, str], float] = {}
    for a, b, score in played:
        wins[a] += score
        wins[b] += 1 - score
        key = (a, b) if a < b else (b, a)
        pairs[key] = pairs.get(key, 0) + 1
    strength = dict.fromkeys(models, 1.0)
    for _ in range(iterations):
        updated = {m: wins[m] / _denominator(m, strength, pairs, prior) for m in models}
        if prior == 0:
            centre = math.exp(sum(math.log(s) for s in updated.values()) / len(updated))
            updated = {m: s / centre for m, s in updated.items()}
        change = max(abs(updated[m] - strength[m]) for m in models) if models else 0
        strength = updated
        if change < tolerance:
            break
    return {m: ELO_START + 400 * math.log10(s) for m, s in strength.items()}


def _denominator(model: str, strength: dict[str, float], pairs: dict[tuple[str, str], float], prior) -> float:
    total = prior / (strength[model] + 1)
    for (a, b), count in pairs.items():
        if model in (a, b):
            other = b if model == a else a
            total += count / (strength[model] + strength[other])
    return total


@dataclass(frozen=True)
class Standing:
    model: str
    votes: int  # votes it took part in
    wins: int  # votes where it was chosen best
    draws: int  # 'tie' and 'bad' votes
    win_rate: float  # wins / votes
    elo: float
    bt: float
    answers: int  # finished comparison answers, for the speeds
    ttft_s: float | None
    decode_tps: float | None
    low: float = ELO_START  # Bradley–Terry's bootstrap 95% interval (chat/ratings.py)
    high: float = ELO_START
    ranked: bool = False  # enough votes to rank (chat/ratings.py MIN_VOTES)


def standings(
    votes: Sequence[VoteRow], speeds: Sequence[SpeedRow], min_votes: int | None = None
) -> list[Standing]:
    """One row per model that was compared: ranked models (enough votes) first, best
    Bradley–Terry rating first."""
    from chat.ratings import MIN_VOTES, rate

    played = games(votes)
    elo_ratings, bt_ratings = elo(played), bradley_terry(played)
    intervals = rate(votes, min_votes=MIN_VOTES if min_votes is None else min_votes)
    speed_of = {row.engine_id: row for row in speeds}
    models = dict.fromkeys([m for v in votes for m in v.engine_ids] + list(speed_of))
    rows = []
    for model in models:
        taken = [v for v in votes if model in v.engine_ids]
        wins = sum(1 for v in taken if v.outcome == "best" and v.winner == model)
        draws = sum(1 for v in taken if v.outcome != "best")
        speed = speed_of.get(model)
        interval = intervals.get(model)
        rows.append(
            Standing(
                model=model,
                votes=len(taken),
                wins=wins,
                draws=draws,
                win_rate=wins / len(taken) if taken else 0.0,
                elo=elo_ratings.get(model, ELO_START),
                bt=bt_ratings.get(model, ELO_START),
                answers=speed.answers if speed else 0,
                ttft_s=speed.ttft_s if speed else None,
                decode_tps=speed.decode_tps if speed else None,
                low=interval.low if interval else ELO_START,
                high=interval.high if interval else ELO_START,
                ranked=interval.ranked if interval else False,
            )
        )
    return sorted(rows, key=lambda row: (not row.ranked, -row.bt, -row.votes, row.model))


TOO_FEW = "too few votes to rank"
COLUMNS = [
    *("model", "votes", "win rate", "wins", "draws", "Bradley–Terry", "95% interval", "Elo"),
    *("answers", "first token (s)", "answer tokens/s"),
]


def rank_cells(row: Standing) -> tuple:
    """The rating and its 95% interval, or why there is none."""
    if not row.ranked:
        return TOO_FEW, "–"
    return round(row.bt), f"{row.low:.0f}–{row.high:.0f}"


def table(rows: Sequence[Standing]) -> list[list]:
    """Rows for a table view, rounded for reading."""
    return [
        [
            row.model,
            row.votes,
            f"{row.win_rate:.0%}" if row.votes else "–",
            row.wins,
            row.draws,
            *rank_cells(row),
            round(row.elo),
            row.answers,
            round(row.ttft_s, 3) if row.ttft_s is not None else None,
            round(row.decode_tps, 1) if row.decode_tps is not None else None,
        ]
        for row in rows
    ]
