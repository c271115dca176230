"""Under an answer whose documents went in part ("report.pdf: sent 24 of 137 pages …"):
one click to ask the same question again with the pages left out or a range typed in
("Send these pages"), or with every page, dropping older turns instead ("Send all
pages"). The question keeps its place; the new answer becomes a sibling of the old."""

from __future__ import annotations

from dataclasses import dataclass, replace

import gradio as gr

from app.queues import ENGINE_RUN
from app.render import to_chatbot
from chat.runtime import Runtime
from chat.turns import Turn
from documents.context import page_ranges, parse_page_range, widened
from documents.page_modes import parse_page_modes
from engine.limits import check_field
from errors import UserError


@dataclass
class PagesLeft:
    row: gr.Row
    pages: gr.Textbox
    send_range: gr.Button
    send_all: gr.Button
    strategy: gr.State  # what the click asks for: "range" or "drop_oldest"
    page_range: gr.State


def build() -> PagesLeft:
    with gr.Row(visible=False, elem_id="pages-left") as row:
        pages = gr.Textbox(
            "",
            label="Ask again with other pages",
            info="the pages left out, or any range like 1-20, 31; older turns make room when needed",
            elem_id="pages-left-range",
            scale=3,
        )
        send_range = gr.Button("Send these pages", size="sm", elem_id="send-pages", scale=1)
        send_all = gr.Button(
            "Send all pages (drop older turns)", size="sm", elem_id="send-all-pages", scale=1
        )
    return PagesLeft(row, pages, send_range, send_all, gr.State("relevant"), gr.State(""))


def left_out(selection: list[dict]) -> str:
    """The pages of the first document that went in part and were not sent: "4–39, 59–137"."""
    for entry in selection:
        missing = set(range(1, int(entry.get("total", 0)) + 1)) - set(entry.get("pages", []))
        if missing:
            return page_ranges(missing)
    return ""


def shown(turns: list[Turn]) -> tuple:
    """The row's visibility and its range, for the last answer (hidden when every page went)."""
    last = turns[-1] if turns else None
    missing = left_out(last.selection) if last and last.message.role == "assistant" else ""
    return gr.Row(visible=bool(missing)), gr.Textbox(value=missing)


def hidden() -> tuple:
    return gr.Row(visible=False), gr.Textbox()


def wire(
    parts: PagesLeft, runtime: Runtime, respond, turns, session, chatbot, notice, model, settings, modes
):
    """Each button asks the last question again, its pages chosen as the Documents
    panel's `modes` (Pages as, Single pages as) say, then the answer streams as
    Regenerate's does; returns the events that end each click (for the controls)."""
    private = {"api_visibility": "private"}
    ends = []
    for button, strategy in ((parts.send_range, "range"), (parts.send_all, "drop_oldest")):
        asked = button.click(
            asker(runtime, strategy),
            [turns, model, parts.pages, *modes],
            [turns, chatbot, notice, parts.strategy, parts.page_range],
            api_name="send_pages" if strategy == "range" else "send_all_pages",
        )
        ends.append(
            asked.success(
                respond,
                [turns, session, model, parts.strategy, parts.page_range, *settings],
                [turns, session, chatbot, notice],
                **private,
                **ENGINE_RUN,
            )
        )
    return ends


def asker(runtime: Runtime, strategy: str):
    """The click: the last question with every page of its documents again, its answer
    set aside (it stays stored, a sibling), and the strategy and range to fit it with."""

    def ask_again(turns: list[Turn], model_name: str, pages: str, page_mode: str, page_modes: str):
        try:
            if strategy == "range":
                parse_page_range(pages or "")
            check_field(page_modes or "", runtime.settings.max_field_chars, "the page modes")
            overrides = parse_page_modes(page_modes) if (page_modes or "").strip() else None
            if len(turns) < 2 or turns[-1].message.role != "assistant":
                raise UserError("there is no answer to ask again")
            question = turns[-2]
            vision = runtime.spec(model_name).vision
            message = widened(question.message, runtime.library, vision, page_mode or "auto", overrides)
        except UserError as exc:  # one line; the answer is not asked for (`.success`)
            raise gr.Error(str(exc)) from None
        turns = [*turns[:-2], replace(question, message=message)]
        return turns, to_chatbot(turns), "", strategy, pages if strategy == "range" else ""

    return ask_again
