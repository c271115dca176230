"""Who may change what models this server holds: pull from the hub, cancel a pull,
delete a model's files. Those are the admins: the logins named by --admin, or else
the first login (the operator who started the server). Everyone else sees the
catalogue read-only. Without logins the one person at the keyboard is the admin.

No Gradio here: the rule is checked in the handlers (a client can call them without
the page) and shown in the page by app/models_tab.py."""

from __future__ import annotations

from config import Settings
from engine.types import EngineInputError

ADMIN_ONLY = "Only an admin can pull or delete models (the first login, or those named by --admin)."


def admins(settings: Settings, users: list[str]) -> set[str]:
    """The admin logins; raises EngineInputError for an --admin that is no login."""
    if not users:
        if settings.admins:
            raise EngineInputError("--admin names a login; add --auth user:pass (or --auth-file) too")
        return set()
    unknown = sorted(set(settings.admins) - set(users))
    if unknown:
        raise EngineInputError(f"--admin {unknown[0]!r} is not one of the --auth/--auth-file logins")
    return set(settings.admins) or {users[0]}


def may_manage_models(settings: Settings, user: str) -> bool:
    """True for an admin; True for everyone on a server without logins."""
    from app.access import logins

    users = [name for name, _ in logins(settings)]
    return not users or user in admins(settings, users)
