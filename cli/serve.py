"""`launch.py [flags]`: serve the page and the API."""

from __future__ import annotations


def run(settings, args) -> int:
    from app.server import serve

    return serve(settings, open_browser=args.open)
