"""The saved-chats panel: list, search, resume, rename, delete; and moving between
the branches that edits and regenerations leave behind."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app import chat_files
from app.access import is_shared
from app.blob_route import blob_link, gradio_copies, remove_gradio_copies
from app.render import SETTING_NAMES, plain_text, to_chatbot
from app.upload_temps import CHAT_UPLOADS
from chat.branches import branch_through, mark_versions, parse_chat_choice
from chat.runtime import Runtime
from chat.turns import Turn, turns_from_rows
from documents.parts import ChatMessage
from engine.limits import check_field, check_text
from engine.types import TextPart
from errors import UserError

LIST_LIMIT = 50
# After a search hit opens its chat: bring the hit's turn into view once the chat
# has rendered it (and scrolled itself to the bottom), and mark it for a moment.
SCROLL_TO_TURN_JS = """(turn) => {
  if (turn === "" || turn === null) return;
  let tries = 0;
  const bring = setInterval(() => {
    const rows = document.querySelectorAll("#chat .message-row");
    const row = rows[Number(turn)];
    if (row) {
      row.scrollIntoView({ block: "center" });
      row.classList.add("search-hit");
    }
    if (++tries > 10) clearInterval(bring);
  }, 150);
}"""


@dataclass
class Panel:
    new: gr.Button
    search: gr.Textbox
    chats: gr.Radio
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    confirm: gr.Button
    cancel: gr.Button
    version: gr.Textbox  # set by assets/citations.js when a ‹ › version link is clicked
    export_markdown: gr.Button
    export_json: gr.Button
    download: gr.File  # what an export made, to download
    upload: gr.UploadButton  # a JSON export to import
    scroll_to: gr.Textbox  # the turn a search hit opened at, for the page to scroll to


def build_panel() -> Panel:
    new = gr.Button("+ New chat", variant="primary", elem_id="new-chat")
    search = gr.Textbox(placeholder="Search all chats…", show_label=False, elem_id="search", submit_btn=True)
    chats = gr.Radio([], label="Chats", elem_id="chats")
    upload = chat_files.build_import()
    with gr.Accordion("This chat", open=False, elem_id="chat-actions"):
        title = gr.Textbox(label="Title", elem_id="title-box")
        rename = gr.Button("Rename", size="sm", elem_id="rename")
        export_markdown, export_json, download = chat_files.build_export()
        delete = gr.Button("Delete chat", size="sm", variant="stop", elem_id="delete")
        with gr.Row():
            confirm = gr.Button(
                "Yes, delete it", size="sm", variant="stop", visible=False, elem_id="confirm-delete"
            )
            cancel = gr.Button("Keep it", size="sm", visible=False, elem_id="cancel-delete")
    version = gr.Textbox(visible="hidden", elem_id="version-target")
    scroll_to = gr.Textbox(visible="hidden", elem_id="scroll-to")
    return Panel(
        new, search, chats, title, rename, delete, confirm, cancel, version,
        export_markdown, export_json, download, upload, scroll_to,
    )  # fmt: skip


def user_of(request: gr.Request | None) -> str:
    """The logged-in user; '' without auth (every chat then belongs to '')."""
    return (request.username or "") if request is not None else ""


def owned(runtime: Runtime, session_id: str, request: gr.Request | None):
    """The session's row if this user owns it; SessionNotFound (one line) otherwise."""
    return runtime.store.owned_session(session_id, user_of(request))


def chat_choices(runtime: Runtime, owner: str) -> list[tuple[str, str]]:
    chats = runtime.store.list_sessions(
        LIST_LIMIT, owner=owner, chats_only=True
    )  # comparisons stay in Compare
    return [(f"{s.title or 'Untitled'} · {s.model}", s.id) for s in chats]


def refresher(runtime: Runtime):
    def refresh(session: str, request: gr.Request):
        return gr.Radio(choices=chat_choices(runtime, user_of(request)), value=session or None)

    return refresh


def wire(panel: Panel, runtime: Runtime, demo, turns, session, chatbot, notice, model, settings, box) -> list:
    """The panel's events; returns those that put another chat on screen. A new chat
    is new: the input `box` is emptied in the same event, draft and files alike."""
    chat_view = [turns, session, chatbot, notice]
    private = {"api_visibility": "private"}
    demo.load(refresher(runtime), [session], panel.chats, api_name="list_chats")
    new = panel.new.click(
        lambda: ([], "", [], "", gr.Radio(value=None), gr.MultimodalTextbox(value=None, interactive=True)),
        None,
        [*chat_view, panel.chats, box],
        api_name="new_chat",
        queue=False,  # at once, not behind a stopped answer's queue: a draft typed next must survive
    )
    panel.search.submit(_searcher(runtime), panel.search, panel.chats, api_name="search")
    opened = panel.chats.input(
        _opener(runtime),
        panel.chats,
        [*chat_view, panel.title, model, *settings, panel.scroll_to],
        api_name="open_chat",
    )
    opened.then(None, panel.scroll_to, None, js=SCROLL_TO_TURN_JS)
    switched = panel.version.change(
        version_switcher(runtime), [panel.version, turns, session], [turns, chatbot, notice], **private
    )
    panel.rename.click(_renamer(runtime), [session, panel.title], [panel.chats, notice], api_name="rename")
    confirm_buttons = [panel.confirm, panel.cancel]
    panel.delete.click(lambda: [gr.Button(visible=True)] * 2, None, confirm_buttons, api_visibility="private")
    panel.cancel.click(
        lambda: [gr.Button(visible=False)] * 2, None, confirm_buttons, api_visibility="private"
    )
    deleted = panel.confirm.click(
        _deleter(runtime), session, [*chat_view, panel.chats, *confirm_buttons], api_name="delete_chat"
    )
    panel.export_markdown.click(
        _exporter(runtime, "md"), [session, turns], [panel.download, notice], **private
    )
    panel.export_json.click(_exporter(runtime, "json"), [session, turns], [panel.download, notice], **private)
    imported = panel.upload.upload(
        _importer(runtime),
        panel.upload,
        [panel.chats, *chat_view, panel.title, model, *settings, panel.scroll_to],
        **private,
    )
    shown = [new, opened, deleted, switched, imported]
    for event in shown:  # an export made for the chat on screen before goes with it
        event.then(lambda: gr.File(value=None, visible=False), None, panel.download, **private)
    return shown


def _searcher(runtime: Runtime):
    def search(query: str, request: gr.Request):
        owner = user_of(request)
        if not query.strip():
            return gr.Radio(choices=chat_choices(runtime, owner), label="Chats")
        try:
            check_field(query, runtime.settings.max_field_chars, "the search")
            hits = runtime.store.search(query, owner=owner, chats_only=True)  # bounded: sessions/search.py
        except UserError as exc:
            gr.Warning(str(exc))
            return gr.Radio(choices=[], value=None, label=f"⚠️ {exc}")
        seen, choices = set(), []
        for hit in hits:
            if hit.session_id not in seen:
                seen.add(hit.session_id)
                # The hit's message too: the chat opens on the branch that holds it.
                label = f"{hit.session_title}: {plain_text(hit.snippet)}"
                choices.append((label, f"{hit.session_id}#{hit.message_id}"))
        return gr.Radio(
            choices=choices,
            value=None,
            label=f"{_chats(len(choices))} match{'es' if len(choices) == 1 else ''} “{query.strip()}”",
        )

    return search


def _chats(count: int) -> str:
    return "1 chat" if count == 1 else f"{count} chats"


COMPARISON = "That is a comparison of several models: it stays in the Compare tab."


def _opener(runtime: Runtime):
    def open_chat(choice: str | None, request: gr.Request):
        session_id, hit = parse_chat_choice(choice or "")
        if not session_id:
            return _nothing_opened("")
        try:
            row = owned(runtime, session_id, request)
            rows = (
                branch_through(runtime.store, session_id, hit)
                if hit is not None
                else runtime.store.branch(session_id)
            )
            turns = mark_branches(runtime, turns_from_rows(rows, blob_link(request)))
        except UserError as exc:
            return _nothing_opened(f"⚠️ {exc}")
        at = next((str(i) for i, turn in enumerate(turns) if hit is not None and turn.id == hit), "")
        saved = row.settings or {}
        if saved.get("compare"):  # a comparison (a failed one too) is not a chat to go on with
            return _nothing_opened(f"⚠️ {COMPARISON}")
        model = row.model if row.model in runtime.registry.specs else gr.update()
        # A shared server's context size is its own, whatever the chat was saved with.
        kept = {"n_ctx"} if is_shared(runtime.settings) else set()
        restored = [gr.update() if name in kept else saved.get(name, gr.update()) for name in SETTING_NAMES]
        return turns, session_id, to_chatbot(turns), "", row.title, model, *restored, at

    return open_chat


def _nothing_opened(notice: str) -> tuple:
    """The opener's outputs when no chat opens: an empty chat, the notice, the title,
    model and settings as they are, no message to scroll to."""
    return [], "", [], notice, gr.Textbox(), gr.Dropdown(), *[gr.update()] * len(SETTING_NAMES), ""


def _exporter(runtime: Runtime, kind: str):
    """Export the open chat: "md" the branch on screen, "json" every branch."""

    def export(session: str, turns: list[Turn], request: gr.Request):
        if not session:
            return gr.File(value=None, visible=False), "Nothing to export yet: send a message first."
        leaf = next((t.id for t in reversed(turns) if t.id is not None), None)
        try:
            owned(runtime, session, request)
            if kind == "md":
                files = chat_files.markdown_files(runtime, session, leaf)
            else:
                files = [chat_files.json_file(runtime, session)]
        except UserError as exc:
            return gr.File(value=None, visible=False), f"⚠️ {exc}"
        return gr.File(value=files, visible=True), ""

    return export


def _importer(runtime: Runtime):
    """A JSON export read back as a new chat, listed and opened."""

    def import_chat(upload, request: gr.Request):
        path = upload if isinstance(upload, str) else getattr(upload, "name", "") or ""
        owner = user_of(request)
        try:
            new_id = chat_files.import_file(runtime, path, owner)
        except (UserError, OSError) as exc:
            failed = (
                f"⚠️ {exc}" if isinstance(exc, UserError) else "⚠️ The file could not be read; attach it again."
            )
            gr.Warning(failed.removeprefix("⚠️ "))
            return gr.Radio(), gr.update(), gr.update(), gr.update(), failed, *[gr.update()] * 9
        chats = gr.Radio(choices=chat_choices(runtime, owner), value=new_id)
        return chats, *_opener(runtime)(new_id, request)

    return import_chat


def _renamer(runtime: Runtime):
    def rename(session: str, title: str, request: gr.Request):
        if not session:
            return gr.Radio(), "Nothing to rename yet: send a message first."
        if not title.strip():
            return gr.Radio(), "⚠️ A title cannot be empty."
        try:
            check_field(title, runtime.settings.max_field_chars, "the title")
            owned(runtime, session, request)
            runtime.store.rename_session(session, " ".join(title.split()))
        except UserError as exc:
            return gr.Radio(), f"⚠️ {exc}"
        return gr.Radio(choices=chat_choices(runtime, user_of(request)), value=session), ""

    return rename


def _deleter(runtime: Runtime):
    def delete(session: str, request: gr.Request):
        hidden = [gr.Button(visible=False)] * 2
        notice = ""
        try:
            if session:
                owned(runtime, session, request)
                copies = gradio_copies(runtime.store, runtime.store.session_blobs(session))
                runtime.store.delete_session(session)
                remove_gradio_copies(runtime.store, copies)
                CHAT_UPLOADS.forget(session)  # the uploads it was read from (a GIF stored as PNG)
        except UserError as exc:
            notice = f"⚠️ {exc}"
        chats = gr.Radio(choices=chat_choices(runtime, user_of(request)), value=None)
        return [], "", [], notice, chats, *hidden

    return delete


def editor(runtime: Runtime):
    """An edited user turn becomes a sibling of the original once the model answers it
    (the chat service stores it then); the answer follows."""

    def edit(turns: list[Turn], session: str, event: gr.EditData, request: gr.Request):
        index = event.index if isinstance(event.index, int) else event.index[0]
        if not (0 <= index < len(turns)) or turns[index].message.role != "user":
            return turns, to_chatbot(turns), ""
        new_text = event.value if isinstance(event.value, str) else _text_of(event.value)
        old = turns[index]
        try:
            check_text(new_text, runtime.settings.max_text_chars)
            turn = Turn(ChatMessage("user", _keep_files(old.message, new_text)), files=old.files)
            if session:
                owned(runtime, session, request)
        except UserError as exc:
            return turns, to_chatbot(turns), f"⚠️ {exc}"
        turns = [*turns[:index], turn]
        return turns, to_chatbot(turns), ""

    return edit


def _text_of(value) -> str:
    if isinstance(value, list):
        return " ".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        return value.get("text", "") or ""
    return str(value or "")


def _keep_files(old: ChatMessage, new_text: str) -> tuple:
    """The edit changes words, not pictures or documents: those stay where they were."""
    return (*[p for p in old.parts if not isinstance(p, TextPart)], TextPart(new_text.strip()))


def branch_mover(runtime: Runtime, step: int):
    """◀ / ▶: show the previous or next version of the last answer (a regeneration)."""

    def move(turns: list[Turn], session: str, request: gr.Request):
        last = turns[-1] if turns else None
        if not session or last is None or last.versions is None:
            return turns, to_chatbot(turns), "No other answers to this turn yet."
        target = last.versions.previous if step < 0 else last.versions.following
        if target is None:
            return turns, to_chatbot(turns), ""
        return _show_version(runtime, turns, session, target, request)

    return move


def version_switcher(runtime: Runtime):
    """A ‹ or › of any question or answer: that version, and what was said after it."""

    def switch(target: str, turns: list[Turn], session: str, request: gr.Request):
        if not target:  # the page clears the box before each click; nothing to show
            return gr.update(), gr.update(), gr.update()
        if not session or not target.isdigit():
            return turns, to_chatbot(turns), "⚠️ That version is not part of this chat."
        return _show_version(runtime, turns, session, int(target), request)

    return switch


def _show_version(runtime: Runtime, turns: list[Turn], session: str, message_id: int, request):
    try:
        owned(runtime, session, request)
        rows = branch_through(runtime.store, session, message_id)
    except UserError as exc:
        return turns, to_chatbot(turns), f"⚠️ {exc}"
    turns = mark_branches(runtime, turns_from_rows(rows, blob_link(request)))
    return turns, to_chatbot(turns), ""


def mark_branches(runtime: Runtime, turns: list[Turn]) -> list[Turn]:
    """Mark every question and answer that has siblings ("2/3", with its neighbours)
    so users see there is more and can move there. Answers of a blind comparison not
    voted on yet show no figures: speeds would tell the models apart."""
    hidden = runtime.store.comparisons.hidden_answers([t.id for t in turns if t.id is not None])
    for turn in turns:
        if turn.id in hidden:
            turn.footer = ""
    return mark_versions(turns, runtime.store.siblings)
