"""The Gradio page. Wiring only: chat state lives in app.chat, saved chats in
sessions/, models in engine/."""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass

import gradio as gr

from app import compare, documents, history, models_tab
from app.chat import (
    SETTING_NAMES,
    Turn,
    assistant_turn,
    engine_messages,
    metrics_footer,
    to_chatbot,
)
from app.runtime import Runtime
from engine.context import PAGE_MODES, STRATEGIES, expand_documents, fit_context
from engine.documents import DOCUMENT_EXTENSIONS
from engine.limits import check_text
from engine.protocol import check_messages
from engine.registry import LLAMA_LICENCE_URL, VISION_HINT, ModelSpec
from engine.types import EngineInputError, EngineLoadError, Final, TextDelta

ENGINE_QUEUE = "engine"  # one model, one generation at a time; others wait in line
REFRESH_S = 0.05  # stream to the browser at most 20 times a second
PLACEHOLDER = "Ask about text, images or documents (PDF, EPUB, ...). Write <image> to place an image."
FINISHED_STATUS = {"stop": "complete", "length": "complete"}


def build_app(runtime: Runtime) -> gr.Blocks:
    with gr.Blocks(title="Llama 4 Playground") as demo:
        turns, session = gr.State([]), gr.State("")
        gr.Markdown("## Llama 4 Playground", elem_id="title")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Chat", id="chat"), gr.Row():
                with gr.Column(scale=1, min_width=260):
                    panel = history.build_panel()
                with gr.Column(scale=3):
                    notice = gr.Markdown("", elem_id="notice")
                    chatbot = gr.Chatbot(
                        elem_id="chat", height=560, buttons=["copy"], label="Chat", editable="user"
                    )
                    box = gr.MultimodalTextbox(
                        file_count="multiple",
                        file_types=["image", *DOCUMENT_EXTENSIONS],
                        placeholder=PLACEHOLDER,
                        show_label=False,
                        elem_id="input",
                    )
                    with gr.Row():
                        stop = gr.Button("Stop", variant="stop", elem_id="stop")
                        regenerate = gr.Button("Regenerate", elem_id="regenerate")
                        # Move between answers that Regenerate and edits leave side by side.
                        previous = gr.Button("◀", elem_id="previous-answer", scale=0, min_width=56)
                        following = gr.Button("▶", elem_id="next-answer", scale=0, min_width=56)
                with gr.Column(scale=1, min_width=260):
                    model, model_info, settings = _settings_panel(runtime)
                    page_mode, strategy, page_range, password = _documents_panel()
                    viewer = _page_viewer()
            # Other tabs (compare, ...) plug in here, each built by its own module.
            with gr.Tab("Compare", id="compare"):
                compare.build_tab(runtime)
            with gr.Tab("Models", id="models"):
                models_tab.build_tab(runtime, pickers=[model])
        footer = gr.Markdown(_licence_footer(runtime.spec(runtime.default_model)), elem_id="footer")

        chat_outputs = [turns, chatbot, notice]
        run = {"concurrency_id": ENGINE_QUEUE, "concurrency_limit": 1}
        respond = _responder(runtime)
        gen_inputs = [turns, session, model, strategy, page_range, *settings]

        sent = box.submit(
            _sender(runtime),
            [box, turns, session, model, page_mode, password, *settings],
            [box, turns, session, chatbot, notice],
            api_name="send",
        )
        sent.then(respond, gen_inputs, chat_outputs, api_name="respond", **run).then(
            lambda: gr.MultimodalTextbox(interactive=True), None, box, api_visibility="private"
        ).then(history.refresher(runtime), [session], panel.chats, api_visibility="private")
        regenerate.click(_drop_last_answer, turns, [turns, chatbot], api_name="drop_last_answer").then(
            respond, gen_inputs, chat_outputs, api_visibility="private", **run
        )
        chatbot.edit(
            history.editor(runtime), [turns, session], [turns, chatbot, notice], api_visibility="private"
        ).then(respond, gen_inputs, chat_outputs, api_visibility="private", **run)
        for button, step in ((previous, -1), (following, 1)):
            button.click(
                history.branch_mover(runtime, step),
                [turns, session],
                [turns, chatbot, notice],
                api_name="next_answer" if step > 0 else "previous_answer",
            )
        stop.click(_stopper(runtime), None, notice, queue=False, api_name="stop")
        chatbot.clear(lambda: ([], "", ""), None, [turns, session, notice], api_visibility="private")
        system, temperature, top_p, _, n_ctx, _ = settings
        model.change(
            _loader(runtime),
            model,
            [model_info, footer, notice, system, temperature, top_p, n_ctx],
            api_name="load_model",
            **run,
        )
        history.wire(panel, runtime, demo, turns, session, chatbot, notice, model, settings)
        viewer.target.change(_page_opener(runtime), [viewer.target, turns], viewer.outputs, queue=False)
    return demo


def _settings_panel(runtime: Runtime):
    spec = runtime.spec(runtime.default_model)
    choices = models_tab.picker_choices(list(runtime.registry.specs.values()))
    model = gr.Dropdown(choices, value=spec.name, label="Model", elem_id="model")
    model_info = gr.Markdown(_model_info(spec), elem_id="model-info")
    with gr.Accordion("Settings", open=True):
        defaults = spec.sampling_params()
        system = gr.Textbox(spec.system_prompt, label="System prompt", lines=3)
        temperature = gr.Slider(0, 2, value=defaults.temperature, step=0.05, label="Temperature")
        top_p = gr.Slider(0.05, 1, value=defaults.top_p, step=0.01, label="top_p")
        max_tokens = gr.Slider(16, 8192, value=defaults.max_tokens, step=16, label="Max new tokens")
        n_ctx = gr.Number(spec.n_ctx, label="Context size (tokens)", precision=0, minimum=256)
        seed = gr.Number(-1, label="Seed (-1 = random)", precision=0)
    return model, model_info, [system, temperature, top_p, max_tokens, n_ctx, seed]


def _documents_panel():
    with gr.Accordion("Documents", open=False, elem_id="documents"):
        page_mode = gr.Radio(
            list(PAGE_MODES),
            value="auto",
            label="Pages as",
            info="auto: text where a page has text, an image where it is a scan or mostly figures",
            elem_id="page-mode",
        )
        strategy = gr.Radio(
            [(label, key) for key, label in STRATEGIES.items()],
            value="relevant",
            label="When it does not fit the context",
            elem_id="strategy",
        )
        page_range = gr.Textbox("", label="Page range", placeholder="e.g. 1-20, 31", elem_id="page-range")
        password = gr.Textbox("", label="PDF password", type="password", elem_id="pdf-password")
    return page_mode, strategy, page_range, password


@dataclass
class _PageViewer:
    target: gr.Textbox
    outputs: list


def _page_viewer() -> _PageViewer:
    with gr.Accordion("Page", open=False, elem_id="page-viewer") as box:
        text = gr.Markdown("Click a page citation like [p. 3] in an answer to see that page.")
        image = gr.Image(
            label="Page image", type="pil", height=360, buttons=["fullscreen"], elem_id="page-image"
        )
    # Set by assets/citations.js when a citation link is clicked.
    target = gr.Textbox(visible="hidden", elem_id="cite-target")
    return _PageViewer(target, [box, text, image])


def _page_opener(runtime: Runtime):
    def open_page(target: str, turns: list[Turn]):
        if not target:  # the page clears the box before each click; nothing to show
            return gr.skip(), gr.skip(), gr.skip()
        docs = [d for t in turns for d in t.message.documents]
        try:
            markdown, image = documents.page_view(runtime.library, docs, target or "")
        except EngineInputError as exc:
            markdown, image = f"⚠️ {exc}", None
        picture = _to_pil(image) if image is not None else None
        return gr.Accordion(open=True), markdown, picture

    return open_page


def _to_pil(image):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(image.data))


def _model_info(spec: ModelSpec) -> str:
    vision = "sees images" if spec.vision else "text only"
    status = spec.status if spec.available else f"missing: `{spec.missing()[0]}`"
    return f"**{spec.label}**  \n{vision} · context {spec.n_ctx:,} tokens · {status}"


def _licence_footer(spec: ModelSpec) -> str:
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
        request: gr.Request,
        progress=gr.Progress(),
    ):
        settings = (system, temperature, top_p, max_tokens, n_ctx, seed)
        text, files = message.get("text", "") or "", message.get("files", []) or []
        keep = (gr.MultimodalTextbox(value=message), turns, session, to_chatbot(turns))
        if not text.strip() and not files:
            return *keep, "Type a message or attach an image or a document."
        spec = runtime.spec(model_name)
        paths = [_file_path(f) for f in files]
        owner = history.user_of(request)
        try:
            check_text(text, runtime.settings.max_text_chars)
            turn = documents.question_turn(
                runtime.library,
                text,
                paths,
                mode=page_mode or "auto",
                vision=spec.vision,
                password=password,
                max_pages=runtime.settings.max_doc_pages,
                max_pixels=runtime.settings.max_image_pixels,
                progress=lambda fraction, what: progress(fraction, desc=what),
                cancel=runtime.new_cancel(request.session_hash or ""),
            )
            if turn.message.images and not spec.vision:
                raise EngineInputError(f"{spec.label} cannot see images; {VISION_HINT}")
            if session:
                runtime.store.owned_session(session, owner)
            session = session or runtime.store.create_session(model=model_name, owner=owner)
            runtime.store.update_session(
                session, model=model_name, settings=dict(zip(SETTING_NAMES, settings, strict=True))
            )
            # Write-ahead: the question is on disk before the model sees it.
            turn.id = runtime.store.add_user_message(session, turns[-1].id if turns else None, turn.message)
        except EngineInputError as exc:
            gr.Warning(str(exc))
            if len(text) > runtime.settings.max_text_chars:
                keep = (gr.MultimodalTextbox(), *keep[1:])  # leave the page's box as is, not echo 50 MB
            return *keep, f"⚠️ {exc}"
        turns = [*turns, turn]
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
            yield turns, to_chatbot(turns), ""
            return
        try:
            if session:
                history.owned(runtime, session, request)
            engine = runtime.models.activate_name(
                model_name,
                int(n_ctx) if n_ctx else None,
                progress=lambda fraction, what: progress(fraction, desc=what),
            )
            turns, messages, report = _fit(runtime, engine, turns, system, strategy, page_range, max_tokens)
            check_messages(engine, messages)
        except EngineLoadError as exc:
            yield _failed_answer(runtime, session, turns, model_name, str(exc))
            return
        except EngineInputError as exc:
            yield turns, to_chatbot(turns), f"⚠️ {exc}"
            return
        # The budget shows before the first token: what goes in, and what was left out.
        yield turns, to_chatbot(turns), report.line()
        params = runtime.spec(model_name).sampling_params(
            temperature=temperature,
            top_p=top_p,
            max_tokens=int(max_tokens),
            seed=int(seed) if seed is not None and seed >= 0 else None,
        )
        cancel = runtime.new_cancel(request.session_hash or "")
        parent = turns[-1].id

        def start_writer():
            return runtime.store.start_answer(session, parent, engine.name, params, report.as_dict())

        yield from _stream_answer(
            runtime,
            engine,
            messages,
            params,
            cancel,
            turns,
            start_writer if session else None,
            report,
            session,
        )

    return respond


def _fit(runtime: Runtime, engine, turns: list[Turn], system, strategy, page_range, max_tokens):
    """Fit the conversation into the loaded context. The last question keeps the pages
    chosen for it (stored, so later turns send the same pages); returns the messages
    with documents expanded into pages."""
    fitted, report = fit_context(
        engine,
        engine_messages(turns, system or ""),
        runtime.library,
        strategy or "relevant",
        page_range or "",
        int(max_tokens),
    )
    last = turns[-1]
    if fitted[-1].documents and fitted[-1] != last.message:
        last = Turn(fitted[-1], files=last.files, id=last.id)
        if last.id is not None:
            runtime.store.update_user_parts(last.id, last.message)
        turns = [*turns[:-1], last]
    return turns, expand_documents(fitted, runtime.library), report


def _stream_answer(runtime, engine, messages, params, cancel, turns, start_writer, report, session=""):
    # The session id names the chat's KV state: its next turn evaluates only new tokens.
    events = engine.stream(messages, params, cancel, session_key=session or None)
    try:
        first = next(events)  # input the model refuses raises here, before anything is stored
    except EngineInputError as exc:
        yield turns, to_chatbot(turns), f"⚠️ {exc}"
        return
    text, shown_at = "", 0.0
    answer = assistant_turn("", "streaming")
    writer = start_writer() if start_writer else None
    # Leaving early (page closed, Stop) records the stored answer as cancelled, not streaming.
    with writer or contextlib.nullcontext():
        for event in itertools.chain([first], events):
            if isinstance(event, TextDelta):
                text += event.text
                if writer:
                    writer.append(event.text)
                if time.monotonic() - shown_at >= REFRESH_S:
                    shown_at = time.monotonic()
                    yield turns, to_chatbot([*turns, assistant_turn(text, "streaming")]), ""
            elif isinstance(event, Final):
                status = FINISHED_STATUS.get(event.finish_reason, event.finish_reason)
                answer = assistant_turn(text, status, metrics_footer(event, report.as_dict()))
                if writer:
                    writer.finish(event)
                    answer.id = writer.id
    turns = [*turns, answer]
    if answer.id is not None:
        turns = history.mark_branches(runtime, turns)
    yield turns, to_chatbot(turns), f"⚠️ {answer.footer}" if answer.status == "error" else ""


def _failed_answer(runtime: Runtime, session: str, turns: list[Turn], model_name: str, error: str):
    """A model that cannot load (its file deleted, say) still ends the turn: the chat
    and the store both record an answer with status 'error' saying why."""
    answer = assistant_turn("", "error", f"error: {error}")
    if session:
        with runtime.store.start_answer(session, turns[-1].id, model_name) as writer:
            writer.finish(Final("error", error=error))
        answer.id = writer.id
    turns = [*turns, answer]
    return turns, to_chatbot(turns), f"⚠️ {error}"


def _drop_last_answer(turns: list[Turn]):
    # The stored answer stays: the new one becomes its sibling, reachable with ◀ ▶.
    if turns and turns[-1].message.role == "assistant":
        turns = turns[:-1]
    return turns, to_chatbot(turns)


def _stopper(runtime: Runtime):
    def stop(request: gr.Request) -> str:
        runtime.cancel(request.session_hash or "")
        return ""

    return stop


def _loader(runtime: Runtime):
    def load(model_name: str, progress=gr.Progress()):
        spec = runtime.spec(model_name)
        defaults = spec.sampling_params()
        shown = [_model_info(spec), _licence_footer(spec)]
        preferences = [spec.system_prompt, defaults.temperature, defaults.top_p, spec.n_ctx]
        try:
            runtime.models.activate(spec, lambda fraction, what: progress(fraction, desc=what))
        except (EngineInputError, EngineLoadError) as exc:
            return *shown, f"⚠️ {exc}", *preferences
        return *shown, "", *preferences

    return load
