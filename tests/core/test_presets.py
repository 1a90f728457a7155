"""Prompt presets: built-in ones, checks, the JSON format, the user's presets file, merging."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from loracap.core.errors import InputError, LoraCapError
from loracap.core.presets import (
    BUILTIN_PRESETS,
    MAX_NAME_LENGTH,
    MAX_PROMPT_LENGTH,
    PromptPreset,
    load_user_presets,
    merge_presets,
    presets_from_json,
    presets_to_json,
    save_user_presets,
    user_preset,
    user_presets_path,
)
from loracap.core.prompts import Profile, build_instructions

FACADES = user_preset("Facades", "Describe the facade: materials, windows, storeys.")
CHINESE = user_preset("\u5ba4\u5185 \u2013 \u00e9t\u00e9", "\u63cf\u8ff0\u623f\u95f4\u3002\n\u7b80\u77ed\u3002")


# --- built-in presets ------------------------------------------------------------------------


def test_one_builtin_preset_per_builtin_profile() -> None:
    assert [p.name for p in BUILTIN_PRESETS] == [
        "Interior space", "Person", "Booru tags", "Natural-language paragraph", "Short caption"]
    assert [p.profile for p in BUILTIN_PRESETS] == [
        Profile.SPACE, Profile.PERSON, Profile.TAGS, Profile.PARAGRAPH, Profile.SHORT]
    for preset in BUILTIN_PRESETS:
        assert preset.builtin
        assert preset.prompt == build_instructions(preset.profile).prompt
        assert preset.instructions() == build_instructions(preset.profile)


def test_presets_are_frozen() -> None:
    with pytest.raises(AttributeError):
        BUILTIN_PRESETS[0].prompt = "changed"  # type: ignore[misc]


def test_a_user_preset_is_a_custom_prompt() -> None:
    preset = user_preset("  Facades  ", "  Describe the facade.\n")
    assert preset == PromptPreset("Facades", Profile.CUSTOM, "Describe the facade.")
    assert not preset.builtin
    instructions = preset.instructions(language="de")
    assert instructions == build_instructions(Profile.CUSTOM, "Describe the facade.",
                                              language="de")
    assert instructions.prompt.startswith("Describe the facade.\n\nAnswer with the caption only")
    with pytest.raises(InputError, match="not a caption language"):
        preset.instructions(language="xx")


@pytest.mark.parametrize(("name", "message"), [
    ("", "needs a name"),
    ("   ", "needs a name"),
    ("x" * (MAX_NAME_LENGTH + 1), "too long"),
    ("two\nlines", "line break, tab or control character"),
    ("tab\there", "line break, tab or control character"),
    ("bell\x07", "line break, tab or control character"),
    ("evil\u202eexe", "line break, tab or control character"),
])
def test_bad_preset_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        user_preset(name, "Describe it.")


def test_names_up_to_the_limit_and_in_any_script_are_accepted() -> None:
    assert user_preset("x" * MAX_NAME_LENGTH, "p").name == "x" * MAX_NAME_LENGTH
    assert CHINESE.name == "\u5ba4\u5185 \u2013 \u00e9t\u00e9"


@pytest.mark.parametrize(("prompt", "message"), [
    ("", "is empty"),
    (" \n\t ", "is empty"),
    ("x" * (MAX_PROMPT_LENGTH + 1), r"too long \(4,001 characters; at most 4,000\)"),
    ("Describe\x00 it.", "control characters"),
    ("Describe \x1b[31mit", "control characters"),
    ("lone \ud800", "control characters"),
])
def test_bad_prompts_are_refused(prompt: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        user_preset("Mine", prompt)


def test_prompts_up_to_the_limit_with_lines_and_tabs_are_accepted() -> None:
    assert len(user_preset("Long", "x" * MAX_PROMPT_LENGTH).prompt) == MAX_PROMPT_LENGTH
    assert user_preset("Lines", "a\n\tb\r\nc").prompt == "a\n\tb\r\nc"


# --- the JSON format -------------------------------------------------------------------------


def test_presets_round_trip_through_json_in_order() -> None:
    presets = [CHINESE, FACADES]
    text = presets_to_json(presets)
    assert presets_from_json(text) == presets
    document = json.loads(text)
    assert document == {"version": 1, "presets": [
        {"name": CHINESE.name, "prompt": CHINESE.prompt},
        {"name": "Facades", "prompt": FACADES.prompt},
    ]}
    assert "\u5ba4\u5185" in text  # readable, not \\u-escaped
    assert presets_from_json(presets_to_json([])) == []


def test_unknown_keys_are_ignored() -> None:
    text = json.dumps({"version": 1, "future": True, "presets": [
        {"name": "Facades", "prompt": FACADES.prompt, "colour": "red", "profile": "tags"}]})
    assert presets_from_json(text) == [FACADES]
    # a document without a version is read as version 1
    assert presets_from_json('{"presets": []}') == []


@pytest.mark.parametrize(("text", "message"), [
    ("", r"not valid JSON \(Expecting value at line 1, column 1\)"),
    ('{"presets": [', "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ("[]", 'must be a JSON object with a "presets" list'),
    ('"text"', 'must be a JSON object with a "presets" list'),
    ("{}", 'must hold a "presets" list'),
    ('{"presets": {"name": "a"}}', 'must hold a "presets" list'),
    ('{"version": 2, "presets": []}', r"newer LoRACap \(format version 2; this one reads up to 1\)"),
    ('{"version": "1", "presets": []}', "must be a positive integer"),
    ('{"version": true, "presets": []}', "must be a positive integer"),
    ('{"version": 0, "presets": []}', "must be a positive integer"),
    ('{"presets": ["Facades"]}', 'Preset 1 of the prompt presets is not an object'),
    ('{"presets": [{"name": "a", "prompt": "p"}, {"name": "b"}]}',
     'Preset 2 of the prompt presets needs a text "name" and a text "prompt"'),
    ('{"presets": [{"name": 5, "prompt": "p"}]}', 'needs a text "name"'),
    ('{"presets": [{"name": "", "prompt": "p"}]}', "Preset 1 of the prompt presets: A preset "
                                                   "needs a name"),
    ('{"presets": [{"name": "a", "prompt": " "}]}', 'The prompt of the preset "a" is empty'),
    (json.dumps({"presets": [{"name": "n" * 61, "prompt": "p"}]}), "too long"),
    (json.dumps({"presets": [{"name": "a", "prompt": "p" * 4001}]}), "too long"),
    ('{"presets": [{"name": "Facades", "prompt": "p"}, {"name": "FACADES", "prompt": "q"}]}',
     'Two presets are named "FACADES"'),
    ('{"presets": [{"name": "booru TAGS", "prompt": "p"}]}',
     '"booru TAGS" is the name of a built-in preset'),
])
def test_a_bad_document_is_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        presets_from_json(text)


def test_only_custom_prompts_with_free_names_can_be_written() -> None:
    with pytest.raises(InputError, match="name of a built-in preset"):
        presets_to_json([BUILTIN_PRESETS[0]])
    with pytest.raises(InputError, match="only custom prompts can be stored"):
        presets_to_json([PromptPreset("My tags", Profile.TAGS, "Tag it.")])
    with pytest.raises(InputError, match='Two presets are named "facades"'):
        presets_to_json([FACADES, user_preset("facades", "other")])
    with pytest.raises(InputError, match="name of a built-in preset"):
        presets_to_json([user_preset("Person", "Describe the person.")])


# --- the user's presets file ------------------------------------------------------------------


def test_user_presets_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config" / "presets.json"
    assert load_user_presets(path) == []  # no file yet
    assert save_user_presets([FACADES, CHINESE], path) == path  # the folder is created
    assert load_user_presets(path) == [FACADES, CHINESE]
    assert json.loads(path.read_text(encoding="utf-8"))["presets"][0]["name"] == "Facades"
    save_user_presets([CHINESE], path)
    assert load_user_presets(path) == [CHINESE]
    assert sorted(p.name for p in path.parent.iterdir()) == ["presets.json"]  # no temp files


def test_the_default_file_is_in_the_user_config_folder(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORACAP_HOME", str(tmp_path))
    assert user_presets_path() == tmp_path / "settings" / "presets.json"
    save_user_presets([FACADES])
    assert (tmp_path / "settings" / "presets.json").is_file()
    assert load_user_presets() == [FACADES]


@pytest.mark.parametrize("content", [
    b"{not json", b'{"presets": [{"name": "", "prompt": "p"}]}', b"\xff\xfe\x00garbage",
    b'{"version": 9, "presets": []}',
])
def test_a_damaged_file_is_kept_aside_and_nothing_loaded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes) -> None:
    path = tmp_path / "presets.json"
    path.write_bytes(content)
    (tmp_path / "presets.json.bad").write_bytes(b"older damage")
    with caplog.at_level(logging.WARNING, logger="loracap.core.presets"):
        assert load_user_presets(path) == []
    assert not path.exists()
    assert (tmp_path / "presets.json.bad").read_bytes() == content
    assert "damaged" in caplog.text and "presets.json.bad" in caplog.text
    save_user_presets([FACADES], path)  # the next save starts a fresh file
    assert load_user_presets(path) == [FACADES]
    assert (tmp_path / "presets.json.bad").read_bytes() == content


def test_an_unreadable_file_gives_no_presets_and_is_left_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "presets.json"
    path.mkdir()  # reading a folder fails with an OSError
    with caplog.at_level(logging.WARNING, logger="loracap.core.presets"):
        assert load_user_presets(path) == []
    assert path.is_dir() and not (tmp_path / "presets.json.bad").exists()
    assert "Could not read the prompt presets" in caplog.text


def test_saving_invalid_presets_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "presets.json"
    save_user_presets([FACADES], path)
    before = path.read_bytes()
    with pytest.raises(InputError, match="Two presets"):
        save_user_presets([FACADES, FACADES], path)
    assert path.read_bytes() == before


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "presets.json"
    save_user_presets([FACADES], path)
    before = path.read_bytes()

    def disk_full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(LoraCapError, match="Could not save the prompt presets .*No space left"):
        save_user_presets([CHINESE], path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["presets.json"]


def test_saving_into_a_file_instead_of_a_folder_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "config"
    blocker.write_text("a file")
    with pytest.raises(LoraCapError, match="Could not save the prompt presets"):
        save_user_presets([FACADES], blocker / "presets.json")


# --- merging ---------------------------------------------------------------------------------


def test_merge_gives_builtin_then_user_then_project_presets() -> None:
    mine = user_preset("Mine", "my prompt")
    shared = user_preset("Facades", "the user's facade prompt")
    project_facades = user_preset("FACADES", "the project's facade prompt")
    project_only = user_preset("Project", "project prompt")
    merged = merge_presets(BUILTIN_PRESETS, [shared, mine], [project_facades, project_only])
    assert merged == [*BUILTIN_PRESETS, mine, project_facades, project_only]


def test_merge_leaves_out_builtin_names_and_repeats() -> None:
    fake_builtin = user_preset("short CAPTION", "not the real one")
    first, again = user_preset("Mine", "first"), user_preset("mine", "second")
    merged = merge_presets(BUILTIN_PRESETS, [fake_builtin, first, again], [fake_builtin])
    assert merged == [*BUILTIN_PRESETS, first]
    assert merge_presets([], [], []) == []
