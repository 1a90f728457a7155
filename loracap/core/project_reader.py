"""Reading a project file with plain ``sqlite3``: its settings, counts, token usage and the
images whose file is missing, as SQL run on a DB-API connection, and :class:`ProjectReader`,
which opens a file read-only with the same checks as
:meth:`~loracap.core.project.Project.open` and reads through these functions without
SQLAlchemy (``loracap info`` starts in a fraction of the time; issue 15).

The one place of this SQL: :class:`~loracap.core.project.Project` reads its settings, counts
and token usage through the same functions on the ``sqlite3`` connection of its session
(:func:`read_settings`, :func:`read_stats`, :func:`read_token_usage`,
:func:`missing_images`), so the two cannot give different answers.

A file of an older format opened read-only (not migrated) lacks the later tables and columns:
its missing settings read as their defaults (:class:`~loracap.core.records.ProjectSettings`),
a format-1 file's images as unreviewed, and a file older than format 5, which recorded no
tokens, has no token usage.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path

from loracap.core.backends.registry import check_backend_options
from loracap.core.errors import ProjectError
from loracap.core.image_rows import (
    WHITESPACE,
    ImageRows,
    order_key,
    read_only_uri,
    read_rows,
    stored_files_present,
    stored_text,
)
from loracap.core.project_integrity import _inspect, checked_version
from loracap.core.records import (
    ImageRecord,
    ModelUsage,
    ProjectSettings,
    ProjectStats,
    Provenance,
    Review,
)

#: The images counted by what :class:`~loracap.core.records.ProjectStats` tells apart: rows
#: of ``(valid, provenance, review, images, captioned, failed)`` -- the images of each
#: validity, caption provenance (None: no caption) and review mark; of them, those with a
#: caption that is not blank (:attr:`ImageRecord.has_caption`) and those without whose latest
#: attempt (the caption attempt of the highest id) failed with an error
#: (:attr:`ImageRecord.failed`). ``{review}``: the review column (a constant for format 1);
#: both parameters are :data:`~loracap.core.image_rows.WHITESPACE`.
_COUNTS_SQL = (
    "SELECT images.valid, captions.provenance, {review}, count(*), "
    "sum(CASE WHEN (captions.image_id IS NOT NULL AND trim(captions.body, ?) != '') "
    "THEN 1 ELSE 0 END), "
    "sum(CASE WHEN (latest.ok IS 0 AND coalesce(latest.error, '') != '' AND NOT "
    "(captions.image_id IS NOT NULL AND trim(captions.body, ?) != '')) THEN 1 ELSE 0 END) "
    "FROM images LEFT OUTER JOIN captions ON captions.image_id = images.id "
    "LEFT OUTER JOIN caption_attempts AS latest ON latest.id = "
    "(SELECT max(caption_attempts.id) FROM caption_attempts "
    "WHERE caption_attempts.image_id = images.id) "
    "GROUP BY images.valid, captions.provenance, {review}")

#: What every answer received cost, per backend and model: rows of ``(backend, model,
#: answers, input tokens, output tokens)`` over the attempts that were paid for (an answer, or
#: a failed attempt with tokens: the parts of a multi-person caption that answered).
_USAGE_SQL = (
    "SELECT backend, model, sum(CASE WHEN ok IS 1 THEN 1 ELSE 0 END), sum(input_tokens), "
    "sum(output_tokens) FROM caption_attempts "
    "WHERE ok IS 1 OR input_tokens > 0 OR output_tokens > 0 GROUP BY backend, model")

#: The project format that added the review marks, and the one that added token counts.
_REVIEW_SINCE, _TOKENS_SINCE = 2, 5


def read_settings(conn: sqlite3.Connection, name: str) -> ProjectSettings:
    """The settings of the project file behind ``conn`` (``name``: the file's name, for the
    message). Columns a file of an older format lacks read as their defaults. Raises
    :class:`ProjectError` when the file holds no settings."""
    cursor = conn.execute("SELECT * FROM project WHERE id = 1")
    row = cursor.fetchone()
    if row is None:
        raise ProjectError(f"{name} has no project settings; it is damaged.")
    found = dict(zip([column[0] for column in cursor.description], row, strict=True))
    values = {field.name: found[field.name] for field in fields(ProjectSettings)
              if field.name in found}
    if "backend_options" in values:
        values["backend_options"] = check_backend_options(values["backend_options"])
    for key in ("aliases", "qa_labels"):  # JSON lists of text
        if key in values:
            values[key] = tuple(json.loads(values[key] or "[]"))
    return ProjectSettings(**values)


def read_stats(conn: sqlite3.Connection, folder: Path, version: int) -> ProjectStats:
    """The counts of :class:`~loracap.core.records.ProjectStats` of the project file of format
    ``version`` behind ``conn``, whose folder is ``folder``: one query counts the images by
    validity, caption, provenance, latest attempt and review mark (no record is built); and
    ``missing_files`` looks up the file of every valid image
    (:func:`~loracap.core.image_rows.stored_files_present`: one listing per folder of many
    images)."""
    review = "images.review" if version >= _REVIEW_SINCE else f"'{Review.UNREVIEWED.value}'"
    groups = conn.execute(_COUNTS_SQL.format(review=review), (WHITESPACE, WHITESPACE)).fetchall()
    paths = [stored_text(path) for (path,) in conn.execute(
        "SELECT path FROM images WHERE valid")]
    images = invalid = captioned = failed = approved = rejected = unreviewed = 0
    provenance = {p.value: 0 for p in Provenance}
    for valid, source, mark, count, with_text, latest_failed in groups:
        if not valid:
            invalid += count
            continue
        images += count
        captioned += with_text
        failed += latest_failed
        if source is not None:
            provenance[Provenance(source).value] += with_text
        review_mark = Review(mark)
        approved += count if review_mark is Review.APPROVED else 0
        rejected += count if review_mark is Review.REJECTED else 0
        unreviewed += count if review_mark is Review.UNREVIEWED else 0
    return ProjectStats(
        images=images,
        invalid=invalid,
        captioned=captioned,
        failed=failed,
        missing_files=list(stored_files_present(folder, paths)).count(False),
        provenance=provenance,
        reviewed=images - unreviewed,
        approved=approved,
        rejected=rejected,
    )


def read_token_usage(conn: sqlite3.Connection, version: int) -> list[ModelUsage]:
    """The tokens every answer received cost in the project file of format ``version`` behind
    ``conn``, per backend and model (sorted by backend, then model); see
    :meth:`~loracap.core.project.Project.token_usage`. ``[]`` for a file older than format 5,
    which recorded no tokens."""
    if version < _TOKENS_SINCE:
        return []
    return sorted(
        (ModelUsage(backend or "", model or "", int(count), int(inp or 0), int(out or 0))
         for backend, model, count, inp, out in conn.execute(_USAGE_SQL)),
        key=lambda usage: (usage.backend, usage.model),
    )


def images_by_id(conn: sqlite3.Connection, folder: Path, image_ids: Iterable[int]
                 ) -> list[ImageRecord]:
    """The images with these ids of the project file behind ``conn`` (unknown ids left out),
    ordered as the program shows images (:func:`~loracap.core.image_rows.order_key`)."""
    return sorted(read_rows(conn, folder, list(image_ids)), key=_path_order)


def missing_images(conn: sqlite3.Connection, folder: Path) -> list[ImageRecord]:
    """The valid images whose file is not on disk (the folder was moved or renamed), ordered
    as :func:`images_by_id`: every valid image's file is looked up
    (:func:`~loracap.core.image_rows.stored_files_present`), records are built only for the
    missing ones."""
    rows = conn.execute("SELECT id, path FROM images WHERE valid").fetchall()
    present = stored_files_present(folder, (stored_text(path) for _, path in rows))
    return images_by_id(conn, folder, [image_id for (image_id, _), found
                                       in zip(rows, present, strict=True) if not found])


def _path_order(record: ImageRecord) -> tuple[str, str]:
    """How images are ordered: by path ignoring case, then by the exact path."""
    return order_key(record.path)


class ProjectReader:
    """A project file open to read with plain ``sqlite3``: what
    :meth:`Project.open(path, read_only=True) <loracap.core.project.Project.open>` gives to
    read its settings, counts, token usage and images, without loading SQLAlchemy.

    Use :meth:`open` and :meth:`close` (or a ``with`` block). Not thread-safe.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, version: int,
                 counted: ProjectStats | None = None) -> None:
        self.path = path
        self.folder = path.parent
        #: The file's project format (``PRAGMA user_version``); an older file is not migrated.
        self.format_version = version
        self._conn = conn
        self._counted = counted

    @classmethod
    def open(cls, path: Path, *, count: bool = False) -> ProjectReader:
        """Open the project file at ``path`` read-only, after the checks of
        :meth:`~loracap.core.project.Project.open` (the same functions): nothing is written,
        nothing locked, nothing migrated. Raises :class:`~loracap.core.errors.ProjectError`
        (not found, not a project, damaged) and
        :class:`~loracap.core.errors.ProjectVersionError` (a newer format).

        ``count``: count the images (:meth:`stats`) on a connection of their own in a second
        thread while the file is checked (the two take about as long; SQLite and the file
        look-ups run outside Python's lock), for the first call of :meth:`stats`. The counts
        are kept only when the checks pass: a file that fails them raises the checks' error,
        never the count's."""
        path = Path(os.path.abspath(path))
        version = checked_version(path)
        counting = _Counting(path, version) if count else None
        try:
            _inspect(path, version)
        except BaseException:
            if counting is not None:
                counting.wait()  # what it found no longer matters
            raise
        counted = counting.result() if counting is not None else None
        try:
            conn = sqlite3.connect(read_only_uri(path), uri=True)
        except sqlite3.DatabaseError as exc:
            raise ProjectError(f"Cannot read {path.name}: {exc}.") from exc
        conn.execute("PRAGMA busy_timeout = 10000")
        return cls(path, conn, version, counted)

    def close(self) -> None:
        """Close the file. Safe to call twice."""
        self._conn.close()

    def __enter__(self) -> ProjectReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def settings(self) -> ProjectSettings:
        """The project's settings (:func:`read_settings`)."""
        return read_settings(self._conn, self.path.name)

    def stats(self) -> ProjectStats:
        """The project's counts (:func:`read_stats`): the first call after
        ``open(path, count=True)`` gives those counted while the file was checked."""
        counted, self._counted = self._counted, None
        if counted is not None:
            return counted
        return read_stats(self._conn, self.folder, self.format_version)

    def token_usage(self) -> list[ModelUsage]:
        """The tokens paid for, per backend and model (:func:`read_token_usage`)."""
        return read_token_usage(self._conn, self.format_version)

    def images(self) -> ImageRows:
        """Every image, ordered by stored path (case-insensitive), as
        :meth:`~loracap.core.project.Project.images` gives them
        (:func:`~loracap.core.image_rows.read_rows`)."""
        return read_rows(self._conn, self.folder)

    def missing_images(self) -> list[ImageRecord]:
        """The valid images whose file is not on disk (:func:`missing_images`)."""
        return missing_images(self._conn, self.folder)


class _Counting:
    """:func:`read_stats` of a project file on a connection of its own, in a thread started at
    once (:meth:`ProjectReader.open` with ``count``)."""

    def __init__(self, path: Path, version: int) -> None:
        self._path, self._version = path, version
        self._stats: ProjectStats | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="loracap-count", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(read_only_uri(self._path), uri=True)
            try:
                conn.execute("PRAGMA busy_timeout = 10000")
                self._stats = read_stats(conn, self._path.parent, self._version)
            finally:
                conn.close()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def wait(self) -> None:
        """Wait for the thread to end."""
        self._thread.join()

    def result(self) -> ProjectStats:
        """The counts, once the thread has ended; raises what counting raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._stats is not None
        return self._stats


__all__ = [
    "ProjectReader", "images_by_id", "missing_images", "read_settings", "read_stats",
    "read_token_usage",
]
