"""API keys: KEY without logins, USER:KEY with them; bad entries refused at start
with one line and exit 2."""

from __future__ import annotations

import pytest

from api.keys import api_access
from config import Settings
from errors import UserError
from tests.fixtures.cli import run


def test_a_key_acts_for_its_user_and_nothing_else_opens_the_api(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# team keys\n\nbob:sk-bob-0123456789\n")
    access = api_access(Settings(api_keys=["ann:sk-ann-0123456789"], api_key_file=keys), ["ann", "bob"])
    assert access.owner("sk-ann-0123456789") == "ann" and access.owner("sk-bob-0123456789") == "bob"
    assert (
        access.owner("sk-ann-012345678") is None and access.owner("") is None and access.owner(None) is None
    )
    plain = api_access(Settings(api_keys=["sk-plain-0123456789"]), [])
    assert plain.owner("sk-plain-0123456789") == "" and plain.owner("other-key-123") is None
    assert api_access(Settings(), []).open  # loopback without logins: open, like the page
    closed = api_access(Settings(), ["ann"])
    assert not closed.open and closed.owner("anything-at-all") is None


@pytest.mark.parametrize(
    ("keys", "users", "message"),
    [
        (["sk-plain-0123456789"], ["ann"], "USER:KEY with USER one of the --auth users"),
        (["eve:sk-eve-0123456789"], ["ann"], "USER:KEY with USER one of the --auth users"),
        (["ann:sk-ann-0123456789"], [], "USER:KEY needs logins"),
        (["short"], [], "at least 8 characters"),
        (["sk-same-0123456789", "sk-same-0123456789"], [], "more than once"),
    ],
)
def test_bad_key_entries_are_refused_with_one_line(keys, users, message):
    with pytest.raises(UserError, match=message):
        api_access(Settings(api_keys=keys), users)


def test_the_server_refuses_a_bad_key_before_starting():
    result = run("--auth", "ann:pw", "--api-key", "sk-no-user-0123456789")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "USER:KEY" in result.stderr
