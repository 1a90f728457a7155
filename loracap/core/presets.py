"""Named prompt presets: the built-in profiles' prompts and the user's own custom prompts.

A :class:`PromptPreset` is a name, a :class:`~loracap.core.prompts.Profile` and a prompt. The
built-in presets (:data:`BUILTIN_PRESETS`) are one per built-in profile, named by its label, and
read-only; user presets are custom prompts (``Profile.CUSTOM``) with a name the user chose.

User presets live in two places, both in one JSON format (:func:`presets_to_json`):

* the user's config folder (:func:`user_presets_path`, ``presets.json``), shared by every
  project -- :func:`load_user_presets` / :func:`save_user_presets`;
* a project, so that a project carries the prompts it was captioned with -- the project stores
  the text of :func:`presets_to_json` and reads it back with :func:`presets_from_json`.

:func:`merge_presets` gives the list a menu offers: the built-in ones, the user's, the
project's (a project preset overrides a user preset of the same name).

The format, version 1::

    {"version": 1, "presets": [{"name": "Facades", "prompt": "Describe the facade ..."}]}

Unknown keys are ignored (at the top and in each preset), so a later version can add some.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loracap.core.errors import InputError, LoraCapError
from loracap.core.prompts import (
    DEFAULT_LANGUAGE,
    Instructions,
    Profile,
    build_instructions,
)
from loracap.core.userdirs import user_dirs

logger = logging.getLogger(__name__)

#: Version of the JSON format written by :func:`presets_to_json`; a document of a higher
#: version is refused (it was written by a newer LoRACap).
PRESETS_FORMAT_VERSION = 1

#: Name of the user presets file in the user's config folder.
USER_PRESETS_FILE = "presets.json"

#: Limits of a preset, in characters (code points): a name fits a menu; a prompt of 4,000
#: characters is about 1,000 tokens, far more than a captioning prompt needs.
MAX_NAME_LENGTH = 60
MAX_PROMPT_LENGTH = 4_000

#: Control characters a prompt may not hold: C0 but tab, line feed and carriage return, DEL,
#: C1, and lone surrogates (not storable as UTF-8).
_PROMPT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def check_preset_name(name: str) -> str:
    """``name`` without surrounding whitespace when it can name a preset: 1 to
    :data:`MAX_NAME_LENGTH` printable characters (``str.isprintable``: no line breaks, tabs,
    control or invisible format characters). Raises :class:`InputError` saying what is wrong.
    Uniqueness is checked by :func:`check_presets`."""
    if not isinstance(name, str):
        raise InputError("A preset name must be text.")
    text = name.strip()
    if not text:
        raise InputError("A preset needs a name.")
    if len(text) > MAX_NAME_LENGTH:
        raise InputError(f'The preset name "{text[:MAX_NAME_LENGTH]}…" is too long '
                         f"({len(text)} characters; at most {MAX_NAME_LENGTH}).")
    if not text.isprintable():
        shown = "".join(ch if ch.isprintable() else "?" for ch in text)
        raise InputError(f'The preset name "{shown}" holds a line break, tab or control '
                         "character; use letters, digits, spaces and punctuation only.")
    return text


def check_preset_prompt(prompt: str, name: str = "") -> str:
    """``prompt`` without surrounding whitespace when it can be a preset's prompt: 1 to
    :data:`MAX_PROMPT_LENGTH` characters, line breaks and tabs allowed, no other control
    character. ``name`` (the preset's) is only used in the message. Raises
    :class:`InputError` saying what is wrong."""
    of = f' of the preset "{name}"' if name else ""
    if not isinstance(prompt, str):
        raise InputError(f"The prompt{of} must be text.")
    text = prompt.strip()
    if not text:
        raise InputError(f"The prompt{of} is empty. Write the instructions for the model.")
    if len(text) > MAX_PROMPT_LENGTH:
        raise InputError(f"The prompt{of} is too long ({len(text):,} characters; at most "
                         f"{MAX_PROMPT_LENGTH:,}).")
    if _PROMPT_CONTROL.search(text):
        raise InputError(f"The prompt{of} holds control characters; only text, line breaks "
                         "and tabs are allowed.")
    return text


@dataclass(frozen=True)
class PromptPreset:
    """A named prompt. ``profile`` is a built-in profile for the built-in presets and
    ``Profile.CUSTOM`` for the user's; ``prompt`` is the profile's prompt (built-in) or the
    user's instructions, without the one-line-answer rule :func:`build_instructions` adds.

    The name and prompt are stripped of surrounding whitespace and checked on construction
    (:func:`check_preset_name`, :func:`check_preset_prompt`); raises :class:`InputError`.
    """

    name: str
    profile: Profile
    prompt: str

    def __post_init__(self) -> None:
        name = check_preset_name(self.name)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "profile", Profile(self.profile))
        object.__setattr__(self, "prompt", check_preset_prompt(self.prompt, name))

    @property
    def builtin(self) -> bool:
        """True for a built-in (read-only) preset: one whose profile is not ``custom``."""
        return self.profile is not Profile.CUSTOM

    def instructions(self, *, language: str = DEFAULT_LANGUAGE) -> Instructions:
        """The instructions to caption with: the built-in profile's own, or the custom prompt,
        in ``language`` (:func:`~loracap.core.prompts.build_instructions`; raises
        :class:`InputError` for an unknown language)."""
        if self.builtin:
            return build_instructions(self.profile, language=language)
        return build_instructions(Profile.CUSTOM, self.prompt, language=language)


def user_preset(name: str, prompt: str) -> PromptPreset:
    """A user preset: ``prompt`` as a custom prompt named ``name``. Raises :class:`InputError`
    when the name or prompt breaks the rules of :class:`PromptPreset` (clashes are checked
    by :func:`check_presets`)."""
    return PromptPreset(name, Profile.CUSTOM, prompt)


#: One preset per built-in profile, named by the profile's label, with its English prompt.
BUILTIN_PRESETS: tuple[PromptPreset, ...] = tuple(
    PromptPreset(profile.label, profile, build_instructions(profile).prompt)
    # Multi-person is a way of captioning (detect, describe each person, the scene), not one
    # prompt: it is chosen as the project's profile, not offered as a preset.
    for profile in Profile
    if profile not in (Profile.CUSTOM, Profile.MULTI_PERSON, Profile.MULTI_PERSON_TAGS)
)

_BUILTIN_KEYS = frozenset(preset.name.casefold() for preset in BUILTIN_PRESETS)


def check_presets(presets: Iterable[PromptPreset]) -> list[PromptPreset]:
    """``presets`` as a list when they can be stored together: every one a custom prompt, no
    name used twice (ignoring case: ``casefold``) or equal to a built-in preset's name.
    Raises :class:`InputError` naming the first offending preset."""
    checked: list[PromptPreset] = []
    seen: set[str] = set()
    for preset in presets:
        if not isinstance(preset, PromptPreset):
            raise InputError("Only prompt presets can be stored.")
        key = preset.name.casefold()
        if key in _BUILTIN_KEYS:
            raise InputError(f'"{preset.name}" is the name of a built-in preset; choose '
                             "another name.")
        if preset.builtin:
            raise InputError(f'The preset "{preset.name}" uses the built-in profile '
                             f'"{preset.profile.label}"; only custom prompts can be stored.')
        if key in seen:
            raise InputError(f'Two presets are named "{preset.name}" (names are compared '
                             "ignoring case); rename one.")
        seen.add(key)
        checked.append(preset)
    return checked


def presets_to_json(presets: Sequence[PromptPreset]) -> str:
    """The JSON document (format version :data:`PRESETS_FORMAT_VERSION`, see the module
    docstring) holding ``presets`` in order, as UTF-8-ready text (non-ASCII kept). Raises
    :class:`InputError` when they cannot be stored together (:func:`check_presets`)."""
    document = {
        "version": PRESETS_FORMAT_VERSION,
        "presets": [{"name": p.name, "prompt": p.prompt} for p in check_presets(presets)],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def presets_from_json(text: str) -> list[PromptPreset]:
    """The presets of a document written by :func:`presets_to_json`, in order, all
    ``Profile.CUSTOM``. Checked strictly: the document is a JSON object whose ``presets`` is a
    list of objects, each with a text ``name`` and ``prompt`` following the rules of
    :class:`PromptPreset` and :func:`check_presets`; ``version``, when present, is an integer
    no higher than :data:`PRESETS_FORMAT_VERSION`. Unknown keys are ignored. Raises
    :class:`InputError` saying what is wrong (with the preset's position, from 1)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"The prompt presets are not valid JSON ({exc.msg} at line "
                         f"{exc.lineno}, column {exc.colno}).") from None
    except (ValueError, RecursionError):
        raise InputError("The prompt presets are not valid JSON.") from None
    if not isinstance(data, dict):
        raise InputError('The prompt presets must be a JSON object with a "presets" list.')
    version = data.get("version", PRESETS_FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError('The "version" of the prompt presets must be a positive integer.')
    if version > PRESETS_FORMAT_VERSION:
        raise InputError(f"The prompt presets were written by a newer LoRACap (format version "
                         f"{version}; this one reads up to {PRESETS_FORMAT_VERSION}). Update "
                         "LoRACap to use them.")
    items = data.get("presets")
    if not isinstance(items, list):
        raise InputError('The prompt presets must hold a "presets" list.')
    presets: list[PromptPreset] = []
    for number, item in enumerate(items, start=1):
        presets.append(_preset_from(item, number))
    try:
        return check_presets(presets)
    except InputError as exc:
        raise InputError(f"The prompt presets cannot be used: {exc}") from None


def _preset_from(item: Any, number: int) -> PromptPreset:
    where = f"Preset {number} of the prompt presets"
    if not isinstance(item, dict):
        raise InputError(f'{where} is not an object with a "name" and a "prompt".')
    name, prompt = item.get("name"), item.get("prompt")
    if not isinstance(name, str) or not isinstance(prompt, str):
        raise InputError(f'{where} needs a text "name" and a text "prompt".')
    try:
        return user_preset(name, prompt)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def user_presets_path() -> Path:
    """Where the user's presets are kept: ``presets.json`` in the user's config folder
    (:func:`loracap.core.userdirs.user_dirs`; ``LORACAP_HOME`` and portable mode apply)."""
    return user_dirs().settings / USER_PRESETS_FILE


def load_user_presets(path: Path | None = None) -> list[PromptPreset]:
    """The user's presets from ``path`` (default :func:`user_presets_path`); ``[]`` when the
    file does not exist. Never raises for a bad file: one that cannot be read logs a warning
    and gives ``[]``; one that is not a valid presets document (:func:`presets_from_json`, or
    not UTF-8) is renamed to ``presets.json.bad`` (replacing an older one) so the next save
    does not overwrite it, a warning is logged and ``[]`` is returned."""
    path = Path(path) if path is not None else user_presets_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        logger.warning("Could not read the prompt presets in %s (%s); none loaded", path, exc)
        return []
    try:
        return presets_from_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, InputError) as exc:
        bad = path.with_name(path.name + ".bad")
        try:
            os.replace(path, bad)
        except OSError as move_error:
            logger.warning("The prompt presets in %s are damaged (%s) and could not be set "
                           "aside (%s); none loaded", path, exc, move_error)
        else:
            logger.warning("The prompt presets in %s are damaged (%s); the file was kept as "
                           "%s and none were loaded", path, exc, bad)
        return []


def save_user_presets(presets: Sequence[PromptPreset], path: Path | None = None) -> Path:
    """Write ``presets`` (user presets: custom prompts) to ``path`` (default
    :func:`user_presets_path`), creating its folder, and return the path. Atomic: the
    document is written to a temporary file in the same folder, flushed to disk and moved over
    the old file (``os.replace``), so a crash leaves the old file or the new one, never half
    of one. Raises :class:`InputError` when the presets cannot be stored together
    (:func:`check_presets`; nothing is written) and :class:`LoraCapError` when the file
    cannot be written (the old file is kept)."""
    path = Path(path) if path is not None else user_presets_path()
    data = presets_to_json(presets).encode("utf-8")
    temp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                        suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
        temp = None
    except OSError as exc:
        raise LoraCapError(f"Could not save the prompt presets to {path} "
                           f"({exc.strerror or exc}). Check that the folder is writable and "
                           "the disk is not full.") from exc
    finally:
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass
    return path


def merge_presets(builtin: Iterable[PromptPreset], user: Iterable[PromptPreset],
                  project: Iterable[PromptPreset]) -> list[PromptPreset]:
    """The presets a menu offers, in order: ``builtin``, then the ``user`` presets that no
    project preset overrides, then the ``project`` presets. Names are compared ignoring case
    (``casefold``): a project preset replaces a user preset of the same name; a user or
    project preset named like a built-in one is left out, and within one list the first of
    a name wins (neither happens with lists from :func:`presets_from_json`)."""
    merged = list(builtin)
    taken = {preset.name.casefold() for preset in merged}
    project_list = _first_of_each_name(project, taken)
    project_keys = {preset.name.casefold() for preset in project_list}
    merged.extend(_first_of_each_name(user, taken | project_keys))
    merged.extend(project_list)
    return merged


def _first_of_each_name(presets: Iterable[PromptPreset], taken: set[str]) -> list[PromptPreset]:
    kept: list[PromptPreset] = []
    seen = set(taken)
    for preset in presets:
        key = preset.name.casefold()
        if key not in seen:
            seen.add(key)
            kept.append(preset)
    return kept
