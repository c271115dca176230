"""The Compare tab: one prompt to 2-4 models, answers streamed side by side with
their speed figures, a bar plot after the run, blind voting and a leaderboard.
Wiring only: a comparison's state and turns live in chat.comparison, ratings in
app.leaderboard, storage in sessions/.

Blind mode hides names, shuffles the columns and keeps the speed figures back (they
would give the models away) until the vote. With two models the vote is "A better /
B better / Tie / Both bad"; with three or four it is "X is best / Tie / All bad",
which the leaderboard counts as the best one beating each other one."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from app import history, leaderboard, measure_panel, models_tab
from app.blob_route import blob_link
from app.queues import ENGINE_RUN, run_scope
from app.render import to_chatbot
from chat.comparison import LETTERS, MAX_MODELS, Comparison, metrics_line, new_comparison, run_turn
from chat.conversation import Waiting
from chat.metrics import TOKEN_NOTE
from chat.question import read_question, split_uploads
from chat.ratings import MIN_VOTES
from chat.runtime import Runtime
from chat.turns import assistant_turn
from documents.reader import DOCUMENT_EXTENSIONS
from engine.budget import RequestBudget
from engine.limits import check_text
from engine.spec import GB, VISION_HINT
from engine.types import EngineInputError
from errors import Fault, UserError
from models.memory import model_cost

REFRESH_S = 0.1  # four columns: at most ten page updates a second
PLACEHOLDER = "One prompt for every model. Drop images to send them to all."
TIE, BAD_TWO, BAD_MANY = "Tie", "Both bad", "All bad"


@dataclass
class View:
    """The components a comparison is drawn into."""

    notice: gr.Markdown
    columns: list[gr.Column]
    titles: list[gr.Markdown]
    chats: list[gr.Chatbot]
    metrics: list[gr.Markdown]
    votes: gr.Row
    vote_buttons: list[gr.Button]  # one per column, then Tie, then Both/All bad
    ttft_plot: gr.BarPlot
    speed_plot: gr.BarPlot
    models: gr.CheckboxGroup | None = None  # set with the settings panel
    blind: gr.Checkbox | None = None
    more: gr.Markdown | None = None  # the models not here yet, folded under the picker

    @property
    def outputs(self) -> list:
        return [
            self.notice,
            *self.columns,
            *self.titles,
            *self.chats,
            *self.metrics,
            self.votes,
            *self.vote_buttons,
            self.ttft_plot,
            self.speed_plot,
            self.models,
            self.blind,
        ]


def build_tab(runtime: Runtime) -> list:
    """The tab's content; call inside `with gr.Tab(...)`. Returns the model picker and
    its "get more" fold, for the Models tab to refresh."""

    state = gr.State(None)
    with gr.Row():
        with gr.Column(scale=4):
            view, box, stop = _main_area()
        with gr.Column(scale=1, min_width=240):
            new, max_tokens = _settings(runtime, view)
    with gr.Accordion("Leaderboard", open=False, elem_id="leaderboard-panel"):
        whose = "everyone's votes" if runtime.settings.global_leaderboard else "your votes"
        board = gr.Dataframe(
            value=_board_of(runtime),
            headers=leaderboard.COLUMNS,
            interactive=False,
            elem_id="leaderboard",
            label=(
                f"From {whose}, best Bradley–Terry rating first, with its 95% interval over resampled "
                f"votes (ties count half); fewer than {MIN_VOTES} votes: too few to rank; "
                "speeds are means over compared answers"
            ),
        )
        refresh = gr.Button("Refresh", size="sm", elem_id="leaderboard-refresh")
    measure_panel.build_panel(runtime, view.models)
    # Stop shows only while the models answer.
    box.submit(lambda: gr.Button(visible=True), None, stop, queue=False, api_visibility="private")
    box.submit(
        _runner(runtime),
        [box, state, view.models, view.blind, max_tokens],
        [state, box, *view.outputs],
        api_name="compare",
        **ENGINE_RUN,
    ).then(
        lambda: (gr.MultimodalTextbox(interactive=True), gr.Button(visible=False)),
        None,
        [box, stop],
        api_visibility="private",
    )
    for index, button in enumerate(view.vote_buttons):
        button.click(
            _voter(runtime),
            [state, button],
            [state, *view.outputs, board],
            **({"api_name": "vote"} if index == 0 else {"api_visibility": "private"}),
        )
    new.click(lambda: (None, *_draw(None)), None, [state, *view.outputs], api_name="new_comparison")
    stop.click(_stopper(runtime), None, None, queue=False, api_name="stop_comparison")
    refresh.click(_board_of(runtime), None, board, api_name="leaderboard")
    view.models.input(lambda names: plan_text(runtime, names), view.models, view.notice, queue=False)
    return [view.models, view.more]


def _main_area() -> tuple[View, gr.MultimodalTextbox, gr.Button]:
    notice = gr.Markdown("", elem_id="compare-notice")
    columns, titles, chats, metrics = [], [], [], []
    with gr.Row(equal_height=True, elem_id="compare-columns"):
        for index in range(MAX_MODELS):
            with gr.Column(visible=index < 2, min_width=220, elem_classes="compare-column") as column:
                titles.append(gr.Markdown(f"**Model {LETTERS[index]}**", elem_id=f"compare-title-{index}"))
                chats.append(
                    gr.Chatbot(
                        height=440, show_label=False, buttons=["copy"], elem_id=f"compare-chat-{index}"
                    )
                )
                metrics.append(
                    gr.Markdown("", elem_id=f"compare-metrics-{index}", elem_classes="compare-metrics")
                )
            columns.append(column)
    box = gr.MultimodalTextbox(
        file_count="multiple",
        file_types=["image", *DOCUMENT_EXTENSIONS],
        placeholder=PLACEHOLDER,
        show_label=False,
        elem_id="compare-input",
    )
    with gr.Row(visible=False, elem_id="compare-votes") as votes:
        labels = _vote_labels(2)
        buttons = [
            gr.Button(label, visible=i != 2 and i != 3, elem_id=f"vote-{i}") for i, label in enumerate(labels)
        ]
    stop = gr.Button("■ Stop", variant="stop", size="sm", visible=False, elem_id="compare-stop")
    with gr.Row():
        ttft_plot = gr.BarPlot(
            x="model", y="seconds", title="Time to first token", visible=False, elem_id="ttft-plot",
            x_title="model", y_title="seconds until the first token",
        )  # fmt: skip
        speed_plot = gr.BarPlot(
            x="model", y="tokens/s", title="Answer speed", visible=False, elem_id="speed-plot",
            x_title="model", y_title=f"tokens per second ({TOKEN_NOTE})",
        )  # fmt: skip
    return View(notice, columns, titles, chats, metrics, votes, buttons, ttft_plot, speed_plot), box, stop


def _settings(runtime: Runtime, view: View) -> tuple[gr.Button, gr.Slider]:
    specs = list(runtime.registry.specs.values())
    available = [s.name for s in specs if s.available and not s.is_remote]  # a server may be down
    preselected = list(dict.fromkeys([runtime.default_model, *available]))[:2]
    checks = models_tab.page_checks(specs, runtime.settings.check_servers)
    view.models = gr.CheckboxGroup(
        models_tab.ready_choices(specs, checks),
        value=preselected,
        label="Models (2–4)",
        elem_id="compare-models",
    )
    with gr.Accordion("Get more models", open=False, elem_id="compare-get-more"):
        view.more = gr.Markdown(models_tab.get_more(specs, checks), elem_classes="get-more")
    view.blind = gr.Checkbox(
        False, label="Blind: hide names and shuffle until I vote", elem_id="compare-blind"
    )
    max_tokens = gr.Slider(16, 4096, value=512, step=16, label="Max new tokens (each model)")
    gr.Markdown("Each model answers with its own sampling defaults and system prompt.")
    new = gr.Button("New comparison", elem_id="compare-new")
    return new, max_tokens


def _question(runtime: Runtime, text: str, paths: list[str], request, progress, cancel):
    """The prompt with its images and documents; each model gets the pages it can take
    (text or page images) fitted to its own context when it answers."""
    images, documents = split_uploads(paths)
    limits = runtime.settings
    return read_question(
        runtime.library,
        text,
        images,
        documents,
        mode="auto",
        vision=True,  # which pages need vision; each model is then given what it can see
        password=None,
        max_pages=limits.max_doc_pages,
        max_pixels=limits.max_image_pixels,
        max_chars=limits.max_text_chars,
        budget=RequestBudget.of(limits),
        owner=history.user_of(request) or run_scope(request, "compare"),
        progress=lambda fraction, what: progress(fraction, desc=what),
        cancel=cancel,
        show_blob=blob_link(request),
    )


def _runner(runtime: Runtime):
    def compare(message: dict, state, names, blind, max_tokens, request: gr.Request, progress=gr.Progress()):
        scope, models = run_scope(request, "compare"), list(names or ())  # a seat in every lane it uses
        with runtime.runs.run(scope) as cancel, runtime.service.seated(models, cancel) as seat:
            box = gr.MultimodalTextbox(value=message)
            for name, place in seat.places():
                yield state, box, *_draw(state, _place(runtime, name, place))
            if seat.admitted:
                yield from _compare(message, state, names, blind, max_tokens, request, progress, cancel)
            else:
                yield state, box, *_draw(state, "Stopped before the models started.")

    def _compare(message, state, names, blind, max_tokens, request, progress, cancel):
        text, files = message.get("text", "") or "", message.get("files", []) or []
        try:
            if not text.strip() and not files:
                raise EngineInputError("Type a prompt or attach an image.")
            check_text(text, runtime.settings.max_text_chars)
            if state is None:
                comparison = new_comparison(runtime.registry, names, bool(blind))
                comparison.owner = history.user_of(request)  # saved among this login's chats
            else:
                comparison = state
            paths = [f if isinstance(f, str) else f.get("path", "") for f in files]
            question = _question(runtime, text, paths, request, progress, cancel)
            turns = run_turn(
                comparison,
                question,
                runtime.registry,
                runtime.models,
                runtime.store,
                cancel,
                int(max_tokens),
                lambda fraction, what: progress(fraction, desc=what),
                runtime.library,
                models_tab.vision_hint_now(runtime) if question.message.images else VISION_HINT,
            )
            comparison = next(turns)  # bad input raises here, before anything is stored
        except (UserError, Fault) as exc:
            yield state, gr.MultimodalTextbox(value=message), *_draw(state, f"⚠️ {exc}")
            return
        cleared = gr.MultimodalTextbox(value=None, interactive=False)
        yield comparison, cleared, *_draw(comparison)
        shown_at = time.monotonic()
        for comparison in turns:
            if time.monotonic() - shown_at >= REFRESH_S:
                shown_at = time.monotonic()
                yield comparison, cleared, *_draw(comparison)
        yield comparison, gr.MultimodalTextbox(interactive=True), *_draw(comparison)

    return compare


def _place(runtime: Runtime, name: str, place: int) -> str:
    spec = runtime.registry.specs.get(name)
    return Waiting(spec.label if spec else name, place).line()


def _voter(runtime: Runtime):
    def vote(state: Comparison | None, choice: str, request: gr.Request):
        def answer(notice: str):
            return state, *_draw(state, notice), _board(runtime, history.user_of(request))

        if state is None or state.comparison_id is None or state.pending is not None:
            return answer("Vote once the answers are in.")
        if state.voted:
            return answer("You already voted on these answers; ask a follow-up to vote again.")
        try:
            outcome, position = parse_vote(choice, len(state.columns))
            runtime.store.comparisons.vote(state.comparison_id, outcome, position)
        except UserError as exc:
            return answer(f"⚠️ {exc}")
        state.voted, state.revealed = True, True
        return answer("Vote saved." + (" Names revealed." if state.blind else ""))

    return vote


def parse_vote(choice: str, n_models: int) -> tuple[str, int | None]:
    """A vote button's label as (outcome, winning column)."""
    if choice == TIE:
        return "tie", None
    if choice in (BAD_TWO, BAD_MANY):
        return "bad", None
    letter, _, rest = choice.partition(" ")
    if letter in LETTERS[:n_models] and rest in ("is better", "is best"):
        return "best", LETTERS.index(letter)
    raise EngineInputError(f"unknown vote {choice!r}")


def _vote_labels(n_models: int) -> list[str]:
    word = "better" if n_models == 2 else "best"
    letters = [f"{LETTERS[i]} is {word}" for i in range(MAX_MODELS)]
    return [*letters, TIE, BAD_TWO if n_models == 2 else BAD_MANY]


def _stopper(runtime: Runtime):
    def stop(request: gr.Request) -> None:
        runtime.runs.cancel(run_scope(request, "compare"))

    return stop


def _draw(comparison: Comparison | None, notice: str = "") -> list:
    """Every output of the view, for this state of the comparison."""
    n = len(comparison.columns) if comparison else 2
    answering = comparison is not None and comparison.pending is not None
    titles, chats, metrics = [], [], []
    for index in range(MAX_MODELS):
        if comparison is None or index >= n:
            titles.append(f"**Model {LETTERS[index]}**")
            chats.append([])
            metrics.append("")
            continue
        column = comparison.columns[index]
        titles.append(f"**{comparison.title(index)}**")
        turns = column.turns
        # The latest figures sit under the column; before a blind vote none show at all.
        shown_from = 0 if not comparison.revealed else len(turns) - (0 if answering else 1)
        turns = [t if i < shown_from else dataclasses.replace(t, footer="") for i, t in enumerate(turns)]
        if answering:
            turns = [
                *turns,
                comparison.pending,
                assistant_turn(column.text, "streaming" if column.streaming else "complete"),
            ]
        chats.append(to_chatbot(turns))
        metrics.append(_metrics_text(comparison, index))
    can_vote = comparison is not None and comparison.comparison_id is not None
    can_vote = can_vote and not answering and not comparison.voted
    buttons = [
        gr.Button(value=label, visible=i < n or i >= MAX_MODELS) for i, label in enumerate(_vote_labels(n))
    ]
    show_plots = comparison is not None and not answering and comparison.revealed and comparison.started
    locked = comparison is not None and (comparison.started or answering)
    return [
        notice or (comparison.notice if comparison else ""),
        *[gr.Column(visible=i < n) for i in range(MAX_MODELS)],
        *titles,
        *chats,
        *metrics,
        gr.Row(visible=can_vote),
        *buttons,
        *_plots(comparison if show_plots else None),
        gr.CheckboxGroup(interactive=not locked),
        gr.Checkbox(interactive=not locked),
    ]


def _metrics_text(comparison: Comparison, index: int) -> str:
    column = comparison.columns[index]
    if not comparison.revealed and column.final is not None:
        return "speed figures appear after your vote"  # they would give the model away
    if not comparison.revealed and column.reading and not column.text:
        return "<span class='metrics'>reading the prompt…</span>"  # its pace would too
    if not comparison.revealed and column.streaming and column.text:
        return "<span class='metrics'>answering…</span>"  # and so would its live speed
    return (
        f"<span class='metrics'>{metrics_line(column)}</span>" if comparison.pending or column.turns else ""
    )


def _plots(comparison: Comparison | None) -> list:
    if comparison is None:
        return [gr.BarPlot(visible=False), gr.BarPlot(visible=False)]
    finished = [
        (i, c)
        for i, c in enumerate(comparison.columns)
        if c.final is not None and c.final.usage.completion_tokens
    ]
    names = [c.model for _, c in finished]  # plots show once names are revealed
    ttft = pd.DataFrame({"model": names, "seconds": [c.final.usage.ttft_s for _, c in finished]})
    speed = pd.DataFrame({"model": names, "tokens/s": [c.final.usage.decode_tps for _, c in finished]})
    return [
        gr.BarPlot(ttft, visible=bool(finished), y_lim=from_zero(ttft["seconds"])),
        gr.BarPlot(speed, visible=bool(finished), y_lim=from_zero(speed["tokens/s"])),
    ]


def from_zero(values) -> list[float]:
    """A bar chart's value axis from 0 (a cut axis makes a small gap look large) to a
    little above the tallest bar."""
    top = max((float(v) for v in values if v == v), default=0.0)  # v == v: not NaN
    return [0.0, top * 1.1 if top > 0 else 1.0]


def _board(runtime: Runtime, user: str) -> list[list]:
    """The leaderboard `user` may see: their own votes, unless the server was started
    with --global-leaderboard."""
    owner = None if runtime.settings.global_leaderboard else user
    store = runtime.store.comparisons
    return leaderboard.table(leaderboard.standings(store.votes(owner), store.speeds(owner)))


def _board_of(runtime: Runtime):
    def board(request: gr.Request = None) -> list[list]:
        # Gradio also calls it once while building the page, for no one: show nothing.
        return _board(runtime, history.user_of(request)) if request is not None else []

    return board


def plan_text(runtime: Runtime, names: list[str]) -> str:
    """Before the run: will the chosen models fit in memory together?"""
    if not names or len(names) < 2:
        return ""
    try:
        specs = [runtime.registry.get(name) for name in names]
    except UserError as exc:
        return f"⚠️ {exc}"
    plan = runtime.models.plan(specs)
    if plan.serial:
        return f"Memory: {plan.reason}."
    total = sum(model_cost(spec, runtime.settings) or 0 for spec in specs if not spec.is_remote)
    remote = sum(spec.is_remote for spec in specs)
    if remote == len(specs):
        return "These run on their servers (no memory here) and answer at the same time."
    servers = f"; {remote} on their servers" if remote else ""
    return (
        f"Memory: these fit together (about {total / GB:.1f} GB here{servers}) and answer at the same time."
    )
