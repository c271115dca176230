"""The one error hierarchy, matched by type everywhere: a `UserError` is something the
person can fix (a wrong file, too long a prompt, an unknown model) and its message is
one line shown as is, on the page, the CLI (exit 2) and the API (400-class); a `Fault`
is something that failed on our side or the model's (a model that cannot load, a
worker that died) and is reported as one line too, never as a traceback; `Cancelled`
is the person's own Stop or Ctrl-C. Every package raises subclasses of these, so a
front end needs no knowledge of which package an error came from."""

from __future__ import annotations


class PlaygroundError(Exception):
    """Anything the playground reports in one line."""


class UserError(PlaygroundError, ValueError):
    """Bad input the user can fix; the message is meant to be shown as is."""


class NotFound(UserError):
    """A chat, message, model or file that does not exist (or is not the asker's)."""


class Cancelled(PlaygroundError):
    """Stopped by the person who asked."""


class Fault(PlaygroundError, RuntimeError):
    """Our side or the model's failed; the user can only retry or tell the operator."""
