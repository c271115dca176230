"""A chat as turns: what the page holds between events and what a comparison column
keeps, read back from the store or built from a finished answer."""

from __future__ import annotations

from dataclasses import dataclass, field

from documents.parts import ChatMessage
from engine.types import Final
from sessions.figures import row_metrics
from sessions.parts import blob_sha256
from sessions.rows import STATUS_BY_FINISH

from .branches import Versions
from .conversation import model_messages
from .metrics import context_line


def answer_status(final: Final) -> str:
    """complete | cancelled | error, as the store and the page say it."""
    return STATUS_BY_FINISH[final.finish_reason]


@dataclass
class Turn:
    message: ChatMessage
    files: list[str] = field(default_factory=list)  # display paths of images and documents, in order
    footer: str = ""  # metrics line under an answer
    status: str = "complete"  # reading | streaming | complete | cancelled | error | interrupted
    id: int | None = None  # the stored message this turn is
    versions: Versions | None = None  # set when an edit or a regeneration left siblings
    # An answer's documents that went in part (ContextReport.selection): which pages of how many.
    selection: list[dict] = field(default_factory=list)

    @property
    def branch(self) -> str:
        """ "2/3" when this turn has siblings to move between, else ""."""
        return self.versions.label if self.versions else ""


def assistant_turn(text: str, status: str, footer: str = "") -> Turn:
    return Turn(ChatMessage.text("assistant", text), footer=footer, status=status)


def conversation_of(turns: list[Turn], system_prompt: str) -> list[ChatMessage]:
    """What the model continues: the system prompt, then every turn but failed answers."""
    kept = [t.message for t in turns if t.status != "error" or t.message.role == "user"]
    return model_messages(kept, system_prompt)


def turns_from_rows(rows, blob_path) -> list[Turn]:
    """A stored branch as chat turns: images from the blob store, metrics from the row."""
    turns = []
    for row in rows:
        if row.role == "user":
            files = [str(blob_path(sha)) for sha in map(blob_sha256, row.parts) if sha]
            turns.append(Turn(ChatMessage("user", row.parts), files=files, id=row.id))
        elif row.role == "assistant":
            turns.append(
                Turn(
                    ChatMessage.text("assistant", row.text),
                    footer=_footer(row),
                    status=row.status,
                    id=row.id,
                    selection=list(row.prompt_info.get("selection", [])),
                )
            )
    return turns


def _footer(row) -> str:
    if not row.finish_reason and row.status == "complete":
        return ""
    return " · ".join(bit for bit in (row_metrics(row), context_line(row.prompt_info)) if bit)
