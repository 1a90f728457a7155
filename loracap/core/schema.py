"""The tables of a ``.loraproj`` file (SQLite, through the SQLAlchemy 2.x ORM).

A project file is one SQLite database. ``PRAGMA application_id`` marks it as LoRACap's and
``PRAGMA user_version`` holds :data:`~loracap.core.tables.SCHEMA_VERSION` (its versions are
described there). The API key is never stored here. :mod:`loracap.core.tables` describes the
same tables as plain data, for the code that reads a project without SQLAlchemy; a test keeps
the two equal.

Tables:

* ``project`` -- one row: the project settings.
* ``images`` -- one row per scanned file, valid or not.
* ``captions`` -- the current caption of an image (at most one row per image).
* ``caption_versions`` -- every caption version ever stored, append-only: the history that makes
  "revert to the generated caption" and recovery of earlier text possible.
* ``caption_attempts`` -- every captioning attempt's outcome (ok, or the error).
* ``lock`` -- which process has the project open for writing.
* ``undo_steps`` -- the undo/redo stack of people's edits (bounded), so Undo works after reopening.
* ``exports`` -- every export written while the project was open for writing (path, format,
  time, size, SHA-256), so ``loracap run`` knows its own previous export from a file it did not
  write.
* ``person_parts`` -- the paid parts of multi-person captions (format 6).
* ``qa_entries`` -- the question-answer pairs of each image (format 7).
* ``qa_versions`` -- every version of a pair's text, append-only (format 7); kept when the
  pair is deleted, so undoing the deletion brings the pair back with its history.
* ``batch_jobs`` -- the jobs submitted to a service's batch API (format 8), followed across
  restarts until their results are fetched.
* ``batch_items`` -- the images of each batch job, with the key that matches a result to its
  image and what became of it (format 8).

Every row that belongs to an image is removed with it (``ON DELETE CASCADE``; the project
turns ``PRAGMA foreign_keys`` on for each connection).

Times are stored in UTC.

File paths (``images.path``, ``exports.path``) are text, except a path that is not valid UTF-8
(a Linux file name such as ``caf\\xe9.jpg`` saved in Latin-1): it is stored as a BLOB of its
exact bytes (``os.fsencode``), so the file is found again byte for byte (:class:`FsPath`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Re-exported: the enums live in the SQLAlchemy-free records module, the format's constants
# and the plain description of these tables in loracap.core.tables.
from loracap.core.records import Provenance, Review
from loracap.core.tables import APPLICATION_ID, NO_PRESETS, SCHEMA_VERSION, fs_decode


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class FsPath(TypeDecorator[str]):
    """A file path column: text when the path is valid UTF-8, else a BLOB of its exact bytes.

    A Python ``str`` naming such a file holds lone surrogates (PEP 383), which SQLite's UTF-8
    text cannot store; ``os.fsencode`` turns them back into the file system's bytes, and reading
    decodes them again, so the value round-trips exactly. Comparisons work because a path is
    always stored the same way: text if it can be, else bytes.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if isinstance(value, bytes):
            return fs_decode(value)
        return value  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    pass


class ProjectRow(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    trigger: Mapped[str] = mapped_column(String)
    profile: Mapped[str] = mapped_column(String)
    custom_prompt: Mapped[str] = mapped_column(Text, default="")
    prefix_template: Mapped[str] = mapped_column(String)
    model: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    current_image_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: What separates tags in captions (kohya sd-scripts and most taggers write ", ").
    tag_separator: Mapped[str] = mapped_column(String, default=", ", server_default=", ")
    #: The default captioning backend's name (``loracap.core.backends.registry``; format 5).
    backend: Mapped[str] = mapped_column(String, default="gemini", server_default="gemini")
    #: The backend's server URL, ``""`` for its default (format 5).
    base_url: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: The caption language's code (``loracap.core.prompts.LANGUAGES``; format 5).
    language: Mapped[str] = mapped_column(String, default="en", server_default="en")
    #: JSON object: each backend's own settings by backend name (format 5).
    backend_options: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    #: Multi-person captions (format 6): the project's custom aliases as a JSON list of strings
    #: (``loracap.core.people.validate_aliases``), and the order of people, ``left`` or ``size``.
    aliases: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    people_order: Mapped[str] = mapped_column(String, default="left", server_default="left")
    #: A local ONNX person detector (a YOLO model the user exported) that finds the people
    #: instead of the vision model, ``""`` for none (format 6).
    detector: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: JSON list of the project's own prompt presets (``loracap.core.presets``; format 5).
    prompt_presets: Mapped[str] = mapped_column(Text, default=NO_PRESETS, server_default=NO_PRESETS)
    #: Question-answer pairs (format 7): the labels a ``label`` answer chooses from, a JSON list
    #: of strings, and the JSON schema (text of a JSON object) a ``custom_format`` answer must
    #: follow, ``""`` for none.
    qa_labels: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    qa_schema: Mapped[str] = mapped_column(Text, default="", server_default="")


class ImageRow(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: POSIX path relative to the project file's folder when the image is below it, else absolute
    #: (a BLOB of the exact bytes when it is not valid UTF-8: :class:`FsPath`).
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    file_size: Mapped[int] = mapped_column(Integer)
    mtime: Mapped[float] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    format: Mapped[str | None] = mapped_column(String, nullable=True)
    valid: Mapped[bool] = mapped_column(Boolean)
    invalid_reason: Mapped[str] = mapped_column(Text, default="")
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: "unreviewed", "approved" or "rejected" (see :class:`Review`).
    review: Mapped[str] = mapped_column(String, default="unreviewed", server_default="unreviewed")
    #: 1-5, or None when not rated.
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: The file's size (bytes) and mtime (seconds) when every pixel of it last decoded (an
    #: export's check, format 8); NULL when never. While the file still has this size and
    #: mtime, the decode need not be repeated.
    #: Deferred (not in the ORM's SELECT), as every column added in format 8: a format-7 file
    #: opened read-only is not migrated and has no such column.
    decoded_size: Mapped[int | None] = mapped_column(Integer, nullable=True, deferred=True)
    decoded_mtime: Mapped[float | None] = mapped_column(Float, nullable=True, deferred=True)


class CaptionRow(Base):
    __tablename__ = "captions"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    body: Mapped[str] = mapped_column(Text)
    provenance: Mapped[str] = mapped_column(String)
    backend: Mapped[str | None] = mapped_column(String, nullable=True)
    model: Mapped[str | None] = mapped_column(String, nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CaptionVersionRow(Base):
    __tablename__ = "caption_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True
    )
    body: Mapped[str] = mapped_column(Text)
    provenance: Mapped[str] = mapped_column(String)
    backend: Mapped[str | None] = mapped_column(String, nullable=True)
    model: Mapped[str | None] = mapped_column(String, nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Tokens the answer cost, as the service counted them (format 5; 0 when unknown).
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The service's name of the batch job whose result this version is (``batches/123``,
    #: ``msgbatch_…``, ``batch_…``; format 8), ``""`` when not from a batch API.
    batch: Mapped[str] = mapped_column(String, default="", server_default="", deferred=True)


class CaptionAttemptRow(Base):
    __tablename__ = "caption_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    error_kind: Mapped[str] = mapped_column(String, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    backend: Mapped[str | None] = mapped_column(String, nullable=True)
    model: Mapped[str | None] = mapped_column(String, nullable=True)
    #: Tokens the attempt cost (format 5): every answer received is paid for, kept or not.
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class PersonPartRow(Base):
    """One paid part of a multi-person caption (format 6): the detection of the people in an
    image (``kind`` ``detection``: ``text`` is the people found as a JSON list of ``{"box",
    "gender"}``), one person's
    description (``person``: ``position`` in the order, ``box`` as JSON ``[left, top, right,
    bottom]`` in pixels of the oriented image, ``gender``) or the scene (``scene``).

    Parts are kept when an image fails, so a retry reuses what was already paid for; they belong
    to the image's file as it was (``file_size``, ``mtime``) and to the backend and model that
    made them, and are not reused for another file state, backend or model.
    """

    __tablename__ = "person_parts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String)
    position: Mapped[int] = mapped_column(Integer, default=0)
    box: Mapped[str] = mapped_column(String, default="")
    gender: Mapped[str] = mapped_column(String, default="unknown")
    text: Mapped[str] = mapped_column(Text, default="")
    backend: Mapped[str] = mapped_column(String)
    model: Mapped[str] = mapped_column(String)
    file_size: Mapped[int] = mapped_column(Integer)
    mtime: Mapped[float] = mapped_column(Float)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QAEntryRow(Base):
    """One question about an image and its answer (format 7;
    :class:`~loracap.core.qa.records.QAEntry` gives the meaning of each field).

    ``answer`` is ``""`` for a question not answered yet; ``answer_type`` an
    :class:`~loracap.core.qa.records.AnswerType` value; ``score`` 0-5 or NULL; ``tags`` a JSON
    list of strings; ``valid`` 0 for an answer that failed its label list or schema
    (``invalid_reason``); ``provenance`` ``generated``, ``edited`` or ``manual``;
    ``backend``/``model`` ``""`` for a person's text. Ids are never reused (``AUTOINCREMENT``):
    a deleted entry's versions keep its id, and undoing the deletion brings it back under it.
    """

    __tablename__ = "qa_entries"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True
    )
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text, default="")
    answer_type: Mapped[str] = mapped_column(String, default="text")
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tags: Mapped[str] = mapped_column(Text, default="[]")
    note: Mapped[str] = mapped_column(Text, default="")
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    invalid_reason: Mapped[str] = mapped_column(Text, default="")
    provenance: Mapped[str] = mapped_column(String)
    backend: Mapped[str] = mapped_column(String, default="")
    model: Mapped[str] = mapped_column(String, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QAVersionRow(Base):
    """One version of a question-answer pair's text, append-only (format 7): the question and
    answer after a model answered (``generated``, with the tokens the answer cost) or a person
    edited (``edited``/``manual``). ``entry_id`` is not a foreign key, so the history outlives
    a deleted entry (undo brings the entry back); the rows go with their image."""

    __tablename__ = "qa_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(Integer, index=True)
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True
    )
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    provenance: Mapped[str] = mapped_column(String)
    backend: Mapped[str] = mapped_column(String, default="")
    model: Mapped[str] = mapped_column(String, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)


class BatchJobRow(Base):
    """One job submitted to a service's batch API (format 8; :mod:`loracap.core.batches`).

    ``remote_id`` is the service's name of the job (Gemini ``batches/…``, Anthropic
    ``msgbatch_…``, OpenAI ``batch_…``); ``input_file`` the uploaded request file the job reads
    (``""`` for inline requests). ``state`` is LoRACap's word for where the job is
    (:class:`~loracap.core.batches.base.JobState`), ``remote_state`` the service's own.
    ``settings`` is the JSON of what the answers are read with (the instructions, trigger word
    and prefix at submission, :class:`~loracap.core.batches.base.BatchSettings`), so results
    fetched days later are cleaned as they would have been then. ``fetched`` is set once every
    result is stored; ``error`` is the service's reason for a failed job.
    """

    __tablename__ = "batch_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backend: Mapped[str] = mapped_column(String)
    model: Mapped[str] = mapped_column(String)
    base_url: Mapped[str] = mapped_column(Text, default="")
    remote_id: Mapped[str] = mapped_column(String, index=True)
    input_file: Mapped[str] = mapped_column(String, default="")
    state: Mapped[str] = mapped_column(String)
    remote_state: Mapped[str] = mapped_column(String, default="")
    settings: Mapped[str] = mapped_column(Text)
    requests: Mapped[int] = mapped_column(Integer)
    fetched: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BatchItemRow(Base):
    """One image of a batch job (format 8): ``key`` matches the service's result to the image
    (Gemini's ``key``, the ``custom_id`` of Anthropic and OpenAI; results come back in any
    order). ``state`` is ``waiting`` (no result stored yet), ``done`` (caption stored), ``kept``
    (a person's caption was kept; the result went to the history), ``failed`` (``error`` says
    why) or ``gone`` (the job ended without a result for it)."""

    __tablename__ = "batch_items"

    job_id: Mapped[int] = mapped_column(
        ForeignKey("batch_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    key: Mapped[str] = mapped_column(String)
    state: Mapped[str] = mapped_column(String, default="waiting")
    error: Mapped[str] = mapped_column(Text, default="")


class LockRow(Base):
    __tablename__ = "lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String)
    #: The owning process's start time (seconds since the epoch), so a reused pid is not mistaken
    #: for the owner.
    process_started: Mapped[float] = mapped_column(Float)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UndoStepRow(Base):
    """One undoable edit: a person's change to one or many images, as JSON before/after states.

    ``payload`` is a JSON list of ``{"image": id, "before": state, "after": state}``; a state
    holds ``"caption"`` (``null`` or ``[body, provenance, backend, model, prompt]``),
    ``"review"`` (``[review, rating, note]``), ``"people"`` (the boxes of a multi-person
    image in caption order, ``[[left, top, right, bottom], gender]`` each) and/or ``"qa"``
    (format 7: the question-answer pairs the step changed, ``[[entry_id, entry], ...]``, where
    ``entry`` is ``null`` -- no such entry -- or ``[question, answer, answer_type, confirmed,
    score, tags, note, valid, invalid_reason, provenance, backend, model, created_at]``, the
    time as ISO text in UTC). ``undone`` steps form the redo branch.
    """

    __tablename__ = "undo_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    entries: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)


class ExportRow(Base):
    """One export written by LoRACap while the project was open for writing (format 4)."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Stored like :attr:`ImageRow.path`: POSIX, relative to the project file's folder when the
    #: file is below it, else absolute.
    path: Mapped[str] = mapped_column(FsPath, index=True)
    #: The export format's value (``replicate``, ``metadata``).
    format: Mapped[str] = mapped_column(String)
    written_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: File size in bytes.
    size: Mapped[int] = mapped_column(Integer)
    #: SHA-256 of the file's bytes, lowercase hex.
    sha256: Mapped[str] = mapped_column(String)


__all__ = [
    "APPLICATION_ID", "NO_PRESETS", "SCHEMA_VERSION", "Base", "BatchItemRow", "BatchJobRow",
    "CaptionAttemptRow", "CaptionRow",
    "CaptionVersionRow", "ExportRow", "FsPath", "ImageRow", "LockRow", "PersonPartRow",
    "ProjectRow", "Provenance", "QAEntryRow", "QAVersionRow",
    "Review", "UndoStepRow", "fs_decode", "utcnow",
]
