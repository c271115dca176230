"""The Gradio page. Wiring only: state lives in app.chat, models in engine."""

from __future__ import annotations

import time

import gradio as gr

from app.chat import Turn, assistant_turn, engine_messages, metrics_footer, to_chatbot, user_turn
from app.runtime import Runtime
from engine.protocol import check_messages
from engine.registry import LLAMA_LICENCE_URL, VISION_HINT, ModelSpec
from engine.types import EngineInputError, EngineLoadError, Final, TextDelta

ENGINE_QUEUE = "engine"  # one model, one generation at a time; others wait in line
REFRESH_S = 0.05  # stream to the browser at most 20 times a second


def build_app(runtime: Runtime) -> gr.Blocks:
    with gr.Blocks(title="Llama 4 Playground") as demo:
        turns = gr.State([])
        gr.Markdown("## Llama 4 Playground", elem_id="title")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                model, model_info, settings = _sidebar(runtime)
            with gr.Column(scale=3):
                notice = gr.Markdown("", elem_id="notice")
                chatbot = gr.Chatbot(elem_id="chat", height=560, buttons=["copy"], label="Chat")
                box = gr.MultimodalTextbox(
                    file_count="multiple",
                    file_types=["image"],
                    placeholder="Ask about text or images. Drop several images; write <image> to place one.",
                    show_label=False,
                    elem_id="input",
                )
                with gr.Row():
                    stop = gr.Button("Stop", variant="stop", elem_id="stop")
                    regenerate = gr.Button("Regenerate", elem_id="regenerate")
                    clear = gr.Button("New chat", elem_id="clear")
        footer = gr.Markdown(_licence_footer(runtime.spec(runtime.default_model)), elem_id="footer")

        gen_inputs = [turns, model, *settings]
        system, temperature, top_p, _, n_ctx, _ = settings
        model_defaults = [system, temperature, top_p, n_ctx]  # follow the chosen model's preferences
        chatbot.clear(lambda: ([], ""), None, [turns, notice], api_visibility="private")
        respond = _responder(runtime)
        sent = box.submit(
            _sender(runtime), [box, turns, model], [box, turns, chatbot, notice], api_name="send"
        )
        sent.then(
            respond,
            gen_inputs,
            [turns, chatbot, notice],
            api_name="respond",
            concurrency_id=ENGINE_QUEUE,
            concurrency_limit=1,
        ).then(lambda: gr.MultimodalTextbox(interactive=True), None, box, api_visibility="private")
        regenerate.click(_drop_last_answer, turns, [turns, chatbot], api_name="drop_last_answer").then(
            respond,
            gen_inputs,
            [turns, chatbot, notice],
            concurrency_id=ENGINE_QUEUE,
            concurrency_limit=1,
            api_visibility="private",
        )
        stop.click(_stopper(runtime), None, notice, queue=False, api_name="stop")
        clear.click(lambda: ([], [], ""), None, [turns, chatbot, notice], api_name="clear")
        model.change(
            _loader(runtime),
            model,
            [model_info, footer, notice, *model_defaults],
            api_name="load_model",
            concurrency_id=ENGINE_QUEUE,
            concurrency_limit=1,
        )
    return demo


def _sidebar(runtime: Runtime):
    spec = runtime.spec(runtime.default_model)
    choices = [
        (s.label + ("" if s.available else " — missing"), s.name) for s in runtime.registry.specs.values()
    ]
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


def _model_info(spec: ModelSpec) -> str:
    vision = "sees images" if spec.vision else "text only"
    status = "on disk" if spec.available else f"missing: `{spec.missing_files()[0]}`"
    return f"**{spec.label}**  \n{vision} · context {spec.n_ctx:,} tokens · {status}"


def _licence_footer(spec: ModelSpec) -> str:
    if spec.is_llama:
        return f"Built with Llama · [Llama 4 Community License]({LLAMA_LICENCE_URL})"
    return f"Model licence: {spec.licence or 'see the model card'}"


def _sender(runtime: Runtime):
    def send(message: dict, turns: list[Turn], model_name: str):
        text, files = message.get("text", "") or "", message.get("files", []) or []
        if not text.strip() and not files:
            return gr.MultimodalTextbox(), turns, to_chatbot(turns), "Type a message or attach an image."
        spec = runtime.spec(model_name)
        try:
            turn = user_turn(text, [_file_path(f) for f in files], runtime.settings.max_image_pixels)
            if turn.message.images and not spec.vision:
                raise EngineInputError(f"{spec.label} cannot see images; {VISION_HINT}")
        except EngineInputError as exc:
            gr.Warning(str(exc))
            return gr.MultimodalTextbox(value=message), turns, to_chatbot(turns), f"⚠️ {exc}"
        turns = [*turns, turn]
        return gr.MultimodalTextbox(value=None, interactive=False), turns, to_chatbot(turns), ""

    return send


def _file_path(file) -> str:
    return file if isinstance(file, str) else file.get("path", "")


def _responder(runtime: Runtime):
    def respond(
        turns,
        model_name,
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
            engine = runtime.models.activate_name(
                model_name,
                int(n_ctx) if n_ctx else None,
                progress=lambda fraction, what: progress(fraction, desc=what),
            )
            messages = engine_messages(turns, system or "")
            check_messages(engine, messages)
        except (EngineInputError, EngineLoadError) as exc:
            yield turns, to_chatbot(turns), f"⚠️ {exc}"
            return
        spec = runtime.spec(model_name)
        params = spec.sampling_params(
            temperature=temperature,
            top_p=top_p,
            max_tokens=int(max_tokens),
            seed=int(seed) if seed is not None and seed >= 0 else None,
        )
        cancel = runtime.new_cancel(request.session_hash or "cli")
        yield from _stream_answer(engine, messages, params, cancel, turns)

    return respond


def _stream_answer(engine, messages, params, cancel, turns):
    text, shown_at = "", 0.0
    answer = assistant_turn("", "streaming")
    try:
        for event in engine.stream(messages, params, cancel):
            if isinstance(event, TextDelta):
                text += event.text
                if time.monotonic() - shown_at >= REFRESH_S:
                    shown_at = time.monotonic()
                    answer = assistant_turn(text, "streaming")
                    yield turns, to_chatbot([*turns, answer]), ""
            elif isinstance(event, Final):
                answer = _finished(text, event)
    except EngineInputError as exc:
        yield turns[:-1], to_chatbot(turns[:-1]), f"⚠️ {exc}"
        return
    turns = [*turns, answer]
    yield turns, to_chatbot(turns), f"⚠️ {answer.footer}" if answer.status == "error" else ""


def _finished(text: str, final: Final) -> Turn:
    footer = metrics_footer(final)
    if final.error:
        footer = f"error: {final.error} · {footer}"
    status = {"stop": "complete", "length": "complete"}.get(final.finish_reason, final.finish_reason)
    return assistant_turn(text, status, footer)


def _drop_last_answer(turns: list[Turn]):
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
