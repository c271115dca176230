"""Suite files: the built-in suite's shape, and one clear line for every kind of bad file."""

from __future__ import annotations

import json

import pytest

from evals import suite_file
from evals.checks import CHECK_TYPES, run_check
from evals.suite_file import Conversation, Turn, load_suite


@pytest.fixture(scope="module")
def builtin():
    return load_suite("builtin")


def write_suite(tmp_path, lines, name="suite.jsonl"):
    path = tmp_path / name
    text = "\n".join(
        line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines
    )
    path.write_text(text + "\n", encoding="utf-8")
    return path


def conversation(cid="c-01", **overrides):
    record = {
        "id": cid,
        "language": "en",
        "turns": [{"prompt": "Say hi.", "checks": [{"type": "contains", "value": "hi"}]}],
    }
    record.update(overrides)
    return record


def load_error(path) -> str:
    with pytest.raises(ValueError) as raised:
        load_suite(str(path))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


# ---- the built-in suite -----------------------------------------------------------------------


def test_builtin_has_enough_three_turn_conversations(builtin):
    assert len(builtin) >= 24
    assert all(isinstance(item, Conversation) for item in builtin)
    assert all(len(item.turns) == 3 for item in builtin)
    assert all(isinstance(turn, Turn) and turn.prompt.strip() for item in builtin for turn in item.turns)


def test_builtin_spans_llama4_languages(builtin):
    llama4 = {"en", "fr", "de", "es", "it", "pt", "hi", "id", "th", "vi", "ar", "tl"}
    languages = [item.language for item in builtin]
    assert set(languages) <= llama4
    assert len(set(languages)) >= 8
    assert min(languages.count(code) for code in set(languages)) >= 2


def test_builtin_uses_every_check_type_in_several_conversations(builtin):
    for kind in CHECK_TYPES:
        using = [item.id for item in builtin if any(c["type"] == kind for c in item.turns[-1].checks)]
        assert len(using) >= 3, kind


def test_builtin_later_turns_carry_earlier_checks(builtin):
    for item in builtin:
        for earlier, later in zip(item.turns, item.turns[1:], strict=False):
            assert all(c in later.checks for c in earlier.checks), item.id
            assert len(later.checks) > len(earlier.checks), f"{item.id}: a turn adds no instruction"


def test_builtin_language_checks_agree_with_the_conversation(builtin):
    for item in builtin:
        codes = {c["value"] for c in item.turns[-1].checks if c["type"] == "language"}
        assert codes <= {item.language}, item.id


def test_builtin_ids_name_their_language(builtin):
    assert all(item.id.startswith(item.language + "-") for item in builtin)
    assert len({item.id for item in builtin}) == len(builtin)


def test_builtin_checks_can_all_be_met():
    """Answers a careful model could give pass every check of a conversation's last turn."""
    answers = {
        "fr-courriel-01": (
            "Bonjour Monsieur,\n\nJe vous signale une fuite d'eau sous le lavabo de la salle de bain. "
            "Je suis disponible le 12/03/2025 pour recevoir un plombier.\n\nMerci d'avance,\nJulie"
        ),
        "th-chiangmai-01": ("- ดอยสุเทพ วัดสวยบนภูเขา\n- ถนนคนเดินวันอาทิตย์\n- ย่านนิมมานเหมินท์\n- ตลาดวโรรส"),
        "de-rezept-01": '```json\n{"zutaten": ["Kartoffeln", "Essig", "Zwiebeln"], '
        '"schritte": ["Kochen", "Schneiden", "Mischen"], "portionen": 4}\n```',
        "vi-pho-01": (
            "- Xương bò và thịt bò\n- Bánh phở\n- Hành tây và gừng nướng\n- Hồi và quế\n"
            "- Nước mắm\n- Rau thơm và chanh\nChúc ngon miệng!"
        ),
    }
    suite = {item.id: item for item in load_suite("builtin")}
    for cid, answer in answers.items():
        for check in suite[cid].turns[-1].checks:
            result = run_check(answer, check)
            assert result.passed, f"{cid}: {result}"


# ---- bad files --------------------------------------------------------------------------------


def test_a_good_file_loads_every_field(tmp_path):
    path = write_suite(tmp_path, [conversation("a"), "", conversation("b", language="th")])
    loaded = load_suite(str(path))
    assert [item.id for item in loaded] == ["a", "b"]
    assert loaded[1].language == "th"
    assert loaded[0].turns == (Turn(prompt="Say hi.", checks=({"type": "contains", "value": "hi"},)),)


def test_language_is_optional(tmp_path):
    record = conversation()
    del record["language"]
    assert load_suite(str(write_suite(tmp_path, [record])))[0].language == ""


def test_line_separators_inside_strings_do_not_split_lines(tmp_path):
    record = conversation(turns=[{"prompt": "one\u2028two", "checks": [{"type": "json"}]}])
    path = write_suite(tmp_path, [record, conversation("c-02")])
    assert [item.id for item in load_suite(str(path))] == ["c-01", "c-02"]


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"id": "x", "turns": [', ":1: not valid JSON: "),
        ("[1, 2]", ":1: a line must be a JSON object, got list"),
        ({"turns": []}, ":1: conversation lacks 'id'"),
        ({"id": "x"}, ":1: conversation lacks 'turns'"),
        (conversation(extra=1), ":1: conversation has unknown key 'extra'"),
        ('{"id": "a", "id": "b", "turns": []}', ":1: duplicate key 'id'"),
        (conversation(turns=[]), ":1: turns must be a non-empty list"),
        (conversation(turns={"prompt": "x"}), ":1: turns must be a non-empty list"),
        (conversation(turns=[{"prompt": "x"}]), ":1: turn 1 lacks 'checks'"),
        (conversation(turns=["hello"]), ":1: turn 1 must be an object"),
        (conversation(turns=[{"prompt": " ", "checks": [{"type": "json"}]}]), ":1: turn 1: prompt must be"),
        (conversation(turns=[{"prompt": "x", "checks": []}]), ":1: turn 1: checks must be a non-empty list"),
        (conversation(id=""), ":1: id must be 1-100 letters"),
        (conversation(id="has space"), ":1: id must be 1-100 letters"),
        (conversation(id=7), ":1: id must be 1-100 letters"),
        (conversation(language="french"), ":1: language must be an ISO 639-1 code"),
        ("[" * 100_000, ":1: JSON nested too deeply"),
    ],
)
def test_bad_lines_name_file_line_and_problem(tmp_path, line, problem):
    message = load_error(write_suite(tmp_path, [line]))
    assert problem in message


def test_bad_check_names_turn_and_check(tmp_path):
    turns = [
        {"prompt": "a", "checks": [{"type": "json"}]},
        {"prompt": "b", "checks": [{"type": "json"}, {"type": "regex", "value": "(a)\\1"}]},
    ]
    path = write_suite(tmp_path, [conversation("ok"), conversation("bad", turns=turns)])
    message = load_error(path)
    assert f"{path}:2: turn 2, check 2: regex: pattern does not compile under RE2" in message


def test_duplicate_ids_name_both_lines(tmp_path):
    path = write_suite(tmp_path, [conversation("same"), conversation("other"), conversation("same")])
    assert load_error(path) == f"{path}:3: duplicate id 'same', first on line 1"


def test_too_many_turns(tmp_path):
    turns = [{"prompt": f"turn {n}", "checks": [{"type": "json"}]} for n in range(21)]
    assert "21 turns, at most 20 allowed" in load_error(write_suite(tmp_path, [conversation(turns=turns)]))
    twenty = write_suite(tmp_path, [conversation(turns=turns[:20])], name="twenty.jsonl")
    assert len(load_suite(str(twenty))[0].turns) == 20


def test_too_many_conversations(tmp_path, monkeypatch):
    monkeypatch.setattr(suite_file, "MAX_CONVERSATIONS", 3)
    path = write_suite(tmp_path, [conversation(f"c-{n}") for n in range(4)])
    assert load_error(path) == f"{path}:4: more than 3 conversations"


def test_the_real_conversation_limit(tmp_path):
    lines = [conversation(f"c-{n}") for n in range(suite_file.MAX_CONVERSATIONS + 1)]
    path = write_suite(tmp_path, lines)
    assert load_error(path).endswith(f":{len(lines)}: more than 10000 conversations")


def test_file_over_ten_megabytes(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(b" " * (10 * 1024 * 1024 + 1))
    assert "over 10 MB" in load_error(path)


def test_endless_file_is_refused_without_reading_it_all():
    # /dev/zero reports size 0 and never ends; the reader must stop at the limit.
    assert "over 10 MB" in load_error("/dev/zero")


def test_missing_directory_empty_and_non_utf8_files(tmp_path):
    assert "no such suite file" in load_error(tmp_path / "absent.jsonl")
    assert "is a directory" in load_error(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert load_error(empty) == f"{empty}: no conversations"
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(json.dumps(conversation()).encode() + b"\n" + "café".encode("latin-1") + b"\n")
    assert load_error(latin1) == f"{latin1}:2: not UTF-8 text"


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(conversation()).encode())
    assert load_suite(str(path))[0].id == "c-01"


def test_no_partial_result_when_the_last_line_is_bad(tmp_path):
    path = write_suite(tmp_path, [conversation(f"c-{n}") for n in range(5)] + ["{broken"])
    assert ":6: not valid JSON" in load_error(path)
