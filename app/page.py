"""The page: the Chat, Compare and Models tabs, each built by its own module, and the licence
line under them. Until a Llama 4 runs, a line under the title says which model does (the
embedded SmolLM2-135M, text only) and how to get Llama 4 here (models/guide.py); each
page load asks the remote models' servers again (cached) so the pickers offer what
answers now."""

from __future__ import annotations

import gradio as gr

from app import chat_tab, compare_tab, models_tab
from chat.runtime import Runtime


def build_app(runtime: Runtime) -> gr.Blocks:
    running = runtime.spec(runtime.default_model)
    first_run = first_run_text(runtime, running.name)
    title = "Llama 4 Playground" if not first_run else f"Playground: {_short(running.label)}, not Llama 4"
    with gr.Blocks(title=title) as demo:
        gr.Markdown("## Llama 4 Playground" if running.is_llama else "## Playground", elem_id="title")
        banner = gr.Markdown(first_run, visible=bool(first_run), elem_id="first-run")
        footer = gr.Markdown(chat_tab.licence_footer(running), elem_id="footer", render=False)
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Chat", id="chat"):
                model, chat_more = chat_tab.build_tab(runtime, demo, footer)
            with gr.Tab("Compare", id="compare"):
                compare_pickers = compare_tab.build_tab(runtime)
            with gr.Tab("Models", id="models"):
                models_tab.build_tab(runtime, pickers=[model], others=[chat_more, *compare_pickers])
        footer.render()
        model.change(lambda name: _banner(runtime, name), model, banner, api_visibility="private")
        pickers = [model, chat_more, *compare_pickers]
        demo.load(
            lambda: models_tab.picker_updates(runtime, pickers),
            None,
            pickers,
            api_visibility="private",
            show_progress="hidden",  # the pickers stay usable while servers are asked
        )
    return demo


def first_run_text(runtime: Runtime, name: str) -> str:
    """The two first-run lines for the page ("" once a Llama 4 is chosen)."""
    from models.guide import next_step

    try:
        spec = runtime.spec(name)
    except ValueError:  # a stale page naming a model deleted since
        return ""
    step = next_step(list(runtime.registry.specs.values()), spec, runtime.settings)
    return "  \n".join(step.lines(page=True)) if step else ""


def _banner(runtime: Runtime, name: str):
    text = first_run_text(runtime, name)
    return gr.Markdown(text, visible=bool(text))


def _short(label: str) -> str:
    return label.split(" (")[0]
