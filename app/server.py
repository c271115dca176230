"""Serving the UI: the runtime, the page, and Gradio's queue and launch options."""

from __future__ import annotations

import sys

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware

from api.keys import api_access
from api.login_throttle import LoginThrottle
from api.routes import api_routes
from app.access import SHARE_WARNING, check_exposure
from app.blob_route import blob_routes
from app.limits import body_limit
from app.login_guard import login_guard
from app.queues import WORKER_THREADS
from app.roles import admins
from app.session_binding import session_binding
from app.upload_temps import upload_sweep
from app.web_guard import web_guard
from chat.runtime import build_runtime
from config import ASSETS_DIR, Settings

# Images and media only from the app itself (and what the page makes in memory): an
# image a model writes, or any other outside URL, is never fetched by the browser.
# Scripts only from the app (Gradio's page needs its inline config and runs the page's
# js= through new Function, hence unsafe-inline/eval; what it blocks is script from
# anywhere else), requests only to it, no plugins, no <base> or form posts elsewhere,
# and no framing by another site (click-jacking).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    )
)


# Gradio's login form shows only "Incorrect credentials" for any refusal, so the pause
# after repeated failures is named here, on the form itself.
LOGIN_MESSAGE = (
    "Llama 4 Playground: log in to see your chats. After {} failed attempts, logins for that "
    "name pause for a while (the right password is refused until then)."
)


def serve(settings: Settings, block: bool = True, open_browser: bool = False):
    from app.page import build_app

    users = check_exposure(settings)  # before any model work: a refusal is instant
    admins(settings, [user for user, _ in users])  # an --admin that is no login: refused now
    throttle = LoginThrottle(settings.login_attempts, settings.login_backoff_s)
    access = api_access(settings, [user for user, _ in users], throttle)
    if settings.share:
        print(SHARE_WARNING, file=sys.stderr)
    runtime = build_runtime(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if swept := runtime.store.sweep().line():
        print(swept, file=sys.stderr)
    demo = build_app(runtime)
    demo.queue(default_concurrency_limit=16)  # per callback; generation has its lanes
    login = f", {len(users)} login(s)" if users else ""
    print(
        f"{_product(runtime)} on http://{settings.host}:{settings.port} "
        f"(model: {runtime.default_model}{login}; OpenAI-compatible API at /v1)"
    )
    for line in first_run_lines(runtime):  # which model runs, and the way to Llama 4 here
        print(line, flush=True)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        css_paths=[ASSETS_DIR / "style.css"],
        js=(ASSETS_DIR / "citations.js").read_text(),
        max_file_size=f"{settings.max_file_mb}mb",
        show_error=False,
        prevent_thread_lock=not block,
        max_threads=WORKER_THREADS,
        quiet=True,
        inbrowser=open_browser,
        auth=users or None,
        auth_message=LOGIN_MESSAGE.format(settings.login_attempts) if users else None,
        share=settings.share,
        # Saved images and documents are served by their own owner-checked route.
        blocked_paths=_private_paths(settings),
        # The OpenAI-compatible API on the page's own port: its routes come first.
        app_kwargs={
            "routes": [*api_routes(runtime, access), *blob_routes(runtime)],
            "middleware": [
                web_guard(settings),
                login_guard(throttle),
                body_limit(settings),
                session_binding(),  # after the body limit: it reads the queue's JSON
                upload_sweep(),
                Middleware(ContentSecurityPolicy),
            ],
        },
    )
    return 0 if block else demo


def _product(runtime) -> str:
    """The start-up line claims Llama 4 only while a Llama 4 is what runs."""
    return "Llama 4 Playground" if runtime.spec(runtime.default_model).is_llama else "Playground"


def first_run_lines(runtime) -> tuple[str, ...]:
    """Until a Llama 4 runs: which model does, and how to get Llama 4 (models/guide.py)."""
    from models.guide import next_step

    running = runtime.spec(runtime.default_model)
    step = next_step(list(runtime.registry.specs.values()), running, runtime.settings)
    return step.lines() if step else ()


def _private_paths(settings: Settings) -> list[str]:
    """Never served even if an allowed path covers them: the database, the models,
    the saved images and documents, chats' KV state."""
    data = settings.data_dir.resolve()
    return [
        str(data / "playground.db"),
        str(settings.resolved_models_dir.resolve()),
        str(data / "blobs"),
        str(settings.kv_dir.resolve()),
    ]


class ContentSecurityPolicy:
    """ASGI middleware adding CONTENT_SECURITY_POLICY to every HTTP response (pure
    ASGI, so streamed answers pass through unbuffered)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_policy(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            await send(message)

        return await self.app(scope, receive, send_with_policy)
