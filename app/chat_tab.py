"""The Chat tab: the saved-chats panel, the chat, settings, documents and the page
viewer, and its callbacks (`/send`, `/respond`, ...). Wiring only: a turn runs in the
chat service (chat/), rendering is app.render, saved chats are app.history."""

from __future__ import annotations

import time
from dataclasses import replace

import gradio as gr

from app import history, models_tab, page_viewer, pages_left
from app.access import is_shared
from app.blob_route import blob_link
from app.queues import ENGINE_RUN, run_scope
from app.render import SETTING_NAMES, attachment_chips, to_chatbot
from app.upload_temps import CHAT_UPLOADS
from chat.attachments import describe_upload
from chat.conversation import TurnRequest, Waiting
from chat.metrics import metrics_footer, reading_line
from chat.question import read_question, split_uploads
from chat.runtime import Runtime
from chat.service import Answered, Prepared
from chat.turns import Turn, answer_status, assistant_turn
from documents.context import STRATEGIES
from documents.page_modes import PAGE_MODES
from documents.reader import DOCUMENT_EXTENSIONS
from engine.budget import RequestBudget
from engine.limits import check_field, check_text
from engine.spec import ModelSpec
from engine.types import PromptProgress, TextDelta
from errors import Fault, UserError
from models.catalogue import LLAMA_LICENCE_URL
from models.fit import check_context

REFRESH_S = 0.05  # stream to the browser at most 20 times a second
PLACEHOLDER = "Ask about text, images or documents (PDF, EPUB, ...). Write <image> to place an image."


def build_tab(runtime: Runtime, demo: gr.Blocks, footer: gr.Markdown) -> tuple[gr.Dropdown, gr.Markdown]:
    """The tab's content; call inside `with gr.Tab(...)`. `footer` (the page's licence
    line) follows the chosen model. Returns the model picker and its "get more" fold.

    On a narrow screen the chat comes first and the saved chats and settings fold
    away (assets/style.css orders the columns, assets/citations.js folds them)."""
    turns, session = gr.State([]), gr.State("")
    with gr.Row(elem_id="chat-layout"):
        with (
            gr.Column(scale=1, min_width=260, elem_id="chat-list-column"),
            gr.Accordion("Saved chats", open=True, elem_id="chats-drawer"),
        ):
            panel = history.build_panel()
        with gr.Column(scale=3, elem_id="chat-column"):
            notice = gr.Markdown("", elem_id="notice")
            chatbot = gr.Chatbot(elem_id="chat", height=560, buttons=["copy"], label="Chat", editable="user")
            box = gr.MultimodalTextbox(
                file_count="multiple",
                file_types=["image", *DOCUMENT_EXTENSIONS],
                placeholder=PLACEHOLDER,
                show_label=False,
                elem_id="input",
            )
            chips = gr.HTML("", elem_id="attachment-chips")
            with gr.Row(elem_id="chat-controls"):
                # Each shows only when it can do something (see _controls).
                stop = gr.Button("■ Stop", variant="stop", size="sm", visible=False, elem_id="stop")
                regenerate = gr.Button("↻ Regenerate", size="sm", visible=False, elem_id="regenerate")
                # Move between answers that Regenerate and edits leave side by side.
                previous = gr.Button("◀", size="sm", visible=False, elem_id="previous-answer", min_width=48)
                following = gr.Button("▶", size="sm", visible=False, elem_id="next-answer", min_width=48)
            left = pages_left.build()
        with gr.Column(scale=1, min_width=260, elem_id="chat-settings-column"):
            model, model_info, more, settings = _settings_panel(runtime)
            page_mode, page_modes, strategy, page_range, password = _documents_panel()
    viewer = page_viewer.build()
    chat_outputs = [turns, session, chatbot, notice]
    controls = [stop, regenerate, previous, following, left.row, left.pages]
    run = ENGINE_RUN
    respond = _responder(runtime)
    gen_inputs = [turns, session, model, strategy, page_range, *settings]
    private = {"api_visibility": "private"}
    box.change(_chips, box, chips, queue=False, show_progress="hidden", trigger_mode="always_last", **private)
    box.submit(_running_controls, None, controls, queue=False, **private)
    sent = box.submit(
        _sender(runtime),
        [box, turns, session, model, page_mode, password, *settings, page_modes],
        [box, turns, session, chatbot, notice],
        api_name="send",
    )
    sent.then(respond, gen_inputs, chat_outputs, api_name="respond", **run).then(
        lambda: gr.MultimodalTextbox(interactive=True), None, box, **private
    ).then(_controls, turns, controls, **private).then(
        history.refresher(runtime), [session], panel.chats, **private
    )
    regenerate.click(_running_controls, None, controls, queue=False, **private)
    regenerate.click(_drop_last_answer, turns, [turns, chatbot], api_name="drop_last_answer").then(
        respond, gen_inputs, chat_outputs, **private, **run
    ).then(_controls, turns, controls, **private)
    chatbot.edit(_running_controls, None, controls, queue=False, **private)
    chatbot.edit(history.editor(runtime), [turns, session], [turns, chatbot, notice], **private).then(
        respond, gen_inputs, chat_outputs, **private, **run
    ).then(_controls, turns, controls, **private)
    for button, step in ((previous, -1), (following, 1)):
        button.click(
            history.branch_mover(runtime, step),
            [turns, session],
            [turns, chatbot, notice],
            api_name="next_answer" if step > 0 else "previous_answer",
        ).then(_controls, turns, controls, **private)
    stop.click(_stopper(runtime), None, notice, queue=False, api_name="stop")
    chatbot.clear(lambda: ([], "", ""), None, [turns, session, notice], **private).then(
        _controls, turns, controls, **private
    )
    system, temperature, top_p, _, n_ctx, _ = settings
    model.change(
        _loader(runtime),
        model,
        [model_info, footer, notice, system, temperature, top_p, n_ctx],
        api_name="load_model",
        **run,
    )
    for event in history.wire(panel, runtime, demo, turns, session, chatbot, notice, model, settings, box):
        event.then(_controls, turns, controls, **private)
    modes = [page_mode, page_modes]
    for event in pages_left.wire(
        left, runtime, respond, turns, session, chatbot, notice, model, settings, modes
    ):
        event.then(_controls, turns, controls, **private)
    page_viewer.wire(viewer, runtime, turns)
    return model, more


def _chips(message: dict | None) -> str:
    files = (message or {}).get("files") or []
    return attachment_chips([describe_upload(_file_path(f)) for f in files])


def _running_controls():
    """While an answer runs: Stop, and nothing that would start another."""
    return gr.Button(visible=True), *(gr.Button(visible=False) for _ in range(3)), *pages_left.hidden()


def _controls(turns: list[Turn]):
    """Idle: Regenerate once there is a question; ◀ ▶ only when the last answer has
    siblings (a regeneration or an edit left another one)."""
    last = turns[-1] if turns else None
    branched = last is not None and last.message.role == "assistant" and bool(last.branch)
    return (
        gr.Button(visible=False),
        gr.Button(visible=bool(turns)),
        gr.Button(visible=branched),
        gr.Button(visible=branched),
        *pages_left.shown(turns),
    )


def _settings_panel(runtime: Runtime):
    spec = runtime.spec(runtime.default_model)
    specs = list(runtime.registry.specs.values())
    checks = models_tab.page_checks(
        specs, runtime.settings.check_servers
    )  # the servers of remote models, asked at once
    choices = models_tab.picker_choices(specs, checks)
    model = gr.Dropdown(choices, value=spec.name, label="Model", elem_id="model")
    model_info = gr.Markdown(_model_info(spec), elem_id="model-info")
    with gr.Accordion("Get more models", open=False, elem_id="chat-get-more"):
        more = gr.Markdown(models_tab.get_more(specs, checks), elem_classes="get-more")
    with gr.Accordion("Settings", open=True, elem_id="settings-drawer"):
        defaults = spec.sampling_params()
        system = gr.Textbox(spec.system_prompt, label="System prompt", lines=3)
        temperature = gr.Slider(0, 2, value=defaults.temperature, step=0.05, label="Temperature")
        top_p = gr.Slider(0.05, 1, value=defaults.top_p, step=0.01, label="top_p")
        max_tokens = gr.Slider(16, 8192, value=defaults.max_tokens, step=16, label="Max new tokens")
        # One loaded model serves every user of a shared server: only its flags resize it.
        shared = is_shared(runtime.settings)
        n_ctx = gr.Number(
            spec.n_ctx,
            label="Context size (tokens)",
            info="set by the server (-c/--ctx)" if shared else None,
            precision=0,
            minimum=256,
            interactive=not shared,
        )
        seed = gr.Number(-1, label="Seed (-1 = random)", precision=0)
    return model, model_info, more, [system, temperature, top_p, max_tokens, n_ctx, seed]


def _documents_panel():
    with gr.Accordion("Documents", open=False, elem_id="documents"):
        page_mode = gr.Radio(
            list(PAGE_MODES),
            value="auto",
            label="Pages as",
            info="auto: text where a page has text, an image where it is a scan or mostly figures",
            elem_id="page-mode",
        )
        page_modes = gr.Textbox(
            "",
            label="Single pages as",
            placeholder="e.g. 3=image, 5-7=both",
            info="text, image or both for these pages, whatever 'Pages as' says",
            elem_id="page-modes",
        )
        strategy = gr.Radio(
            [(label, key) for key, label in STRATEGIES.items()],
            value="relevant",
            label="When it does not fit the context",
            elem_id="strategy",
        )
        page_range = gr.Textbox("", label="Page range", placeholder="e.g. 1-20, 31", elem_id="page-range")
        password = gr.Textbox("", label="PDF password", type="password", elem_id="pdf-password")
    return page_mode, page_modes, strategy, page_range, password


def _model_info(spec: ModelSpec) -> str:
    vision = "sees images" if spec.vision else "text only"
    status = spec.status if spec.available else f"missing: `{spec.missing()[0]}`"
    if spec.is_remote:  # a hosted provider's limits differ from the model card's
        from models.hosted import limits_line

        return f"**{spec.label}**  \n{vision} · {limits_line(spec)} · {status}"
    return f"**{spec.label}**  \n{vision} · context {spec.n_ctx:,} tokens · {status}"


def licence_footer(spec: ModelSpec) -> str:
    if spec.is_llama:
        return f"Built with Llama · [Llama 4 Community License]({LLAMA_LICENCE_URL})"
    return f"Model licence: {spec.licence or 'see the model card'}"


def _sender(runtime: Runtime):
    def send(
        message: dict,
        turns: list[Turn],
        session: str,
        model_name: str,
        page_mode: str,
        password: str,
        system,
        temperature,
        top_p,
        max_tokens,
        n_ctx,
        seed,
        page_modes: str,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        text, files = message.get("text", "") or "", message.get("files", []) or []
        keep = (gr.MultimodalTextbox(value=message), turns, session, to_chatbot(turns))
        if not text.strip() and not files:
            return *keep, "Type a message or attach an image or a document."
        spec = runtime.spec(model_name)
        images, documents = split_uploads([_file_path(f) for f in files])
        limits = runtime.settings
        try:
            _check_settings(limits, system, password=password or "", page_modes=page_modes or "")
            with runtime.runs.run(run_scope(request, "chat")) as cancel:  # Stop ends the reading too
                turn = read_question(
                    runtime.library,
                    text,
                    images,
                    documents,
                    mode=page_mode or "auto",
                    vision=spec.vision,
                    password=password,
                    max_pages=limits.max_doc_pages,
                    max_pixels=limits.max_image_pixels,
                    max_chars=limits.max_text_chars,
                    label=spec.label,
                    hint=models_tab.vision_hint_now(runtime) if images and not spec.vision else "",
                    budget=RequestBudget.of(limits, spec.at_context(int(n_ctx or 0))),
                    owner=history.user_of(request) or run_scope(request, "chat"),
                    progress=lambda fraction, what: progress(fraction, desc=what),
                    cancel=cancel,
                    show_blob=blob_link(request),
                    page_modes=page_modes or "",
                )
        except UserError as exc:
            gr.Warning(str(exc))
            if len(text) > limits.max_text_chars:
                keep = (gr.MultimodalTextbox(), *keep[1:])  # leave the page's box as is, not echo 50 MB
            return *keep, f"⚠️ {exc}"
        turns = [*turns, turn]  # not stored yet: the chat service stores it once the model takes it
        return gr.MultimodalTextbox(value=None, interactive=False), turns, session, to_chatbot(turns), ""

    return send


def _file_path(file) -> str:
    return file if isinstance(file, str) else file.get("path", "")


def _responder(runtime: Runtime):
    def respond(
        turns,
        session,
        model_name,
        strategy,
        page_range,
        system,
        temperature,
        top_p,
        max_tokens,
        n_ctx,
        seed,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        if not turns or turns[-1].message.role != "user":
            yield turns, session, to_chatbot(turns), ""
            return
        spec = runtime.spec(model_name)
        try:
            _check_settings(runtime.settings, system, page_range=page_range or "")
            context, ignored = _context_size(runtime, spec, n_ctx)
        except UserError as exc:
            yield turns, session, to_chatbot(turns), f"⚠️ {exc}"
            return
        params = spec.sampling_params(
            temperature=temperature,
            top_p=top_p,
            max_tokens=int(max_tokens),
            seed=int(seed) if seed is not None and seed >= 0 else None,
        )
        last = turns[-1]
        ask = TurnRequest(
            model=model_name,
            question=last.message,  # as stored, or with other pages (app/pages_left.py)
            question_id=last.id,
            params=params,
            session_id=session or None,
            parent_id=turns[-2].id if len(turns) > 1 else None,
            system=system or "",
            owner=history.user_of(request),
            strategy=strategy or "relevant",
            page_range=page_range or "",
            n_ctx=context,
            settings=dict(
                zip(SETTING_NAMES, (system, temperature, top_p, max_tokens, n_ctx, seed), strict=True)
            ),
        )
        with runtime.runs.run(run_scope(request, "chat")) as cancel:  # Stop works while waiting too
            report = lambda fraction, what: progress(fraction, desc=what)  # noqa: E731
            events = runtime.service.respond(ask, cancel, report)
            yield from _stream_answer(runtime, events, turns, session, ignored)

    return respond


def _check_settings(limits, system, page_range: str = "", password: str = "", page_modes: str = "") -> None:
    check_text(system or "", limits.max_text_chars, "the system prompt")
    check_field(page_range, limits.max_field_chars, "the page range")
    check_field(page_modes, limits.max_field_chars, "the page modes")
    check_field(password, limits.max_field_chars, "the password")


def _context_size(runtime: Runtime, spec: ModelSpec, requested) -> tuple[int | None, str]:
    """The context to load `spec` with (None: its own) and a notice when the page's
    value is ignored: a shared server's model is everyone's, so only its flags size it;
    a local user may pick any size the model and the memory take."""
    if not requested or int(requested) == spec.n_ctx:
        return None, ""
    if is_shared(runtime.settings):
        return None, f"⚠️ context size {int(requested):,} ignored: this server's is {spec.n_ctx:,} (-c/--ctx)"
    check_context(spec, runtime.settings, int(requested), runtime.models.budget())
    return int(requested), ""


def _stream_answer(runtime: Runtime, events, turns: list[Turn], session: str, notice: str):
    """The turn's events as the page shows them: the place in line, the budget line
    before the first token, how far the prompt is read, the answer as it streams."""
    text, shown_at, answer = "", 0.0, None
    try:
        for event in events:
            if isinstance(event, Waiting):
                yield turns, session, to_chatbot(turns), event.line()
            elif isinstance(event, Prepared):
                last = turns[-1]
                if event.question != last.message:  # the pages chosen for it
                    turns = [*turns[:-1], Turn(event.question, files=last.files, id=last.id)]
                line = " · ".join(filter(None, [notice, event.report.line()]))
                yield turns, session, to_chatbot(turns), line
            elif isinstance(event, PromptProgress):
                # Until the first token the bubble says how far the prompt is read.
                if time.monotonic() - shown_at >= REFRESH_S or event.done == event.total:
                    shown_at = time.monotonic()
                    reading = assistant_turn(reading_line(event), "reading")
                    yield turns, session, to_chatbot([*turns, reading]), ""
            elif isinstance(event, TextDelta):
                text += event.text
                if time.monotonic() - shown_at >= REFRESH_S:
                    shown_at = time.monotonic()
                    yield turns, session, to_chatbot([*turns, assistant_turn(text, "streaming")]), ""
            elif isinstance(event, Answered):
                footer = metrics_footer(event.final, event.report.as_dict())
                answer = assistant_turn(text, answer_status(event.final), footer)
                answer.selection = event.report.selection
                answer.id = event.answer_id
                if event.question is not None:
                    session = event.question.session_id
                    CHAT_UPLOADS.remember(session, turns[-1].files)  # removed with the chat
                    turns = [*turns[:-1], replace(turns[-1], id=event.question.message_id)]
    except (UserError, Fault) as exc:  # refused, or no model: nothing was stored
        turns = _without_pending(turns)
        yield turns, session, to_chatbot(turns), f"⚠️ {exc}"
        return
    if answer is None:  # stopped before the model started: nothing was stored
        turns = _without_pending(turns)
        yield turns, session, to_chatbot(turns), "Stopped before the model started."
        return
    turns = [*turns, answer]
    if answer.id is not None:
        turns = history.mark_branches(runtime, turns)
    yield turns, session, to_chatbot(turns), f"⚠️ {answer.footer}" if answer.status == "error" else ""


def _without_pending(turns: list[Turn]) -> list[Turn]:
    """The chat as stored: a question the model never took is not part of it."""
    return turns[:-1] if turns and turns[-1].id is None and turns[-1].message.role == "user" else turns


def _drop_last_answer(turns: list[Turn]):
    # The stored answer stays: the new one becomes its sibling, reachable with ◀ ▶.
    if turns and turns[-1].message.role == "assistant":
        turns = turns[:-1]
    return turns, to_chatbot(turns)


def _stopper(runtime: Runtime):
    def stop(request: gr.Request) -> str:
        runtime.runs.cancel(run_scope(request, "chat"))
        return ""

    return stop


def _loader(runtime: Runtime):
    def load(model_name: str, progress=gr.Progress()):
        spec = runtime.spec(model_name)
        defaults = spec.sampling_params()
        shown = [_model_info(spec), licence_footer(spec)]
        preferences = [spec.system_prompt, defaults.temperature, defaults.top_p, spec.n_ctx]
        try:  # a model answering someone else stays as it is (the manager waits for it)
            runtime.models.activate(spec, lambda fraction, what: progress(fraction, desc=what))
        except (UserError, Fault) as exc:
            return *shown, f"⚠️ {exc}", *preferences
        return *shown, "", *preferences

    return load
