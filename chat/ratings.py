"""Bradley–Terry ratings with bootstrap 95% intervals: a rank is only as good as the
votes behind it (LMArena's lesson), so each rating comes with the range it takes
when the votes are resampled, and a model with too few votes is not ranked at all.

Votes, not games, are resampled: one vote over three answers is two or three games
that stand or fall together. Ties and 'all bad' count half a win each way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 200
MIN_VOTES = 5  # fewer votes than this: "too few votes to rank"
START = 1000.0
PRIOR = 1.0  # virtual drawn games against a 1000-rated model: undefeated stays finite
Game = tuple[str, str, float]  # (model a, model b, a's score: 1 win, 0.5 draw, 0 loss)


def games(votes) -> list[Game]:
    """A vote over N answers as pairwise games: 'best' is a win of the chosen model over
    each other one; 'tie' and 'bad' (all answers bad) a draw between every pair."""
    played: list[Game] = []
    for vote in votes:
        models = list(dict.fromkeys(vote.engine_ids))  # a model compared with itself plays no game
        if vote.outcome == "best" and vote.winner is not None:
            played += [(vote.winner, other, 1.0) for other in models if other != vote.winner]
        else:
            played += [(a, b, 0.5) for i, a in enumerate(models) for b in models[i + 1 :]]
    return played


@dataclass(frozen=True)
class Rating:
    model: str
    rating: float  # Elo scale: 1000 + 400·log10(strength)
    low: float  # 2.5th percentile over the bootstrap
    high: float  # 97.5th percentile
    votes: int
    ranked: bool  # at least MIN_VOTES votes
    wins: int = 0  # votes where it was chosen best
    ties: int = 0  # 'tie' and 'bad' votes (half a win each way)

    @property
    def interval(self) -> str:
        return f"{self.low:.0f}–{self.high:.0f}"


def strengths(models: Sequence[str], played: Sequence[Game], prior: float = PRIOR) -> np.ndarray:
    """Maximum-likelihood Bradley–Terry ratings of `models` on the Elo scale."""
    return _fit(_GameTable(models, played), np.ones(len(played)), prior)


class _GameTable:
    """Games as index arrays, so a resample is only a weight per game."""

    def __init__(self, models: Sequence[str], played: Sequence[Game]):
        index = {m: i for i, m in enumerate(models)}
        self.n = len(models)
        self.a = np.array([index[g[0]] for g in played], dtype=np.int64)
        self.b = np.array([index[g[1]] for g in played], dtype=np.int64)
        self.score = np.array([g[2] for g in played], dtype=np.float64)


def _fit(table: _GameTable, weight: np.ndarray, prior: float) -> np.ndarray:
    """Newton's method on log-strengths (the model is a logistic regression; the prior
    keeps it strictly concave, so a handful of steps converge; a draw is half a win)."""
    n = table.n
    won = np.bincount(table.a * n + table.b, weight * table.score, n * n).reshape(n, n)
    won += np.bincount(table.b * n + table.a, weight * (1 - table.score), n * n).reshape(n, n)
    count = won + won.T  # games between i and j, each way
    theta = np.zeros(n)
    for _ in range(100):
        expected = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))  # P(i beats j)
        to_reference = 1 / (1 + np.exp(-theta))
        gradient = (won - count * expected).sum(axis=1) + prior * (0.5 - to_reference)
        curvature = count * expected * (1 - expected)
        hessian = curvature - np.diag(curvature.sum(axis=1) + prior * to_reference * (1 - to_reference))
        step = np.linalg.solve(hessian, gradient)
        theta -= np.clip(step, -5, 5)
        if np.max(np.abs(step)) < 1e-10:
            break
    return START + 400 * theta / np.log(10)


def rate(
    votes: Sequence,
    resamples: int = RESAMPLES,
    min_votes: int = MIN_VOTES,
    seed: int = 0,
) -> dict[str, Rating]:
    """Ratings of every model in `votes` (sessions' VoteRow), best first. The bootstrap
    is seeded: the same votes, the same table."""
    models = list(dict.fromkeys(m for v in votes for m in v.engine_ids))
    if not models:
        return {}
    played, owner = [], []
    for number, vote in enumerate(votes):
        made = games([vote])
        played += made
        owner += [number] * len(made)
    table, owner = _GameTable(models, played), np.array(owner, dtype=np.int64)
    point = _fit(table, np.ones(len(played)), PRIOR)
    rng = np.random.default_rng(seed)
    samples = np.empty((resamples, len(models)))
    for row in range(resamples):
        picked = np.bincount(rng.integers(0, len(votes), len(votes)), minlength=len(votes))
        samples[row] = _fit(table, picked[owner].astype(np.float64), PRIOR)
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    ratings = [
        Rating(m, float(point[i]), float(low[i]), float(high[i]), *_tally(votes, m, min_votes))
        for i, m in enumerate(models)
    ]
    return {r.model: r for r in sorted(ratings, key=lambda r: (not r.ranked, -r.rating, r.model))}


def _tally(votes, model: str, min_votes: int) -> tuple[int, bool, int, int]:
    taken = [v for v in votes if model in v.engine_ids]
    wins = sum(1 for v in taken if v.outcome == "best" and v.winner == model)
    ties = sum(1 for v in taken if v.outcome != "best")
    return len(taken), len(taken) >= min_votes, wins, ties


def json_row(rating: Rating, speed=None) -> dict:
    """A rating as `eval leaderboard --json` prints it (speed: sessions' SpeedRow)."""
    row = {"model": rating.model, "votes": rating.votes, "wins": rating.wins, "ties": rating.ties}
    row |= {"ranked": rating.ranked, "bradley_terry": round(rating.rating, 1)}
    row |= {"low": round(rating.low, 1), "high": round(rating.high, 1)}
    row |= {"answers": speed.answers if speed else 0, "ttft_s": speed.ttft_s if speed else None}
    row["decode_tps"] = speed.decode_tps if speed else None
    return row
