"""The page: the Chat, Compare and Models tabs, each built by its own module, and the licence
line under them."""

from __future__ import annotations

import gradio as gr

from app import chat_tab, compare_tab, models_tab
from chat.runtime import Runtime


def build_app(runtime: Runtime) -> gr.Blocks:
    with gr.Blocks(title="Llama 4 Playground") as demo:
        gr.Markdown("## Llama 4 Playground", elem_id="title")
        footer = gr.Markdown(
            chat_tab.licence_footer(runtime.spec(runtime.default_model)), elem_id="footer", render=False
        )
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Chat", id="chat"):
                model, chat_more = chat_tab.build_tab(runtime, demo, footer)
            with gr.Tab("Compare", id="compare"):
                compare_pickers = compare_tab.build_tab(runtime)
            with gr.Tab("Models", id="models"):
                models_tab.build_tab(runtime, pickers=[model], others=[chat_more, *compare_pickers])
        footer.render()
    return demo
