"""Who may call the API: keys from --api-key / --api-key-file (L4P_API_KEYS,
L4P_API_KEY_FILE).

Without logins an entry is the key itself, and the API's chats belong to no one, like
the page's. With logins (--auth) an entry is USER:KEY, USER one of the logins: the
chats that key makes belong to USER and show in USER's sidebar. No keys: the API is
open on a loopback-only server without logins, and closed (401) otherwise."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from engine.types import EngineInputError

from .login_throttle import LoginThrottle

MIN_KEY_CHARS = 8


@dataclass(frozen=True)
class ApiAccess:
    keys: dict[str, str]  # sha256 of a key -> the user its chats belong to
    open: bool  # no key needed (loopback, no logins, no keys)
    throttle: LoginThrottle | None = None  # back-off after wrong keys

    def owner(self, presented: str | None) -> str | None:
        """The user a presented key acts for; None when it opens nothing."""
        if self.open:
            return ""
        if not presented:
            return None
        return self.keys.get(hashlib.sha256(presented.encode()).hexdigest())


def read_key_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EngineInputError(f"API key file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineInputError(f"cannot read API key file {path}: {type(exc).__name__}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def api_access(settings: Settings, users: list[str], throttle: LoginThrottle | None = None) -> ApiAccess:
    """The keys to serve with, checked against the logins; raises EngineInputError
    with one line on a malformed, short, repeated or unknown-user entry."""
    entries = [("--api-key", entry) for entry in settings.api_keys]
    if settings.api_key_file is not None:
        entries += [(str(settings.api_key_file), entry) for entry in read_key_file(settings.api_key_file)]
    keys: dict[str, str] = {}
    for where, entry in entries:
        user, key = _parse(entry, where, users)
        digest = hashlib.sha256(key.encode()).hexdigest()
        if digest in keys:
            raise EngineInputError(f"{where}: an API key is given more than once")
        keys[digest] = user
    return ApiAccess(keys, open=not keys and not users, throttle=throttle)


def _parse(entry: str, where: str, users: list[str]) -> tuple[str, str]:
    if users:
        user, colon, key = entry.partition(":")
        if not colon or user not in users:
            raise EngineInputError(
                f"{where}: with logins, an API key is USER:KEY with USER one of the --auth users"
            )
    else:
        user, key = "", entry
        if ":" in entry:
            raise EngineInputError(
                f"{where}: USER:KEY needs logins (--auth); without them give the key alone"
            )
    if len(key) < MIN_KEY_CHARS:
        raise EngineInputError(f"{where}: an API key needs at least {MIN_KEY_CHARS} characters")
    return user, key
