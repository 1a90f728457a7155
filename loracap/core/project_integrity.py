"""The checks of a project file, all read-only: a project file is checked as strictly as the
user's input when opened: its header (an SQLite file with LoRACap's application id and a format
version), its tables and columns for that format, the settings (trigger word, prefix template,
tag separator, profile, backend settings, answer labels and schema), the images (path,
validity, sizes, review mark, rating), the captions (provenance, text), the parts of
multi-person captions, the question-answer pairs and their versions, the stored times and the
lock. A file that fails is refused with one :class:`~loracap.core.errors.ProjectError` ("… is
damaged: …"), never half-read. A stored undo step is checked the same way when it is used
(:func:`_undo_entries`).

The value checks here are shared with the input they mirror: :class:`~loracap.core.project.Project`
checks a new project's or a changed setting's profile, tag separator, backend and
question-answer settings with the same functions (:func:`_check_profile`,
:func:`_check_separator`, :func:`_checked_backend_settings`, :func:`_checked_qa_settings`).
Image paths that leave the project folder are flagged by
:func:`loracap.core.image_rows.leaves_folder`.

The tables and columns of each format come from :mod:`loracap.core.tables`, the plain
description of :mod:`loracap.core.schema`: this module imports no SQLAlchemy, and the modules
of its value rules are light (:mod:`loracap.core.profiles`, :mod:`loracap.core.alias_rules`;
:mod:`loracap.core.presets` only for a project with presets of its own), so that
:class:`~loracap.core.project_reader.ProjectReader` (``loracap info``) checks a file as
:meth:`~loracap.core.project.Project.open` does, with the same functions
(:func:`checked_version`, :func:`_inspect`), in a fraction of the time.

Used only by :mod:`loracap.core.project`, its parts and :mod:`loracap.core.project_reader`;
the rest of the program opens a project through :meth:`~loracap.core.project.Project.open`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from loracap.core.alias_rules import validate_aliases
from loracap.core.backends.registry import BACKENDS, backend_info, check_backend_options
from loracap.core.backends.urls import check_base_url
from loracap.core.errors import InputError, ProjectError, ProjectVersionError, TriggerWordError
from loracap.core.image_rows import read_only_uri
from loracap.core.profiles import LANGUAGES, Profile, check_language
from loracap.core.records import PART_KINDS, Provenance, Review, readable_path
from loracap.core.tables import (
    APPLICATION_ID,
    DATETIME,
    NO_PRESETS,
    SCHEMA_VERSION,
    TABLES,
    expected_tables,
    fs_decode,
)
from loracap.core.trigger import validate_prefix_template, validate_trigger

#: SQLite's URI that opens a file read-only (:func:`loracap.core.image_rows.read_only_uri`).
_read_only_uri = read_only_uri


def _check_header(path: Path) -> int:
    """Return the schema version of a project file, or raise :class:`ProjectError`."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(16)
    except OSError as exc:
        raise ProjectError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    if magic != b"SQLite format 3\x00":
        raise ProjectError(f"{path.name} is not a LoRACap project file.")
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise ProjectError(f"{path.name} is damaged or not a project file: {exc}") from exc
    if app_id != APPLICATION_ID:
        raise ProjectError(f"{path.name} is an SQLite file but not a LoRACap project.")
    return int(version)


def checked_version(path: Path) -> int:
    """The project format (``PRAGMA user_version``, 1 to
    :data:`~loracap.core.tables.SCHEMA_VERSION`) of the file at the absolute ``path``, once
    its header shows a LoRACap project this version reads: the first checks of every opening
    (:meth:`~loracap.core.project.Project.open`,
    :meth:`~loracap.core.project_reader.ProjectReader.open`), before :func:`_inspect`. Raises
    :class:`ProjectError` (no file, not a project, damaged, no format version) and
    :class:`ProjectVersionError` (a newer format)."""
    if not path.is_file():
        raise ProjectError(f"No project file at {path}.")
    version = _check_header(path)
    if version > SCHEMA_VERSION:
        raise ProjectVersionError(
            f"{path.name} was saved by a newer LoRACap (project format {version}; this "
            f"version reads up to {SCHEMA_VERSION}). Update LoRACap to open it."
        )
    if version < 1:
        raise ProjectError(_damaged(path, f"it has no project format version "
                                          f"(user_version {version})"))
    return version


# ---------------------------------------------------------------------- checks of a file's values

#: The orders of people in a multi-person caption (``project.people_order``).
PEOPLE_ORDERS = ("left", "size")

_PROFILES = frozenset(profile.value for profile in Profile)
_REVIEWS = frozenset(review.value for review in Review)
_PROVENANCES = frozenset(provenance.value for provenance in Provenance)
#: Where a question-answer pair's text comes from (a pair is never imported).
_QA_PROVENANCES = frozenset(p.value for p in (Provenance.GENERATED, Provenance.EDITED,
                                              Provenance.MANUAL))

#: The longest answer label (``project.qa_labels``), in characters.
MAX_LABEL_LENGTH = 200


def _shown(value: object, limit: int = 60) -> str:
    """A stored value quoted for a message: printable (control characters and undecodable
    bytes escaped) and at most ``limit`` characters."""
    text = readable_path(value if isinstance(value, str) else repr(value))
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return f'"{text}"'


def _damaged(path: Path, detail: str) -> str:
    """The message of a project file whose contents fail the checks."""
    return (f"{path.name} is damaged: {detail}. LoRACap did not open it and changed nothing; "
            "use a backup copy, or start a new project from the photo folder.")


def _check_profile(profile: str) -> str:
    """Return ``profile`` if it is a caption profile's value, else raise :class:`InputError`."""
    if profile not in _PROFILES:
        raise InputError(f"Unknown caption profile {_shown(profile)}; choose one of "
                         f"{', '.join(p.value for p in Profile)}.")
    return profile


def _checked_backend_settings(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The backend settings among ``changes``, checked and in their stored form (the options
    as JSON text). Raises :class:`InputError`."""
    checked: dict[str, Any] = {}
    if "backend" in changes:
        checked["backend"] = backend_info(str(changes["backend"])).name
    if "base_url" in changes:
        checked["base_url"] = check_base_url(str(changes["base_url"]))
    if "language" in changes:
        checked["language"] = check_language(str(changes["language"]))
    if "backend_options" in changes:
        options = changes["backend_options"]
        checked["backend_options"] = json.dumps(check_backend_options(
            options if isinstance(options, (str, Mapping)) else {}), sort_keys=True)
    if "prompt_presets" in changes:
        presets = str(changes["prompt_presets"])
        _check_presets(presets)
        checked["prompt_presets"] = presets
    if "aliases" in changes:
        aliases = changes["aliases"]
        listed = _text_list(aliases, "aliases") if isinstance(aliases, str) else list(aliases)
        checked["aliases"] = json.dumps(validate_aliases(listed), ensure_ascii=False)
    if "detector" in changes:
        detector = str(changes["detector"]).strip()
        if detector and (len(f"{detector}.".splitlines()) > 1 or "\0" in detector):
            raise InputError("The person detector's path holds a line break or NUL.")
        checked["detector"] = detector
    if "people_order" in changes:
        order = str(changes["people_order"])
        if order not in PEOPLE_ORDERS:
            raise InputError(f"The order of people must be one of {', '.join(PEOPLE_ORDERS)}, "
                             f"not {order!r}.")
        checked["people_order"] = order
    return checked


def _check_presets(text: str) -> None:
    """Check stored prompt presets with :func:`loracap.core.presets.presets_from_json`
    (raises :class:`InputError`). The stored default (:data:`~loracap.core.tables.NO_PRESETS`:
    no presets of the project's own) passes without it: the presets module builds every
    profile's prompt when imported, which a project without presets need not wait for."""
    if text == NO_PRESETS:
        return
    from loracap.core.presets import presets_from_json

    presets_from_json(text)


def _text_list(text: str, what: str) -> list[str]:
    """A list of texts stored as JSON (the aliases, the answer labels); raises
    :class:`InputError` ("The ``what`` are not a JSON list of texts.") otherwise."""
    try:
        loaded = json.loads(text)
    except ValueError:
        loaded = None
    if not isinstance(loaded, list) or not all(isinstance(a, str) for a in loaded):
        raise InputError(f"The {what} are not a JSON list of texts.")
    return loaded


def _checked_qa_settings(changes: Mapping[str, Any]) -> dict[str, str]:
    """The question-answer settings among ``changes`` in their stored form; raises
    :class:`InputError` for values that cannot be used.

    ``qa_labels``: a list of labels (or its JSON text): each one line of at most
    :data:`MAX_LABEL_LENGTH` characters, not empty, surrounding spaces removed, no two the same
    ignoring case; stored as a JSON list. ``qa_schema``: the JSON schema a ``custom_format``
    answer must follow, as JSON text (or a mapping) that must be a JSON object, or ``""`` for
    none. Only its shape is checked here; answers are checked against it where they are made.
    """
    checked: dict[str, str] = {}
    if "qa_labels" in changes:
        labels = changes["qa_labels"]
        listed = _text_list(labels, "answer labels") if isinstance(labels, str) else list(labels)
        checked["qa_labels"] = json.dumps(_check_labels(listed), ensure_ascii=False)
    if "qa_schema" in changes:
        schema = changes["qa_schema"]
        if isinstance(schema, Mapping):
            schema = json.dumps(schema, ensure_ascii=False, indent=2)
        checked["qa_schema"] = _check_schema(str(schema))
    return checked


def _check_labels(labels: list[Any]) -> list[str]:
    """``labels`` with surrounding spaces removed, if every one can be an answer label (see
    :func:`_checked_qa_settings`); raises :class:`InputError`."""
    checked: list[str] = []
    seen: set[str] = set()
    for raw in labels:
        if not isinstance(raw, str):
            raise InputError(f"The answer label {_shown(raw)} is not text.")
        label = raw.strip()
        if not label:
            raise InputError("An answer label is empty.")
        if len(f"{label}.".splitlines()) > 1 or "\0" in label:
            raise InputError(f"The answer label {_shown(label)} holds a line break or NUL.")
        if len(label) > MAX_LABEL_LENGTH:
            raise InputError(f"The answer label {_shown(label)} is longer than "
                             f"{MAX_LABEL_LENGTH} characters.")
        if label.casefold() in seen:
            raise InputError(f"The answer label {_shown(label)} is listed twice (labels are "
                             "compared ignoring case).")
        seen.add(label.casefold())
        checked.append(label)
    return checked


def _check_schema(text: str) -> str:
    """``text`` if it is ``""`` (no schema; spaces alone count as none) or a JSON object;
    raises :class:`InputError` with the JSON parser's position otherwise."""
    if not text.strip():
        return ""
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise InputError(f"The answer schema is not valid JSON ({exc}).") from exc
    if not isinstance(loaded, dict):
        raise InputError("The answer schema must be a JSON object ({\"type\": …}).")
    return text


def _check_separator(separator: str) -> str:
    """Return ``separator`` if it can separate tags: not empty, on one line (tags.txt and the
    captions are read line by line). Raises :class:`InputError`."""
    if not separator:
        raise InputError("The tag separator is empty; use a character such as a comma.")
    if len(f"{separator}.".splitlines()) > 1:
        raise InputError("The tag separator contains a line break; use a character such as a "
                         "comma.")
    return separator


def _inspect(path: Path, version: int) -> None:
    """Check a project file of format ``version`` as strictly as the user's input: its tables
    and columns, the settings (trigger word, prefix template, tag separator, profile), the
    images (path, validity, sizes, review mark, rating), the captions (provenance, text) and
    the lock. Read-only. Raises :class:`ProjectError` ("… is damaged: …") on the first problem,
    or when the file cannot be read."""
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True)
    except sqlite3.DatabaseError as exc:
        raise ProjectError(f"Cannot read {path.name}: {exc}.") from exc
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        problem = _first_problem(conn, version)
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "unable to open" in text:
            raise ProjectError(f"Cannot read {path.name}: {text}.") from exc
        problem = f"it cannot be read ({readable_path(text)})"
    except sqlite3.DatabaseError as exc:
        problem = f"it cannot be read ({readable_path(str(exc))})"
    finally:
        conn.close()
    if problem:
        raise ProjectError(_damaged(path, problem))


def _first_problem(conn: sqlite3.Connection, version: int) -> str:
    """What is wrong with the file behind ``conn``, or ``""``; see :func:`_inspect`."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for table, columns in expected_tables(version).items():
        if table not in tables:
            return f"the table {table} is missing"
        have = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
        missing = sorted(columns - have)
        if missing:
            return f"the column {missing[0]} of the table {table} is missing"
    return (_settings_problem(conn, version) or _images_problem(conn, version)
            or _captions_problem(conn) or _parts_problem(conn, version)
            or _qa_problem(conn, version) or _lock_problem(conn) or _dates_problem(conn, tables))


def _parts_problem(conn: sqlite3.Connection, version: int) -> str:
    """What is wrong with the stored parts of multi-person captions (format 6), or ``""``: a
    kind, position, box, gender, text, backend, model, file state or token count that is not
    what LoRACap writes."""
    if version < 6:
        return ""
    query = ("SELECT id, kind, position, box, gender, text, backend, model, file_size, mtime, "
             "input_tokens, output_tokens FROM person_parts")
    for row in conn.execute(query):
        part_id, kind, position, box, gender, text, backend, model = row[:8]
        numbers = row[8:]
        if kind not in PART_KINDS:
            return f"the caption part {part_id} has the kind {_shown(kind)}"
        if type(position) is not int or position < 0:
            return f"the caption part {part_id} has the position {_shown(position)}"
        if not all(isinstance(v, str) for v in (box, gender, text, backend, model)):
            return f"the caption part {part_id} holds a value that is not text"
        if gender not in ("woman", "man", "unknown"):
            return f"the caption part {part_id} has the gender {_shown(gender)}"
        if box and not _box_ok(box):
            return f"the caption part {part_id} has the box {_shown(box)}"
        if not all(type(v) in (int, float) and v >= 0 for v in numbers):
            return f"the caption part {part_id} has a size, time or token count below 0"
    return ""


def _qa_problem(conn: sqlite3.Connection, version: int) -> str:
    """What is wrong with the question-answer pairs and their versions (format 7), or ``""``:
    a field that is not what LoRACap writes (:func:`_qa_fields_problem`)."""
    if version < 7:
        return ""
    query = ("SELECT id, image_id, question, answer, answer_type, confirmed, score, tags, note, "
             "valid, invalid_reason, provenance, backend, model FROM qa_entries")
    for entry_id, image_id, *values in conn.execute(query):
        if type(entry_id) is not int or type(image_id) is not int:
            return f"the question-answer pair {_shown(entry_id)} has no image id"
        for index in (3, 7):  # confirmed, valid: stored as 0 or 1
            if type(values[index]) is int and values[index] in (0, 1):
                values[index] = bool(values[index])
        values[5] = _json_or_none(values[5])  # tags: a JSON list
        problem = _qa_fields_problem(*values)
        if problem:
            return f"the question-answer pair {entry_id} {problem}"
    query = ("SELECT id, entry_id, image_id, question, answer, provenance, backend, model, "
             "input_tokens, output_tokens FROM qa_versions")
    for version_id, *ids, question, answer, provenance, backend, model, inp, out in \
            conn.execute(query):
        if not all(type(v) is int for v in (version_id, *ids)):
            return f"the question-answer version {_shown(version_id)} has no entry or image id"
        if not all(isinstance(v, str) for v in (question, answer, backend, model)):
            return f"the question-answer version {version_id} holds a value that is not text"
        if provenance not in _QA_PROVENANCES:
            return (f"the question-answer version {version_id} has the provenance "
                    f"{_shown(provenance)}")
        if not all(type(v) is int and v >= 0 for v in (inp, out)):
            return f"the question-answer version {version_id} has a token count below 0"
    return ""


def _json_or_none(text: object) -> Any:
    """``text`` read as JSON, or None when it is not JSON text."""
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


@cache
def _answer_types() -> frozenset[str]:
    """The values of :class:`~loracap.core.qa.records.AnswerType`."""
    from loracap.core.qa.records import AnswerType

    return frozenset(kind.value for kind in AnswerType)


def _qa_fields_problem(question: object, answer: object, answer_type: object,
                       confirmed: object, score: object, tags: object, note: object,
                       valid: object, invalid_reason: object, provenance: object,
                       backend: object, model: object) -> str:
    """What is wrong with the fields of a question-answer pair as a stored undo step holds
    them (flags as booleans, tags as a list), as the end of a sentence ("has the score …"), or
    ``""``."""
    # Imported here: only a project with question-answer pairs needs their rules.
    from loracap.core.qa.records import MAX_SCORE, MIN_SCORE, AnswerType

    if not all(isinstance(v, str) for v in (question, answer, note, invalid_reason, backend,
                                            model)):
        return "holds a value that is not text"
    if answer_type not in _answer_types():
        return (f"has the answer type {_shown(answer_type)}, not one of "
                f"{', '.join(kind.value for kind in AnswerType)}")
    if type(confirmed) is not bool or type(valid) is not bool:
        return "is marked confirmed or valid with something other than 0 or 1"
    if score is not None and (type(score) is not int or not MIN_SCORE <= score <= MAX_SCORE):
        return f"has the score {_shown(score)}, not {MIN_SCORE} to {MAX_SCORE}"
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return "has tags that are not a JSON list of text"
    if provenance not in _QA_PROVENANCES:
        return (f"has the provenance {_shown(provenance)}, not one of "
                f"{', '.join(sorted(_QA_PROVENANCES))}")
    return ""


def _box_ok(text: str) -> bool:
    """True for a stored box: a JSON list of four whole numbers, left < right, top < bottom."""
    try:
        box = json.loads(text)
    except ValueError:
        return False
    return (isinstance(box, list) and len(box) == 4 and all(type(v) is int and v >= 0
                                                            for v in box)
            and box[0] < box[2] and box[1] < box[3])


def _settings_problem(conn: sqlite3.Connection, version: int) -> str:
    names = ["name", "trigger", "profile", "custom_prompt", "prefix_template", "model"]
    if version >= 3:
        names.append("tag_separator")
    if version >= 5:
        names.extend(["backend", "base_url", "language", "backend_options", "prompt_presets"])
    if version >= 6:
        names.extend(["aliases", "people_order", "detector"])
    if version >= 7:
        names.extend(["qa_labels", "qa_schema"])
    rows = conn.execute(f"SELECT id, current_image_id, {', '.join(names)} FROM project").fetchall()
    if not rows:
        return "it has no project settings"
    if len(rows) > 1 or rows[0][0] != 1:
        return "its project settings are not one row"
    current = rows[0][1]
    if current is not None and type(current) is not int:
        return f"the current image {_shown(current)} is not an image id"
    values = dict(zip(names, rows[0][2:], strict=True))
    for name, value in values.items():
        if not isinstance(value, str):
            return f"the setting {name} is {_shown(value)}, not text"
    try:
        validate_trigger(values["trigger"])
    except TriggerWordError:
        return (f"its trigger word {_shown(values['trigger'])} is not a valid trigger word (a "
                "trigger word has lowercase letters, digits and underscores, starts with a "
                "letter and has at most 64 characters)")
    try:
        validate_prefix_template(values["prefix_template"])
    except InputError:
        return (f"its caption prefix {_shown(values['prefix_template'])} holds a line break")
    if values["profile"] not in _PROFILES:
        return (f"its caption profile {_shown(values['profile'])} is not one of "
                f"{', '.join(p.value for p in Profile)}")
    if "tag_separator" in values:
        try:
            _check_separator(values["tag_separator"])
        except InputError:
            return f"its tag separator {_shown(values['tag_separator'])} is empty or breaks lines"
    problem = _backend_settings_problem(values) if version >= 5 else ""
    if not problem and version >= 6:
        try:
            _checked_backend_settings({"aliases": values["aliases"],
                                       "people_order": values["people_order"],
                                       "detector": values["detector"]})
        except InputError as exc:
            return f"its multi-person settings cannot be used ({exc})"
    if not problem and version >= 7:
        try:
            _checked_qa_settings({"qa_labels": values["qa_labels"],
                                  "qa_schema": values["qa_schema"]})
        except InputError as exc:
            return f"its question-answer settings cannot be used ({exc})"
    return problem


def _backend_settings_problem(values: Mapping[str, str]) -> str:
    """What is wrong with the backend settings of a format-5 project, or ``""``."""
    if values["backend"] not in BACKENDS:
        return (f"its captioning backend {_shown(values['backend'])} is not one of "
                f"{', '.join(BACKENDS)}")
    if values["language"] not in LANGUAGES:
        return f"its caption language {_shown(values['language'])} is not a known language code"
    for name, check in (("base_url", check_base_url), ("backend_options", check_backend_options),
                        ("prompt_presets", _check_presets)):
        try:
            check(values[name])
        except InputError as exc:
            return f"its setting {name} {_shown(values[name])} cannot be used ({exc})"
    return ""


#: An image row that surely passes :func:`_image_row_problem` (an SQL test, so the rows of a
#: large project need not reach Python one by one, issue 15); the others -- in a sound file
#: none, or the few whose path is stored as bytes -- are checked in Python for the message.
_SOUND_IMAGE = (
    "typeof(id) = 'integer' AND typeof(path) = 'text' AND length(path) > 0 "
    "AND instr(path, char(0)) = 0 AND typeof(valid) = 'integer' AND valid IN (0, 1) "
    "AND typeof(file_size) = 'integer' AND file_size >= 0 "
    "AND typeof(mtime) IN ('integer', 'real') "
    "AND (width IS NULL OR (typeof(width) = 'integer' AND width >= 1)) "
    "AND (height IS NULL OR (typeof(height) = 'integer' AND height >= 1)) "
    "AND (format IS NULL OR typeof(format) = 'text') AND typeof(invalid_reason) = 'text'")
_SOUND_REVIEW = (
    " AND review IN ({marks}) AND (rating IS NULL OR (typeof(rating) = 'integer' "
    "AND rating BETWEEN 1 AND 5)) AND typeof(note) = 'text'")


def _images_problem(conn: sqlite3.Connection, version: int) -> str:
    review = ", review, rating, note" if version >= 2 else ""
    sound = _SOUND_IMAGE
    if version >= 2:
        marks = ", ".join(f"'{mark}'" for mark in sorted(_REVIEWS))
        sound += _SOUND_REVIEW.format(marks=marks)
    query = ("SELECT id, path, valid, file_size, mtime, width, height, format, invalid_reason"
             f"{review} FROM images WHERE NOT ({sound})")
    for row in conn.execute(query):
        stored = row[1]
        if isinstance(stored, bytes):
            stored = fs_decode(stored)
        if not isinstance(stored, str) or not stored or "\0" in stored:
            number = row[0] if type(row[0]) is int else _shown(row[0])
            return f"image {number} has the path {_shown(stored)}"
        problem = _image_row_problem(row, version)
        if problem:
            return f"the image {_shown(stored)} {problem}"
    # Every text path is read once: one that is not UTF-8 fails here, not in the window.
    _read_texts(conn, "images", "path")
    return ""


def _image_row_problem(row: tuple[Any, ...], version: int) -> str:
    """What is wrong with one row of :func:`_images_problem`'s query, or ``""``."""
    image_id, _path, valid, size, mtime, width, height, fmt, reason = row[:9]
    if type(image_id) is not int:
        return f"has the id {_shown(image_id)}"
    if type(valid) is not int or valid not in (0, 1):
        return f"is marked valid {_shown(valid)}, not 0 or 1"
    if type(size) is not int or size < 0 or not isinstance(mtime, (int, float)):
        return f"has the size {_shown(size)} or time {_shown(mtime)}"
    for side in (width, height):
        if side is not None and (type(side) is not int or side < 1):
            return f"has the size {_shown(width)} × {_shown(height)} px"
    if not isinstance(fmt, (str, type(None))) or not isinstance(reason, str):
        return "has a format or reason that is not text"
    if version >= 2:
        mark, rating, note = row[9:]
        if mark not in _REVIEWS:
            return (f"has the review mark {_shown(mark)}, not one of "
                    f"{', '.join(r.value for r in Review)}")
        if rating is not None and (type(rating) is not int or not 1 <= rating <= 5):
            return f"has the rating {_shown(rating)}, not 1 to 5"
        if not isinstance(note, str):
            return "has a note that is not text"
    return ""


def _captions_problem(conn: sqlite3.Connection) -> str:
    for table in ("captions", "caption_versions"):
        for (provenance,) in conn.execute(f"SELECT DISTINCT provenance FROM {table}"):
            if provenance not in _PROVENANCES:
                return (f"a caption has the provenance {_shown(provenance)}, not one of "
                        f"{', '.join(p.value for p in Provenance)}")
        bad = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE typeof(body) != 'text'")
        if bad.fetchone()[0]:
            return "a caption's text is not text"
    # The current captions are read whole: text that is not UTF-8 fails here, not in the window.
    _read_texts(conn, "captions", "body")
    return ""


#: Rows of :func:`_read_texts` per query.
_TEXTS_PER_QUERY = 16384


def _read_texts(conn: sqlite3.Connection, table: str, column: str) -> None:
    """Read every text value of ``table.column`` as Python does (UTF-8): joined by SQLite,
    :data:`_TEXTS_PER_QUERY` rows at a time, so a million rows are not a million Python
    objects (issue 15). A part that holds text that is not UTF-8 is read again row by row:
    the driver's error (``sqlite3.OperationalError``) then names the one value."""
    (top,) = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()
    where = f"WHERE rowid BETWEEN ? AND ? AND typeof({column}) = 'text'"
    for start in range(0, (top or 0) + 1, _TEXTS_PER_QUERY):
        bounds = (start, start + _TEXTS_PER_QUERY - 1)
        try:
            conn.execute(f"SELECT group_concat({column}, ' ') FROM {table} {where}",
                         bounds).fetchone()
        except sqlite3.OperationalError:
            for _ in conn.execute(f"SELECT {column} FROM {table} {where}", bounds):
                pass
            raise


#: A time as SQLAlchemy stores it in SQLite (``2024-05-01 09:30:00.123456``) that is surely
#: valid (a day every month has, hours 00-19); an SQL test, so most rows never reach Python.
#: Every other value is checked one by one with ``datetime.fromisoformat``, as SQLAlchemy reads.
_CLOCK = "[01][0-9]:[0-5][0-9]:[0-5][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]"
_PLAIN_TIME = (f"{{c}} GLOB '[0-9][0-9][0-9][0-9]-0[1-9]-[0-2][1-8] {_CLOCK}' OR "
               f"{{c}} GLOB '[0-9][0-9][0-9][0-9]-1[0-2]-[0-2][1-8] {_CLOCK}'")


def _dates_problem(conn: sqlite3.Connection, tables: set[str]) -> str:
    """A stored time that SQLAlchemy could not read back (``fromisoformat``), or ``""``."""
    for table, columns in TABLES.items():
        if table not in tables:
            continue
        for column in columns:
            if column.kind != DATETIME:
                continue
            name = column.name
            query = (f"SELECT {name} FROM {table} WHERE {name} IS NOT NULL AND NOT "
                     f"(typeof({name}) = 'text' AND ({_PLAIN_TIME.format(c=name)}))")
            for (value,) in conn.execute(query):
                try:
                    datetime.fromisoformat(value)
                except (TypeError, ValueError):
                    return f"the time {_shown(value)} in {table}.{name} is not a time"
    return ""


def _lock_problem(conn: sqlite3.Connection) -> str:
    for pid, host, started in conn.execute("SELECT pid, host, process_started FROM lock"):
        if type(pid) is not int or not isinstance(host, str) or not isinstance(
                started, (int, float)):
            return "its lock row is not a process"
    return ""


def _undo_entries(path: Path, payload: str) -> list[dict[str, Any]]:
    """The entries of a stored undo step, checked as :class:`UndoStepRow` describes them.
    Raises :class:`ProjectError` ("… is damaged") for anything else."""
    try:
        entries = json.loads(payload)
        if not isinstance(entries, list):
            raise TypeError("not a list")
        for entry in entries:
            if type(entry["image"]) is not int:
                raise TypeError("not an image id")
            for side in ("before", "after"):
                state = entry[side]
                caption = state.get("caption")
                if caption is not None:
                    body, provenance, *rest = caption
                    if not isinstance(body, str) or len(rest) != 3 or not all(
                            isinstance(value, (str, type(None))) for value in rest):
                        raise TypeError("not a caption")
                    Provenance(provenance)
                if "review" in state:
                    mark, rating, note = state["review"]
                    Review(mark)
                    if rating is not None and (type(rating) is not int or not 1 <= rating <= 5):
                        raise ValueError("not a rating")
                    if not isinstance(note, str):
                        raise TypeError("not a note")
                if "people" in state:
                    for box, gender in state["people"]:
                        if len(box) != 4 or not all(type(v) is int and v >= 0 for v in box) \
                                or gender not in ("woman", "man", "unknown"):
                            raise ValueError("not a person's box")
                if "qa" in state:
                    _check_qa_state(state["qa"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProjectError(_damaged(path, f"a stored undo step cannot be read ({exc})")) from exc
    return entries


def _check_qa_state(pairs: Any) -> None:
    """Check the ``"qa"`` state of an undo step (:class:`~loracap.core.schema.UndoStepRow`):
    a list of ``[entry_id, entry or null]``. Raises ``ValueError`` or ``TypeError``."""
    if not isinstance(pairs, list):
        raise TypeError("not a list of question-answer pairs")
    for entry_id, entry in pairs:
        if type(entry_id) is not int:
            raise TypeError("not a question-answer pair's id")
        if entry is None:
            continue
        *fields, created_at = entry
        problem = _qa_fields_problem(*fields)
        if problem:
            raise ValueError(f"a question-answer pair {problem}")
        datetime.fromisoformat(created_at)
