"""Saved chats: SQLite persistence for sessions, branching message trees, attachments,
full-text search, export/import. The only package with SQL; builds on engine.types."""

from .answer import AnswerWriter
from .comparisons import ComparisonRow, SpeedRow, StartedComparison, VoteRow
from .rows import AttachmentRow, MessageNotFound, MessageRow, SearchHit, SessionNotFound, SessionRow, Status
from .session_table import title_from
from .store import Store, chat_messages

__all__ = [
    "AnswerWriter",
    "AttachmentRow",
    "ComparisonRow",
    "MessageNotFound",
    "MessageRow",
    "SearchHit",
    "SessionNotFound",
    "SessionRow",
    "SpeedRow",
    "StartedComparison",
    "Status",
    "Store",
    "VoteRow",
    "chat_messages",
    "title_from",
]
