"""Identifiers and timestamps, in the forms stored in the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def new_session_id() -> str:
    # 48 random bits: short enough for a URL, and a clash would fail the INSERT
    # loudly (primary key) rather than mix two chats.
    return uuid.uuid4().hex[:12]


def now() -> str:
    """UTC, fixed width, so text order is time order (ORDER BY updated)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
