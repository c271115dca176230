"""Evaluation runs: what was asked of which models, and each finished unit (a suite
conversation's turn for one model, or one fidelity variant). Reached as
`store.evals`; a run resumes by asking which units it already has."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

from engine.types import EngineInputError

from .connection import Connection
from .ids import now


@dataclass(frozen=True)
class EvalRun:
    id: int
    kind: str
    name: str
    models: tuple[str, ...]
    settings: dict
    owner: str
    created: str


@dataclass(frozen=True)
class EvalResult:
    model: str
    item: str
    turn: int
    passed: int
    total: int
    completion_tokens: int
    answer: str
    detail: dict


CSV_COLUMNS = ("run", "model", "item", "turn", "passed", "total", "completion_tokens", "answer", "detail")


class Evals:
    def __init__(self, conn: Connection):
        self._conn = conn

    def start(self, kind: str, name: str, models: Sequence[str], settings: dict, owner: str = "") -> int:
        fields = (kind, name, json.dumps(list(models)), json.dumps(settings), owner, now())
        sql = "INSERT INTO eval_runs (kind, name, models, settings, owner, created) VALUES (?, ?, ?, ?, ?, ?)"
        return int(self._conn.write(lambda: self._conn.execute(sql, fields).lastrowid))

    def run(self, run_id: int, owner: str = "") -> EvalRun:
        """The run if `owner` made it; another user's run reads like a missing one."""
        row = self._conn.one("SELECT * FROM eval_runs WHERE id = ? AND owner = ?", (run_id, owner))
        if row is None:
            raise EngineInputError(f"no evaluation run {run_id}")
        return EvalRun(
            row["id"], row["kind"], row["name"], tuple(json.loads(row["models"])),
            json.loads(row["settings"]), row["owner"], row["created"],
        )  # fmt: skip

    def runs(self, owner: str = "", limit: int = 50) -> list[EvalRun]:
        ids = self._conn.rows(
            "SELECT id FROM eval_runs WHERE owner = ? ORDER BY id DESC LIMIT ?", (owner, limit)
        )
        return [self.run(row["id"], owner) for row in ids]

    def record(self, run_id: int, result: EvalResult) -> None:
        self.record_all(run_id, [result])

    def record_all(self, run_id: int, results: Sequence[EvalResult]) -> None:
        """Finished units in one transaction (a crash leaves them out, never half in)."""
        self._conn.write(lambda: [self._insert(run_id, r) for r in results])

    def _insert(self, run_id: int, result: EvalResult) -> None:
        values = (
            run_id, result.model, result.item, result.turn, result.passed, result.total,
            result.completion_tokens, result.answer, json.dumps(result.detail), now(),
        )  # fmt: skip
        sql = "INSERT OR REPLACE INTO eval_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        self._conn.execute(sql, values)

    def results(self, run_id: int) -> list[EvalResult]:
        rows = self._conn.rows(
            "SELECT * FROM eval_results WHERE run_id = ? ORDER BY model, item, turn", (run_id,)
        )
        return [
            EvalResult(
                r["model"],
                r["item"],
                r["turn"],
                r["passed"],
                r["total"],
                r["completion_tokens"],
                r["answer"],
                json.loads(r["detail"]),
            )
            for r in rows
        ]

    def done_items(self, run_id: int, model: str) -> set[str]:
        rows = self._conn.rows(
            "SELECT DISTINCT item FROM eval_results WHERE run_id = ? AND model = ?", (run_id, model)
        )
        return {row["item"] for row in rows}

    def forget_item(self, run_id: int, model: str, item: str) -> None:
        """Drop a unit's partial turns (a conversation interrupted mid-way restarts)."""
        sql = "DELETE FROM eval_results WHERE run_id = ? AND model = ? AND item = ?"
        self._conn.write(lambda: self._conn.execute(sql, (run_id, model, item)))

    def to_csv(self, run_id: int) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for r in self.results(run_id):
            writer.writerow(
                (run_id, r.model, r.item, r.turn, r.passed, r.total, r.completion_tokens, r.answer,
                 json.dumps(r.detail, ensure_ascii=False))
            )  # fmt: skip
        return out.getvalue()
