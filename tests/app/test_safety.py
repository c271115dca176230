"""Safe by default: loopback unless logins are set, sessions that belong to their user,
files served only from the data dir, uploads stored under their sha256."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from app.access import check_exposure, is_loopback, logins, read_auth_file
from config import Settings
from errors import UserError
from sessions import Store
from tests.conftest import REPO, start_app, stop_app

ANN, BOB = ("ann", "ann-secret:with-colon"), ("bob", "bob-secret")
TINY = {
    "model_name": "tiny-llama4",
    "page_range": "",
    "system": "",
    "max_tokens": 16,
    "n_ctx": 2048,
    "seed": 0,
}


def serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "launch.py", "--port", "1", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("my-laptop.lan", False),
    ],
)
def test_only_loopback_counts_as_local(host, loopback):
    assert is_loopback(host) is loopback


def test_auth_file_lines(tmp_path):
    path = tmp_path / "users.txt"
    path.write_text("# team logins\n\nann:pa:ss\n  bob:xyz  \n", encoding="utf-8")
    assert read_auth_file(path) == [("ann", "pa:ss"), ("bob", "xyz")]
    path.write_text("ann:ok\nhunter2-no-user-here\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 2: expected user:password") as caught:
        read_auth_file(path)
    assert "hunter2" not in str(caught.value)  # a malformed line may be a password


def test_logins_from_flags_and_file_together(tmp_path):
    path = tmp_path / "users.txt"
    path.write_text("bob:b\n", encoding="utf-8")
    settings = Settings(auth=["ann:a"], auth_file=path, host="0.0.0.0")
    assert check_exposure(settings) == [("ann", "a"), ("bob", "b")]
    with pytest.raises(UserError, match="'bob' is given more than once"):
        logins(Settings(auth=["bob:c"], auth_file=path))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0 lets other machines in; add --auth user:pass"),
        (["--host", "192.168.1.20"], "--host 192.168.1.20 lets other machines in"),
        (["--share"], "--share makes the app public; add --auth user:pass"),
        (["--host", "0.0.0.0", "--auth", "ann"], "--auth: expected user:password"),
        (["--auth-file", "/nonexistent/users.txt"], "auth file not found: /nonexistent/users.txt"),
    ],
    ids=["any-interface", "lan-address", "share", "malformed-auth", "missing-auth-file"],
)
def test_an_exposed_server_without_logins_refuses_to_start(args, message):
    result = serve(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Playground on" not in result.stdout  # refused before serving anything


def test_an_empty_auth_file_refuses_to_start(tmp_path):
    empty = tmp_path / "users.txt"
    empty.write_text("# nobody yet\n", encoding="utf-8")
    result = serve("--host", "0.0.0.0", "--auth-file", str(empty))
    assert result.returncode == 2 and "holds no user:password line" in result.stderr


@pytest.fixture(scope="module")
def auth_app(tmp_path_factory, tiny_llama4):
    """Two users on the tiny vision model (answers are gibberish; ownership is the point)."""
    data_dir = tmp_path_factory.mktemp("auth-data")
    users = tmp_path_factory.mktemp("auth") / "users.txt"
    users.write_text(f"# logins\n{BOB[0]}:{BOB[1]}\n", encoding="utf-8")
    model, mmproj = tiny_llama4
    proc, url = start_app(
        "--data-dir",
        str(data_dir),
        "--model-path",
        str(model),
        "--mmproj",
        str(mmproj),
        "--auth",
        ":".join(ANN),
        "--auth-file",
        str(users),
    )
    yield url, data_dir
    stop_app(proc)


def chat_as(client: Client, text: str, files=()) -> list[dict]:
    _, _, notice = client.predict(
        {"text": text, "files": [handle_file(f) for f in files]}, password="", api_name="/send"
    )
    assert notice == ""
    chat, notice = client.predict(**TINY, api_name="/respond")
    assert notice == ""
    return chat


def choices(radio: dict) -> list[str]:
    return [value for _, value in radio["choices"]]


def test_the_page_asks_for_a_login(auth_app):
    url, _ = auth_app
    wrong = httpx.post(f"{url}login", data={"username": ANN[0], "password": "wrong"}, timeout=10)
    assert wrong.status_code == 400 and "Incorrect credentials" in wrong.text
    with pytest.raises(ValueError, match="Could not login"):
        Client(url, auth=(BOB[0], ANN[1]), verbose=False)  # one user's password is not another's
    config = httpx.get(f"{url}config", timeout=10)
    assert config.status_code == 401  # nothing of the app without a login
    assert httpx.get(f"{url}gradio_api/info", timeout=10).status_code == 401


def test_one_user_cannot_reach_another_users_chats(auth_app):
    url, data_dir = auth_app
    ann, bob = Client(url, auth=ANN, verbose=False), Client(url, auth=BOB, verbose=False)
    chat_as(ann, "ann's private zebra question")
    chat_as(bob, "bob asks about giraffes")
    with Store(data_dir) as store:
        (ann_chat,) = store.list_sessions(owner="ann")
        (bob_chat,) = store.list_sessions(owner="bob")
        assert store.list_sessions(owner="") == []  # nothing saved without an owner
    assert ann_chat.title == "ann's private zebra question"

    assert choices(bob.predict("", api_name="/list_chats")) == [bob_chat.id]
    assert choices(ann.predict("", api_name="/list_chats")) == [ann_chat.id]
    assert choices(bob.predict("zebra", api_name="/search")) == []
    # A search hit names its chat and the message found ("<chat id>#<message id>").
    assert [hit.partition("#")[0] for hit in choices(ann.predict("zebra", api_name="/search"))] == [
        ann_chat.id
    ]

    # Ann's id is not among the chats Bob's page was given, so Gradio refuses it before
    # the app runs; the app's own owner check behind it is tested directly below.
    with pytest.raises(AppError) as refused:
        bob.predict(ann_chat.id, api_name="/open_chat")
    assert "zebra" not in refused.value.message
    # Bob's page still holds his own chat: rename and delete act on it, never on Ann's.
    bob.predict("", api_name="/list_chats")
    bob.predict(bob_chat.id, api_name="/open_chat")
    bob.predict("renamed by bob", api_name="/rename")
    bob.predict(api_name="/delete_chat")
    with Store(data_dir) as store:
        assert [s.title for s in store.list_sessions(owner="ann")] == [ann_chat.title]
        assert store.list_sessions(owner="bob") == []
        assert len(store.branch(ann_chat.id)) == 2


def test_files_are_served_from_the_blob_route_only(auth_app, write_png):
    url, data_dir = auth_app
    ann = Client(url, auth=ANN, verbose=False)
    chat_as(ann, "look <image>", [write_png("holiday photo.png")])
    with Store(data_dir) as store:
        blobs = [p for p in store.blobs.root.rglob("*") if p.is_file()]
        session = next(s for s in store.list_sessions(owner="ann") if s.title.startswith("look"))
        (attachment,) = store.branch(session.id)[0].attachments
    # Stored under its sha256; the name the user gave is only a label in the database.
    assert len(blobs) == 1 and blobs[0].name == attachment.sha256
    assert re.fullmatch(r"[0-9a-f]{64}", attachment.sha256) and attachment.name == "holiday photo.png"
    assert not list(data_dir.rglob("holiday photo.png"))

    with httpx.Client(base_url=url, timeout=10) as web:
        login = web.post("login", data={"username": ANN[0], "password": ANN[1]})
        assert login.status_code == 200

        def fetch(path) -> int:
            return web.get(f"gradio_api/file={path}").status_code

        assert fetch(blobs[0].resolve()) == 403  # saved files only through /blobs/, owner-checked
        assert web.get(f"blobs/{attachment.sha256}").content == blobs[0].read_bytes()
        assert fetch("/etc/passwd") == 403
        assert fetch(REPO / "launch.py") == 403
        assert fetch((data_dir / "playground.db").resolve()) == 403
        assert fetch(f"{blobs[0].resolve().parent}/../../playground.db") == 403
    assert httpx.get(f"{url}gradio_api/file={blobs[0].resolve()}", timeout=10).status_code in (401, 403)


def test_handlers_check_the_owner_behind_the_page(tmp_path):
    """What Bob's handlers do with Ann's session id, however it reached them."""
    import gradio as gr

    from app import history
    from chat.runtime import build_runtime

    runtime = build_runtime(Settings(data_dir=tmp_path))
    ann_chat = runtime.store.create_session(title="ann's chat", owner="ann")
    as_bob = gr.Request(username="bob")
    _, session, _, notice, *_ = history._opener(runtime)(ann_chat, as_bob)
    assert session == "" and "No saved chat with id" in notice  # reads like a deleted chat
    _, notice = history._renamer(runtime)(ann_chat, "taken over", as_bob)
    assert "No saved chat with id" in notice
    *_, notice, _, _, _ = history._deleter(runtime)(ann_chat, as_bob)
    assert "No saved chat with id" in notice
    assert runtime.store.get_session(ann_chat).title == "ann's chat"
    assert history._opener(runtime)(ann_chat, gr.Request(username="ann"))[1] == ann_chat
    runtime.store.close()
