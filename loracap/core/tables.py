"""The tables of a ``.loraproj`` file as plain data: what the checks of a file
(:mod:`loracap.core.project_integrity`) and the reads without SQLAlchemy
(:mod:`loracap.core.project_reader`) need to know of :mod:`loracap.core.schema`, in a module
that imports nothing heavy (``loracap info`` reads a project without loading SQLAlchemy).

:data:`TABLES` describes every table of :data:`SCHEMA_VERSION`: its columns in order, each
with its kind (:data:`INTEGER`, :data:`FLOAT`, :data:`BOOLEAN`, :data:`TEXT`,
:data:`DATETIME`, :data:`PATH`) and whether it may be NULL. ``tests/core/test_tables.py``
proves that it equals ``schema.Base.metadata`` (tables, their order, columns, kinds,
nullability), so the two cannot drift apart. :data:`ADDED_IN_VERSION` says which format added
a table or column, so :func:`expected_tables` knows the tables of an older file.
"""

from __future__ import annotations

import os
from typing import NamedTuple

#: Current schema version, written to ``PRAGMA user_version``.
#: 1: first release. 2: review state, rating and note per image. 3: tag separator and the stored
#: undo stack. 4: the exports written. 5: the project's backend, base URL, caption language,
#: backend options and prompt presets; the token usage of caption versions and attempts.
#: 6: multi-person captions: the parts of an image's caption (``person_parts``), the project's
#: custom aliases, the order of people and an optional local person detector.
#: 7: question-answer pairs (``qa_entries``, ``qa_versions``), the project's answer labels and
#: answer schema.
#: 8: batch API jobs (``batch_jobs``, ``batch_items``), the batch a caption version came from,
#: and the file state at which an image's pixels last decoded whole.
SCHEMA_VERSION = 8

#: ``PRAGMA application_id`` of a LoRACap project: the ASCII bytes "LoRA".
APPLICATION_ID = 0x4C6F5241

#: ``project.prompt_presets`` of a project without presets of its own (``loracap.core.presets``).
NO_PRESETS = '{"version": 1, "presets": []}'

#: The kinds of column: SQLAlchemy's ``Integer``, ``Float``, ``Boolean`` (stored 0 or 1),
#: ``String`` and ``Text``, ``DateTime`` (stored as text, ``2024-05-01 09:30:00.123456``) and
#: :class:`~loracap.core.schema.FsPath` (text, or a BLOB of a name that is not UTF-8).
INTEGER, FLOAT, BOOLEAN, TEXT, DATETIME, PATH = (
    "integer", "float", "boolean", "text", "datetime", "path")


class Column(NamedTuple):
    """One column of a table: its ``name``, its ``kind`` (:data:`INTEGER`, …) and whether it
    may be NULL (``nullable``)."""

    name: str
    kind: str
    nullable: bool


def _columns(spec: str) -> tuple[Column, ...]:
    """``"id integer, width integer?"`` as columns; ``?`` marks a column that may be NULL."""
    columns: list[Column] = []
    for item in spec.split(","):
        name, kind = item.split()
        columns.append(Column(name, kind.rstrip("?"), kind.endswith("?")))
    return tuple(columns)


#: Every table of :data:`SCHEMA_VERSION` with its columns, in the order of
#: ``schema.Base.metadata.sorted_tables`` (the checks report the first problem in this order).
TABLES: dict[str, tuple[Column, ...]] = {
    "batch_jobs": _columns(
        "id integer, backend text, model text, base_url text, remote_id text, "
        "input_file text, state text, remote_state text, settings text, requests integer, "
        "fetched boolean, error text, created_at datetime, updated_at datetime, "
        "ended_at datetime?"),
    "exports": _columns(
        "id integer, path path, format text, written_at datetime, size integer, sha256 text"),
    "images": _columns(
        "id integer, path path, file_size integer, mtime float, width integer?, "
        "height integer?, format text?, valid boolean, invalid_reason text, added_at datetime, "
        "review text, rating integer?, note text, decoded_size integer?, decoded_mtime float?"),
    "lock": _columns(
        "id integer, pid integer, host text, process_started float, opened_at datetime"),
    "project": _columns(
        "id integer, name text, trigger text, profile text, custom_prompt text, "
        "prefix_template text, model text, created_at datetime, updated_at datetime, "
        "current_image_id integer?, tag_separator text, backend text, base_url text, "
        "language text, backend_options text, aliases text, people_order text, detector text, "
        "prompt_presets text, qa_labels text, qa_schema text"),
    "undo_steps": _columns(
        "id integer, label text, created_at datetime, undone boolean, entries integer, "
        "payload text"),
    "batch_items": _columns(
        "job_id integer, image_id integer, key text, state text, error text"),
    "caption_attempts": _columns(
        "id integer, image_id integer, at datetime, ok boolean, error_kind text, error text, "
        "backend text?, model text?, input_tokens integer, output_tokens integer"),
    "caption_versions": _columns(
        "id integer, image_id integer, body text, provenance text, backend text?, model text?, "
        "prompt text?, created_at datetime, input_tokens integer, output_tokens integer, "
        "batch text"),
    "captions": _columns(
        "image_id integer, body text, provenance text, backend text?, model text?, "
        "prompt text?, created_at datetime, updated_at datetime"),
    "person_parts": _columns(
        "id integer, image_id integer, kind text, position integer, box text, gender text, "
        "text text, backend text, model text, file_size integer, mtime float, "
        "input_tokens integer, output_tokens integer, created_at datetime"),
    "qa_entries": _columns(
        "id integer, image_id integer, question text, answer text, answer_type text, "
        "confirmed boolean, score integer?, tags text, note text, valid boolean, "
        "invalid_reason text, provenance text, backend text, model text, created_at datetime, "
        "updated_at datetime"),
    "qa_versions": _columns(
        "id integer, entry_id integer, image_id integer, question text, answer text, "
        "provenance text, backend text, model text, created_at datetime, input_tokens integer, "
        "output_tokens integer"),
}

#: The format that added a table (column ``""``) or a column; everything else dates from 1.
ADDED_IN_VERSION: dict[tuple[str, str], int] = {
    ("images", "review"): 2, ("images", "rating"): 2, ("images", "note"): 2,
    ("project", "tag_separator"): 3, ("undo_steps", ""): 3, ("exports", ""): 4,
    **{("project", name): 5 for name in ("backend", "base_url", "language", "backend_options",
                                         "prompt_presets")},
    **{(table, name): 5 for table in ("caption_versions", "caption_attempts")
       for name in ("input_tokens", "output_tokens")},
    ("project", "aliases"): 6, ("project", "people_order"): 6, ("project", "detector"): 6,
    ("person_parts", ""): 6,
    ("project", "qa_labels"): 7, ("project", "qa_schema"): 7, ("qa_entries", ""): 7,
    ("qa_versions", ""): 7,
    ("caption_versions", "batch"): 8, ("images", "decoded_size"): 8,
    ("images", "decoded_mtime"): 8, ("batch_jobs", ""): 8, ("batch_items", ""): 8,
}


def expected_tables(version: int) -> dict[str, set[str]]:
    """The tables, each with the names of its columns, of a project file of format
    ``version`` (1 to :data:`SCHEMA_VERSION`), in the order of :data:`TABLES`."""
    return {
        table: {column.name for column in columns
                if ADDED_IN_VERSION.get((table, column.name), 1) <= version}
        for table, columns in TABLES.items()
        if ADDED_IN_VERSION.get((table, ""), 1) <= version
    }


def fs_decode(data: bytes) -> str:
    """A path stored as bytes, as Python names the file (PEP 383 surrogate escapes for bytes
    that are not UTF-8). Bytes this system's file names cannot hold (a Linux name read on
    Windows) still decode, with surrogate escapes; such a file is then reported missing."""
    try:
        return os.fsdecode(data)
    except UnicodeDecodeError:
        return data.decode("utf-8", "surrogateescape")


__all__ = [
    "ADDED_IN_VERSION", "APPLICATION_ID", "BOOLEAN", "DATETIME", "FLOAT", "INTEGER",
    "NO_PRESETS", "PATH", "SCHEMA_VERSION", "TABLES", "TEXT", "Column", "expected_tables",
    "fs_decode",
]
