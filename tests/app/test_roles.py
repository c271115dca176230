"""Roles: the first login (or those named by --admin) pulls, cancels and deletes
models; any other login is refused with one line by the handlers themselves (a client
calling them without the page included) and the files stay. Without logins the one
local user is the admin."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest
from gradio_client import Client

from app.roles import admins, may_manage_models
from config import Settings
from engine.types import EngineInputError
from tests.conftest import start_app, stop_app

ANN, BOB = ("ann", "ann-pw-1"), ("bob", "bob-pw-2")
REGISTRY = """
[models.a]
file = "a.gguf"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_llama4):
    data = tmp_path_factory.mktemp("roles")
    models = data / "models"
    models.mkdir()
    shutil.copy(tiny_llama4[0], models / "a.gguf")  # a pulled model's file, as far as the tab knows
    registry = data / "models.toml"
    registry.write_text(REGISTRY)
    os.environ["L4P_REGISTRY_FILE"] = str(registry)
    try:
        proc, url = start_app("--auth", ":".join(ANN), "--auth", ":".join(BOB), "--data-dir", str(data))
    finally:
        del os.environ["L4P_REGISTRY_FILE"]
    yield SimpleNamespace(url=url, model=models / "a.gguf")
    stop_app(proc)


def test_another_login_cannot_change_the_models(server):
    bob = Client(server.url, auth=BOB, verbose=False)
    status = bob.predict("a", True, api_name="/delete_model")[0]
    assert "Only an admin" in status and server.model.exists()
    status = bob.predict(None, "someone/some-model-GGUF:Q4_K_M", api_name="/pull_model")[0]
    assert "Only an admin" in status
    assert "Only an admin" in bob.predict(api_name="/cancel_pull")
    assert bob.predict(api_name="/models_table")["data"]  # the catalogue itself is readable


def test_the_first_login_is_the_admin(server):
    ann = Client(server.url, auth=ANN, verbose=False)
    assert "Tick" in ann.predict("a", False, api_name="/delete_model")[0]  # past the role check
    status = ann.predict("a", True, api_name="/delete_model")[0]
    assert status.startswith("Deleted a") and not server.model.exists()


def test_who_is_an_admin():
    assert admins(Settings(), []) == set()
    assert may_manage_models(Settings(), "")  # no logins: the person at the keyboard
    assert admins(Settings(auth=["ann:x", "bob:y"]), ["ann", "bob"]) == {"ann"}
    assert admins(Settings(admins=["bob"]), ["ann", "bob"]) == {"bob"}
    assert may_manage_models(Settings(auth=["ann:x", "bob:y"], admins=["bob"]), "bob")
    assert not may_manage_models(Settings(auth=["ann:x", "bob:y"], admins=["bob"]), "ann")
    with pytest.raises(EngineInputError, match="not one of the"):
        admins(Settings(admins=["carol"]), ["ann", "bob"])
    with pytest.raises(EngineInputError, match="names a login"):
        admins(Settings(admins=["carol"]), [])


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="Debian chromium not installed")
def test_the_page_shows_the_buttons_to_the_admin_only(server):
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        try:
            for (user, password), admin in ((BOB, False), (ANN, True)):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(server.url)
                page.get_by_label("username").fill(user)
                page.get_by_label("password").fill(password)
                page.get_by_role("button", name="Login").click()
                page.get_by_role("tab", name="Models").click(timeout=30_000)
                page.locator("#models-table").wait_for(timeout=30_000)
                page.locator("#models-refresh").wait_for(timeout=30_000)
                page.wait_for_timeout(1000)  # the load event has set what this login sees
                assert page.locator("#models-delete").is_visible() is admin
                assert page.locator("#models-pull").is_visible() is admin
                assert ("read-only" in page.locator("#models-status").inner_text()) is not admin
                page.close()
        finally:
            browser.close()
