"""What keeps a web page in the next browser tab out of this server: the checks a local
Ollama or llama-server needs and often lacks.

- DNS rebinding: a page on attacker.example whose name is re-pointed at 127.0.0.1 is
  same-origin with this server in the browser's eyes, and could read every chat. Its
  requests still carry `Host: attacker.example`, so a Host other than the names this
  server was started for (loopback, --host, --allowed-host) is refused with 421.
- Cross-site requests (CSRF): any page may POST to http://127.0.0.1:7860 (a form, a
  text/plain fetch) and, with no login, make chats or load models. A browser names the
  page's origin in `Origin` on every such request, so a request (a WebSocket too)
  whose Origin is not this server's own, nor one the operator allowed, is refused
  with 403. /v1 POSTs must also be JSON (415): a cross-site form or a
  "simple" fetch cannot send application/json without a CORS preflight.

Pure ASGI, before Gradio and the API: a refused request never reaches either. /v1 gets
OpenAI's error shape, everything else one plain line."""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from config import Settings

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
SHARE_HOSTS = ("*.gradio.live",)  # --share's tunnel forwards with its own Host
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class Names:
    """The hosts this server answers to, and the extra origins that may call it."""

    hosts: frozenset[str]  # exact names, lower case
    suffixes: tuple[str, ...]  # from "*.example.com" entries: ".example.com"
    any_ip: bool  # bound to every interface: any address literal is one of ours
    any_host: bool  # "*": the operator (or a proxy in front) checks Host instead
    origins: frozenset[str]  # "scheme://host[:port]", lower case
    any_origin: bool

    def host_allowed(self, host: str) -> bool:
        if self.any_host or host in self.hosts or host.endswith(self.suffixes):
            return True
        return self.any_ip and _is_ip(host)

    def named(self, host: str) -> bool:
        """An operator-named host (not just loopback): its pages may call us."""
        return host in self.hosts - set(LOOPBACK_NAMES) or host.endswith(self.suffixes)


def allowed_names(settings: Settings) -> Names:
    entries = [*LOOPBACK_NAMES, _hostname(settings.host), *map(_hostname, settings.allowed_hosts)]
    if settings.share:
        entries += SHARE_HOSTS
    any_ip = settings.host.strip().strip("[]") in WILDCARD_BINDS
    if any_ip:
        entries.append(socket.gethostname().lower())
    origins = [_origin_key(entry) for entry in settings.allowed_origins if entry.strip() != "*"]
    return Names(
        hosts=frozenset(e for e in entries if e and not e.startswith("*")),
        suffixes=tuple(e[1:] for e in entries if e.startswith("*.")),
        any_ip=any_ip,
        any_host="*" in entries,
        origins=frozenset(o for o in origins if o),
        any_origin=any(entry.strip() == "*" for entry in settings.allowed_origins),
    )


def web_guard(settings: Settings) -> Middleware:
    """The middleware for `app_kwargs["middleware"]`, outside every other of ours."""
    return Middleware(WebGuard, names=allowed_names(settings))


class WebGuard:
    def __init__(self, app: ASGIApp, names: Names):
        self.app, self.names = app, names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refusal[1][:120]})
        else:
            await _refuse(send, scope["path"], *refusal)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, line) for a request to refuse; None to let it through."""
        headers = _headers(scope)
        host_header = headers.get("host", "")
        host = _hostname(host_header)
        if not self.names.host_allowed(host):
            shown = host_header[:100] or "(none)"
            return 421, (
                f"this server does not answer to the host name {shown!r}; start it with "
                "--allowed-host NAME (L4P_ALLOWED_HOSTS) to serve it under that name"
            )
        method = scope.get("method", "GET")
        # A browser names the calling page in Origin on every cross-origin fetch, read
        # or write, and on every WebSocket (Gradio grants CORS to any origin on a
        # non-loopback host, so reads need the check too). A link followed from
        # another site carries only a Referer, and may; a write with only a Referer
        # (an old browser) is held to it.
        origin = headers.get("origin")
        if origin is None and method not in SAFE_METHODS:
            origin = _referer_origin(headers.get("referer", ""))
        if origin and not self.origin_allowed(origin, host_header, scope):
            return 403, (
                f"a page from {origin[:100]!r} may not make requests to this server; "
                "use the page itself, or --allowed-origin ORIGIN (L4P_ALLOWED_ORIGINS)"
            )
        if scope["path"].startswith("/v1/") and method not in SAFE_METHODS:
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return 415, f"send the request body as application/json, not {kind[:60] or 'no content type'}"
        return None

    def origin_allowed(self, origin: str, host_header: str, scope: Scope) -> bool:
        if self.names.any_origin:
            return True
        key = _origin_key(origin)
        if not key:  # "null" (a sandboxed frame, a data: page) or garbage
            return False
        if key in self.names.origins:
            return True
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        if key == _origin_key(f"{scheme}://{host_header}"):
            return True  # the page itself
        # A reverse proxy that rewrites Host: the public name the operator allowed.
        return self.names.named(_hostname(urlsplit(key).netloc))


async def _refuse(send: Send, path: str, status: int, line: str) -> None:
    if path.startswith("/v1/"):
        kind = "invalid_request_error"
        payload = {"error": {"message": line, "type": kind, "param": None, "code": f"http_{status}"}}
        body, media = json.dumps(payload).encode(), b"application/json"
    else:
        body, media = (line + "\n").encode(), b"text/plain; charset=utf-8"
    headers = [
        (b"content-type", media),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"connection", b"close"),  # the body, if any, is not read
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _headers(scope: Scope) -> dict[str, str]:
    # The first of each name; latin-1 decodes any bytes, so no header can raise here.
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1").strip())
    return found


def _hostname(host_header: str) -> str:
    """'Example.COM.:7860' -> 'example.com'; '[::1]:7860' -> '::1'; a bare IPv6 kept."""
    text = host_header.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") > 1:  # an IPv6 address without brackets (a --host value)
        return text
    return text.partition(":")[0].rstrip(".")


def _origin_key(origin: str) -> str:
    """'HTTP://Localhost:80' -> 'http://localhost'; '' for anything not an origin."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname.rstrip(".")
    shown_port = "" if port in (None, DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host}{shown_port}"


def _referer_origin(referer: str) -> str:
    """An old browser (or a privacy setting) may send Referer without Origin."""
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
