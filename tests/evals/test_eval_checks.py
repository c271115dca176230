"""The checks a suite verifies on one answer: each type passes, fails, and holds at its edges."""

from __future__ import annotations

import time
import unicodedata

import pytest

from evals.checks import (
    CHECK_TYPES,
    LANGUAGE_CODES,
    MIN_LETTERS_FOR_LANGUAGE,
    CheckResult,
    count_bullets,
    count_words,
    run_check,
    validate_check,
)


def check(kind, value=None, **extra):
    spec = {"type": kind, **extra}
    if value is not None:
        spec["value"] = value
    return spec


def passes(answer, spec) -> bool:
    return run_check(answer, spec).passed


def test_check_types_cover_the_issue():
    required = {"contains", "not_contains", "regex", "max_words", "min_words"}
    required |= {"bullets", "json", "language", "ends_with"}
    assert required <= set(CHECK_TYPES)


def test_result_carries_type_and_one_line_detail():
    result = run_check("one two three four", check("max_words", 3))
    assert result == CheckResult(type="max_words", passed=False, detail="4 words, at most 3 allowed")


# ---- contains / not_contains ------------------------------------------------------------------


def test_contains_is_case_insensitive_by_default():
    assert passes("We walked to PARIS.", check("contains", "paris"))
    assert not passes("We walked to PARIS.", check("contains", "paris", case_sensitive=True))
    assert passes("We walked to Paris.", check("contains", "Paris", case_sensitive=True))


def test_contains_matches_whole_words_only():
    assert not passes("Every day counts.", check("contains", "very"))
    assert passes("Very well, very.", check("contains", "very"))
    assert passes("l'été arrive", check("contains", "été"))
    assert passes("Use a headlamp, e.g. a light one.", check("contains", "e.g."))


def test_contains_a_phrase_and_punctuation_edges():
    assert passes("Ich empfehle die Ummeldung beim Amt.", check("contains", "die Ummeldung"))
    assert passes("Price: 12,50 €!", check("contains", "€"))


def test_contains_normalises_unicode():
    decomposed = unicodedata.normalize("NFD", "Fourvière")
    assert decomposed != "Fourvière"
    assert passes(f"Montez à {decomposed}.", check("contains", "Fourvière"))
    assert passes("Montez à Fourvière.", check("contains", decomposed))


def test_contains_casefolds_beyond_ascii():
    assert passes("DIE STRASSE IST LANG", check("contains", "straße"))
    assert passes("ΟΔΥΣΣΕΥΣ", check("contains", "οδυσσευς"))


def test_contains_in_scripts_without_spaces():
    assert passes("ไปเที่ยวดอยสุเทพกันเถอะ", check("contains", "ดอยสุเทพ"))
    assert passes("我想去北京旅游", check("contains", "北京"))


def test_contains_respects_devanagari_vowel_signs():
    # "है" is ह plus a vowel sign: ह alone is not a word there.
    assert not passes("यह अच्छा है", check("contains", "ह"))
    assert passes("पूरे दिन हवा महल देखा", check("contains", "हवा महल"))


def test_not_contains_is_the_opposite_of_contains():
    for answer in ("Every day.", "Very good.", "", "VERY"):
        assert passes(answer, check("not_contains", "very")) != passes(answer, check("contains", "very"))
    result = run_check("This is very nice.", check("not_contains", "very"))
    assert result.detail == "contains 'very', which is not allowed"


def test_empty_answer():
    assert not passes("", check("contains", "x"))
    assert passes("", check("not_contains", "x"))
    assert passes("", check("max_words", 0))
    assert not passes("", check("min_words", 1))
    assert passes("", check("bullets", 0))
    assert not passes("", check("json"))
    assert not passes("", check("ends_with", "x"))
    assert not passes("", check("regex", "a"))
    assert run_check("", check("language", "en")).detail.startswith("too short")


# ---- ends_with --------------------------------------------------------------------------------


def test_ends_with_ignores_trailing_whitespace_and_case():
    assert passes("Pack light.\nHave a great hike!  \n\n", check("ends_with", "Have a great hike!"))
    assert passes("HAVE A GREAT HIKE!", check("ends_with", "have a great hike!"))
    assert not passes("HAVE A GREAT HIKE!", check("ends_with", "have a great hike!", case_sensitive=True))


def test_ends_with_fails_on_anything_after_the_value():
    result = run_check("Have a great hike! See you.", check("ends_with", "Have a great hike!"))
    assert not result.passed
    assert "See you." in result.detail
    assert not passes("**Have a great hike!**", check("ends_with", "Have a great hike!"))


def test_ends_with_needs_a_word_start():
    assert passes("Cordialement,\nJulie", check("ends_with", "Julie"))
    assert not passes("Signed, Marjulie", check("ends_with", "Julie"))
    assert passes("ขอลาพักร้อนสามวัน ขอบคุณครับ", check("ends_with", "ขอบคุณครับ"))


# ---- regex ------------------------------------------------------------------------------------


def test_regex_searches_anywhere():
    assert passes("Deadline: 2025-02-14, firm.", check("regex", r"\b\d{4}-\d{2}-\d{2}\b"))
    assert not passes("Deadline: 14 Feb 2025.", check("regex", r"\b\d{4}-\d{2}-\d{2}\b"))
    assert (
        run_check("<<The Gull>>\nOnce...", check("regex", r"<<[^<>\n]+>>")).detail == "matches '<<The Gull>>'"
    )


def test_regex_flags_are_inline():
    assert not passes("intro\nAssunto: férias", check("regex", r"^Assunto: \S"))
    assert passes("intro\nAssunto: férias", check("regex", r"(?m)^Assunto: \S"))
    assert passes("PARIS", check("regex", r"(?i)paris"))


def test_regex_matches_unicode_text():
    assert passes("สวัสดีครับ", check("regex", r"^\p{Thai}+$"))
    assert passes("Fourvière", check("regex", unicodedata.normalize("NFD", "è")))


def test_pathological_regex_runs_in_linear_time():
    started = time.perf_counter()
    result = run_check("a" * 200_000 + "!", check("regex", r"(a+)+$"))
    assert not result.passed
    assert time.perf_counter() - started < 2.0  # backtracking engines take longer than the universe


@pytest.mark.parametrize(
    "pattern, reason",
    [
        (r"(?:a{1000}){1000}", "invalid repetition size"),
        (r"(a)\1", "invalid escape sequence"),
        (r"(?<=a)b", "invalid perl operator"),
        ("[", "missing ]"),
        ("a" * 501, "over 500 characters"),
    ],
)
def test_regex_refuses_patterns_it_cannot_bound(pattern, reason):
    with pytest.raises(ValueError, match="regex: ") as raised:
        validate_check(check("regex", pattern))
    assert reason in str(raised.value)
    assert "\n" not in str(raised.value)


# ---- word counts ------------------------------------------------------------------------------


def test_words_ignore_punctuation_and_keep_contractions():
    assert count_words("Don't stop — it's 3.5 km!") == 5
    assert count_words("  ...  !!! ") == 0


def test_word_limits_are_inclusive():
    answer = "one two three"
    assert passes(answer, check("max_words", 3)) and not passes(answer, check("max_words", 2))
    assert passes(answer, check("min_words", 3)) and not passes(answer, check("min_words", 4))
    assert run_check(answer, check("min_words", 4)).detail == "3 words, at least 4 required"


def test_thai_words_are_segmented_by_dictionary():
    # Thai writes no spaces between words: a count of space-separated runs would say 2.
    assert count_words("สวัสดีครับ วันนี้อากาศดีมาก") == 7
    assert not passes("สวัสดีครับ วันนี้อากาศดีมาก", check("max_words", 6))


def test_hindi_words_keep_their_vowel_signs():
    # Splitting at non-letters would cut नमस्ते at its vowel signs and count far more.
    assert count_words("नमस्ते, आज मौसम बहुत अच्छा है।") == 6


def test_chinese_and_japanese_words():
    assert count_words("我今天想去海边散步。") == 5
    assert count_words("今日は海に行きたいです。") == 7


# ---- bullets ----------------------------------------------------------------------------------


def test_bullet_markers_count_exactly():
    answer = "Pack:\n- boots\n* socks\n• map\n1. water\n2) snacks\n"
    assert count_bullets(answer) == 5
    assert passes(answer, check("bullets", 5))
    assert not passes(answer, check("bullets", 4))
    assert run_check(answer, check("bullets", 6)).detail == "5 bullet points, exactly 6 required"


def test_nested_items_count_and_lookalikes_do_not():
    answer = "- outer\n  - inner\n-5 degrees at night\n**Bold title**\n*emphasis*\n2024 was cold\n12.5 km\n"
    assert count_bullets(answer) == 2


def test_thematic_breaks_and_code_are_not_bullets():
    answer = "- one\n* * *\n---\n```\n- not an item\n1. nor this\n```\n- two\n"
    assert count_bullets(answer) == 2


def test_numbered_items_with_many_digits_and_crlf():
    answer = "\r\n".join(f"{n}. step" for n in range(1, 13))
    assert count_bullets(answer) == 12
    assert count_bullets("1000. not a list item") == 0


# ---- json -------------------------------------------------------------------------------------


def test_json_plain_and_fenced():
    assert passes('{"a": 1}', check("json"))
    assert passes("  [1, 2]\n", check("json"))
    assert passes('```json\n{"a": 1}\n```', check("json"))
    assert passes('```JSON\n{"a": 1}\n```\n', check("json"))
    assert passes('```\n{"a": 1}\n```', check("json"))


def test_json_fails_with_text_around_or_two_blocks():
    assert not passes('Here you go:\n```json\n{"a": 1}\n```', check("json"))
    assert not passes('```json\n{"a": 1}\n```\n```json\n{"b": 2}\n```', check("json"))
    result = run_check('{"a": 1,}', check("json"))
    assert not result.passed and result.detail.startswith("not JSON: ")


def test_json_required_keys():
    spec = check("json", ["zutaten", "schritte"])
    assert passes('{"zutaten": [], "schritte": [], "extra": 1}', spec)
    assert run_check('{"zutaten": []}', spec).detail == "JSON object lacks keys ['schritte']"
    assert run_check('[{"zutaten": [], "schritte": []}]', spec).detail.startswith("JSON array, an object")
    assert passes('{"सामग्री": [], "विधि": []}', check("json", ["सामग्री", "विधि"]))


def test_json_hostile_inputs_fail_cleanly():
    assert run_check("[" * 100_000 + "]" * 100_000, check("json")).detail == "not JSON: nested too deeply"
    assert not passes("9" * 10_000, check("json"))  # Python refuses integers this long
    assert not passes("NaN", check("json", ["a"]))


# ---- language ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, answer",
    [
        ("en", "Here is a short packing list for your weekend in the mountains."),
        ("fr", "Voici une liste des ingrédients pour préparer des crêpes sans lait."),
        ("de", "Hier ist eine Checkliste für deinen Umzug im nächsten Monat."),
        ("th", "นี่คือสูตรต้มยำกุ้งง่ายๆ ที่ทำได้ที่บ้าน"),
        ("hi", "यह घर पर बनाने के लिए एक आसान दाल की विधि है।"),
        ("vi", "Đây là công thức nấu phở bò đơn giản tại nhà."),
    ],
)
def test_language_identified(code, answer):
    result = run_check(answer, check("language", code))
    assert result.passed, result.detail
    assert not passes(answer, check("language", "es"))


def test_language_mismatch_says_what_it_found():
    result = run_check("Aquí tienes una receta sencilla de tortilla de patatas.", check("language", "pt"))
    assert not result.passed
    assert result.detail.startswith("detected es (")


def test_indonesian_is_not_failed_for_looking_malay():
    answer = "Saya suka makan nasi goreng setiap pagi bersama keluarga saya."
    result = run_check(answer, check("language", "id"))
    assert result.passed, result.detail


def test_language_needs_enough_letters():
    short = "Oui, bien sûr."  # 10 letters
    result = run_check(short, check("language", "fr"))
    assert not result.passed
    assert result.detail == f"too short to tell the language (10 letters, {MIN_LETTERS_FOR_LANGUAGE} needed)"
    assert not passes("12345 67890 !!! ??? 2025-01-01 12:30", check("language", "en"))


def test_language_codes_match_the_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    labels = LanguageIdentifier.from_model_file(MODEL_FILE).labels
    assert {label for label in labels if len(label) == 2} == LANGUAGE_CODES


# ---- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"type": "shout"}, "unknown check type 'shout'"),
        ({"value": 3}, "unknown check type None"),
        ("contains", "a check must be an object, got str"),
        ({"type": "contains"}, "contains: value must be a non-empty string"),
        ({"type": "contains", "value": "  "}, "contains: value must be a non-empty string"),
        ({"type": "ends_with", "value": 5}, "ends_with: value must be a non-empty string"),
        ({"type": "max_words", "value": -1}, "max_words: value must be a non-negative integer, got -1"),
        ({"type": "min_words", "value": 2.5}, "min_words: value must be a non-negative integer, got 2.5"),
        ({"type": "bullets", "value": True}, "bullets: value must be a non-negative integer, got True"),
        ({"type": "bullets", "value": "3"}, "bullets: value must be a non-negative integer, got '3'"),
        ({"type": "language", "value": "xx"}, "language: value must be a known lowercase ISO 639-1 code"),
        ({"type": "language", "value": "FR"}, "language: value must be a known lowercase ISO 639-1 code"),
        ({"type": "language", "value": "fra"}, "language: value must be a known lowercase ISO 639-1 code"),
        ({"type": "json", "value": "yes"}, "json: value must be omitted or a list of required key names"),
        ({"type": "contains", "value": "a", "case_sensitive": "no"}, "contains: case_sensitive must be"),
        ({"type": "regex", "value": "a", "case_sensitive": True}, "regex: unknown key 'case_sensitive'"),
        ({"type": "contains", "value": "a", "vaule": "b"}, "contains: unknown key 'vaule'"),
    ],
)
def test_bad_checks_give_one_clear_line(spec, message):
    with pytest.raises(ValueError) as raised:
        validate_check(spec)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_run_check_refuses_a_bad_check_and_a_non_string_answer():
    with pytest.raises(ValueError, match="unknown check type"):
        run_check("text", {"type": "nope"})
    with pytest.raises(ValueError, match="answer must be a string"):
        run_check(None, check("contains", "x"))


def test_every_type_accepts_a_well_formed_check():
    examples = {
        "contains": "a",
        "not_contains": "a",
        "regex": "a",
        "max_words": 0,
        "min_words": 1,
        "bullets": 2,
        "json": None,
        "language": "tl",
        "ends_with": "!",
    }
    assert set(examples) == set(CHECK_TYPES)
    for kind, value in examples.items():
        validate_check(check(kind, value))


def test_details_and_errors_stay_on_one_short_line():
    pattern = "line one\nline two"
    assert "\n" not in run_check("nothing", check("regex", pattern)).detail
    assert "\n" not in run_check("x\n" * 50, check("ends_with", "end")).detail
    with pytest.raises(ValueError) as raised:
        validate_check(check("regex", "(\n" * 100))
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 200
    with pytest.raises(ValueError) as raised:
        validate_check({"type": "x" * 10_000})
    assert len(str(raised.value)) < 200
