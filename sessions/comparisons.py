"""Comparisons: one prompt answered by several models, the column order the user saw,
and the vote. Reached as `store.comparisons`; the answers themselves are ordinary
assistant messages (their engine_id says which model wrote them)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.types import EngineInputError, SamplingParams

from . import messages as msgs
from .answer import AnswerWriter
from .connection import Connection, process_identity
from .ids import now
from .session_table import require_session, touch_session

OUTCOMES = ("best", "tie", "bad")


@dataclass(frozen=True)
class StartedComparison:
    id: int
    writers: list[AnswerWriter]  # one per column, in column order


@dataclass(frozen=True)
class ComparisonRow:
    id: int
    session_id: str
    blind: bool
    answer_ids: tuple[int, ...]  # column order
    engine_ids: tuple[str, ...]
    outcome: str | None = None  # None until voted
    winner_position: int | None = None


@dataclass(frozen=True)
class VoteRow:
    comparison_id: int
    engine_ids: tuple[str, ...]  # the models compared, column order
    outcome: str  # best | tie | bad
    winner: str | None  # engine_id of the best answer, for outcome 'best'


@dataclass(frozen=True)
class SpeedRow:
    engine_id: str
    answers: int
    ttft_s: float
    prompt_tps: float
    decode_tps: float


class Comparisons:
    def __init__(self, conn: Connection):
        self._conn = conn

    def start(
        self,
        session_id: str,
        prompt_ids: Sequence[int],
        engine_ids: Sequence[str],
        params: Sequence[SamplingParams | dict[str, Any]],
        blind: bool = False,
    ) -> StartedComparison:
        """One 'streaming' answer per column under its prompt (the same user message
        for every column on a first turn: the answers are siblings; a follow-up has
        one per model branch), and the comparison, in one transaction."""
        if not 2 <= len(engine_ids) == len(prompt_ids) == len(params):
            raise EngineInputError("a comparison needs two or more models, each with a prompt")
        stamp = now()

        def write() -> tuple[int, list[int]]:
            require_session(self._conn, session_id)
            for parent in set(prompt_ids):
                msgs.check_parent(self._conn, session_id, parent)
            answer_ids = [
                msgs.insert_message(self._conn, _answer_fields(session_id, parent, engine, p, stamp))
                for parent, engine, p in zip(prompt_ids, engine_ids, params, strict=True)
            ]
            cursor = self._conn.execute(
                "INSERT INTO comparisons (session_id, created, blind) VALUES (?, ?, ?)",
                (session_id, stamp, int(blind)),
            )
            comparison_id = int(cursor.lastrowid)
            for position, answer_id in enumerate(answer_ids):
                self._conn.execute(
                    "INSERT INTO comparison_answers (comparison_id, position, message_id) VALUES (?, ?, ?)",
                    (comparison_id, position, answer_id),
                )
            touch_session(self._conn, session_id, stamp)
            return comparison_id, answer_ids

        comparison_id, answer_ids = self._conn.write(write)
        writers = [AnswerWriter(self._conn, answer_id, session_id) for answer_id in answer_ids]
        return StartedComparison(comparison_id, writers)

    def get(self, comparison_id: int) -> ComparisonRow:
        found = self._conn.one("SELECT * FROM comparisons WHERE id = ?", (comparison_id,))
        if found is None:
            raise EngineInputError(f"no comparison {comparison_id}")
        answers = self._conn.rows(
            """
            SELECT a.message_id, m.engine_id FROM comparison_answers AS a
            JOIN messages AS m ON m.id = a.message_id
            WHERE a.comparison_id = ? ORDER BY a.position
            """,
            (comparison_id,),
        )
        vote = self._conn.one("SELECT * FROM comparison_votes WHERE comparison_id = ?", (comparison_id,))
        return ComparisonRow(
            id=comparison_id,
            session_id=found["session_id"],
            blind=bool(found["blind"]),
            answer_ids=tuple(a["message_id"] for a in answers),
            engine_ids=tuple(a["engine_id"] for a in answers),
            outcome=vote["outcome"] if vote else None,
            winner_position=vote["winner_position"] if vote else None,
        )

    def for_session(self, session_id: str) -> list[ComparisonRow]:
        found = self._conn.rows("SELECT id FROM comparisons WHERE session_id = ? ORDER BY id", (session_id,))
        return [self.get(row["id"]) for row in found]

    def vote(self, comparison_id: int, outcome: str, winner_position: int | None = None) -> ComparisonRow:
        """Record the one vote of a comparison: 'best' with the winning column, or
        'tie', or 'bad' (every answer bad)."""
        if outcome not in OUTCOMES:
            raise EngineInputError(f"unknown vote {outcome!r}; choose one of {', '.join(OUTCOMES)}")
        if (outcome == "best") != (winner_position is not None):
            raise EngineInputError("a 'best' vote names one answer; 'tie' and 'bad' name none")

        def write() -> None:
            row = self.get(comparison_id)
            if row.outcome is not None:
                raise EngineInputError("this comparison already has a vote")
            if winner_position is not None and not 0 <= winner_position < len(row.answer_ids):
                raise EngineInputError(f"there is no answer {winner_position + 1} in this comparison")
            self._conn.execute(
                "INSERT INTO comparison_votes (comparison_id, outcome, winner_position, created)"
                " VALUES (?, ?, ?, ?)",
                (comparison_id, outcome, winner_position, now()),
            )

        self._conn.write(write)
        return self.get(comparison_id)

    def votes(self, owner: str | None = None) -> list[VoteRow]:
        """Every vote of `owner`'s comparisons (None: everyone's), oldest first (the
        order online Elo replays them in)."""
        found = self._conn.rows(
            f"""
            SELECT v.comparison_id, v.outcome, v.winner_position, m.engine_id
            FROM comparison_votes AS v
            JOIN comparison_answers AS a ON a.comparison_id = v.comparison_id
            JOIN messages AS m ON m.id = a.message_id
            {_OWNED}
            ORDER BY v.created, v.comparison_id, a.position
            """,
            _owner_params(owner),
        )
        grouped: dict[int, list[dict[str, Any]]] = {}
        for record in found:
            grouped.setdefault(record["comparison_id"], []).append(record)
        rows = []
        for comparison_id, answers in grouped.items():
            engines = tuple(a["engine_id"] for a in answers)
            position = answers[0]["winner_position"]
            winner = engines[position] if position is not None else None
            rows.append(VoteRow(comparison_id, engines, answers[0]["outcome"], winner))
        return rows

    def speeds(self, owner: str | None = None) -> list[SpeedRow]:
        """Mean speed per model over the finished answers of `owner`'s comparisons
        (None: everyone's). A blind comparison not voted on yet counts only once its
        vote is in, so the figures never give its models away."""
        found = self._conn.rows(
            f"""
            SELECT m.engine_id, count(*) AS answers, avg(m.ttft_s) AS ttft_s,
                   avg(m.prompt_tps) AS prompt_tps, avg(m.decode_tps) AS decode_tps
            FROM comparison_answers AS a JOIN messages AS m ON m.id = a.message_id
            {_OWNED}
            AND m.status = 'complete' AND a.comparison_id NOT IN ({_HIDDEN})
            GROUP BY m.engine_id ORDER BY m.engine_id
            """,
            _owner_params(owner),
        )
        return [SpeedRow(**record) for record in found]

    def hidden_answers(self, message_ids: Sequence[int]) -> set[int]:
        """Those of these answers that belong to a blind comparison still waiting for
        its vote: their models and speed figures must not show anywhere yet."""
        found = self._conn.rows(
            f"""
            SELECT message_id FROM comparison_answers
            WHERE message_id IN (SELECT value FROM json_each(?)) AND comparison_id IN ({_HIDDEN})
            """,
            (json.dumps(list(message_ids)),),
        )
        return {row["message_id"] for row in found}


# Rows of one owner's comparisons, or everyone's when the owner parameter is NULL.
_OWNED = """
    WHERE (? IS NULL OR (SELECT s.owner FROM sessions AS s WHERE s.id = m.session_id) = ?)
"""
_HIDDEN = """
    SELECT c.id FROM comparisons AS c WHERE c.blind
    AND NOT EXISTS (SELECT 1 FROM comparison_votes AS v WHERE v.comparison_id = c.id)
"""


def _owner_params(owner: str | None) -> tuple:
    return (owner, owner)


def _answer_fields(
    session_id: str, parent_id: int, engine_id: str, params: SamplingParams | dict[str, Any], stamp: str
) -> dict[str, Any]:
    if isinstance(params, SamplingParams):
        params = dataclasses.asdict(params)
    return {
        "session_id": session_id,
        "parent_id": parent_id,
        "role": "assistant",
        "created": stamp,
        "engine_id": engine_id,
        "params": json.dumps(params),
        "status": "streaming",
        "writer": process_identity(),
    }
