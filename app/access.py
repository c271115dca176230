"""Who may reach the page: logins from --auth / --auth-file, and the rule that a
server reachable from other machines (a non-loopback --host, or --share) needs them.

No Gradio here: the checks run before anything is loaded, and are tested directly."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from config import Settings
from engine.types import EngineInputError

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
SHARE_WARNING = (
    "warning: --share publishes this app on a public gradio.live address; anyone who has "
    "the link and a login can use this machine's model and read their own saved chats"
)


def is_loopback(host: str) -> bool:
    """True only for addresses other machines cannot reach; a name other than
    localhost counts as reachable, since it may resolve to any interface."""
    host = host.strip().strip("[]")
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_login(entry: str, where: str) -> tuple[str, str]:
    """'user:password' -> (user, password); the password may itself hold colons."""
    user, colon, password = entry.partition(":")
    user = user.strip()
    if not colon or not user or not password:
        raise EngineInputError(f"{where}: expected user:password, got {_redacted(entry)!r}")
    return user, password


def read_auth_file(path: Path) -> list[tuple[str, str]]:
    """One user:password per line; blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EngineInputError(f"auth file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineInputError(f"cannot read auth file {path}: {type(exc).__name__}") from None
    return [
        parse_login(line.strip(), f"{path} line {number}")
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def logins(settings: Settings) -> list[tuple[str, str]]:
    """Every configured login; raises EngineInputError on a malformed or repeated one."""
    found = [parse_login(entry, "--auth") for entry in settings.auth]
    if settings.auth_file is not None:
        found += read_auth_file(settings.auth_file)
    if settings.auth_file is not None and not found:
        raise EngineInputError(f"auth file {settings.auth_file} holds no user:password line")
    users = [user for user, _ in found]
    repeated = sorted({user for user in users if users.count(user) > 1})
    if repeated:
        raise EngineInputError(f"user {repeated[0]!r} is given more than once in --auth/--auth-file")
    return found


def check_exposure(settings: Settings) -> list[tuple[str, str]]:
    """The logins to serve with; refuses a reachable server without any."""
    found = logins(settings)
    if found:
        return found
    if settings.share:
        raise EngineInputError("--share makes the app public; add --auth user:pass or --auth-file FILE")
    if not is_loopback(settings.host):
        raise EngineInputError(
            f"--host {settings.host} lets other machines in; add --auth user:pass or --auth-file FILE "
            "(or bind 127.0.0.1)"
        )
    return found


def is_shared(settings: Settings) -> bool:
    """Whether several people may use this server: logins are on, or other machines
    can reach it. Then what every user shares (the loaded model's context size) is
    set by the server's flags alone."""
    return bool(settings.auth or settings.auth_file or settings.share or not is_loopback(settings.host))


def _redacted(entry: str) -> str:
    # A malformed line may still be someone's password: show its shape, not its text.
    return entry if len(entry) <= 3 else entry[:2] + "…"
