"""The item model of the image grid: a thin Qt adapter over the images of a project, held as
compact columns (:class:`~loracap.core.image_rows.ImageRows`) whose frozen ``ImageRecord`` s
are made when asked for.

:class:`ImageListModel` holds the images the window got from the project, in the order given,
and answers ``data()`` from them alone: it never touches the disk (thumbnails come from a
:class:`~loracap.ui.thumbnails.ThumbnailProvider`, which loads them in the background) and never
talks to the project. The window pushes changes in with :meth:`ImageListModel.update_record`
and :meth:`ImageListModel.set_records`, and a large project's rows in steps
(:meth:`ImageListModel.begin_loading`). :class:`ImageFilterProxy` filters it by text and state.

An image's *state* (:func:`image_state`) is what the grid badge and the state filter show:
``invalid``, ``missing``, ``generated``, ``edited``, ``manual``, ``imported``, ``failed`` or
``uncaptioned``.
"""

from __future__ import annotations

import html
import logging
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Any

from PyQt6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    pyqtSignal,
    pyqtSlot,
)
from PyQt6.QtGui import QColor

from loracap.core.image_rows import HAS_TEXT, LAST_FAILED, VALID, ImageRows
from loracap.core.qa.records import QACount
from loracap.core.query import Query, QueryItem, QuerySyntaxError, parse_query
from loracap.core.records import ImageRecord, ProjectSettings, Review
from loracap.core.tags import DEFAULT_SEPARATOR, TagCounter, counted_body
from loracap.core.text import path_label_changes, path_labels
from loracap.core.trigger import full_caption
from loracap.ui.thumbnails import ThumbnailProvider

log = logging.getLogger(__name__)

_Index = QModelIndex | QPersistentModelIndex


class Roles(IntEnum):
    """The model's own item data roles."""

    IMAGE_ID = Qt.ItemDataRole.UserRole + 1  # int
    STATE = Qt.ItemDataRole.UserRole + 2  # str, one of STATES
    CAPTION = Qt.ItemDataRole.UserRole + 3  # str: the full caption with prefix, "" if none
    PATH = Qt.ItemDataRole.UserRole + 4  # str: the path as stored in the project
    RECORD = Qt.ItemDataRole.UserRole + 5  # ImageRecord
    QA = Qt.ItemDataRole.UserRole + 6  # QACount of the image's question-answer pairs, or None


STATES: tuple[str, ...] = (
    "invalid", "missing", "failed", "uncaptioned", "generated", "edited", "manual", "imported",
)
"""Every value :func:`image_state` returns."""

STATE_LABELS: dict[str, str] = {
    "generated": "Generated caption",
    "edited": "Edited by you",
    "manual": "Written by you",
    "imported": "Imported from .txt",
    "failed": "Caption failed",
    "uncaptioned": "No caption yet",
    "invalid": "Invalid file",
    "missing": "File missing",
}
"""The words the user sees for each state (badges' tooltips, the state filter, legends)."""

OUTSIDE_TEXT = ("Outside the project folder: the project file names this image, but it is not "
                "in the folder beside it; exported only if you allow it in the Export dialog.")
"""What an image's tooltip adds when its stored path leaves the project folder
(:attr:`ImageRecord.outside`)."""

#: The tooltip line of an image in which a multi-person detection found nobody (issue 13: "the
#: grid says 'no person found' so the user can decide").
NO_PERSON_TEXT = ("No person found: it got an ordinary caption instead of one line per person. "
                  "Check the photo; caption it again, or reject it.")

STATE_BADGES: dict[str, str] = {
    "generated": "G",
    "edited": "E",
    "manual": "M",
    "imported": "I",
    "failed": "!",
    "uncaptioned": "–",
    "invalid": "×",
    "missing": "?",
}
"""One character per state, drawn on the badge so the state is not told by colour alone."""

STATE_COLORS: dict[str, QColor] = {
    "generated": QColor("#2f6fc4"),  # blue
    "edited": QColor("#9a4fb3"),  # purple
    "manual": QColor("#23875a"),  # green
    "imported": QColor("#12808f"),  # teal
    "failed": QColor("#c4501c"),  # orange-red
    "uncaptioned": QColor("#737373"),  # grey
    "invalid": QColor("#b8283c"),  # crimson
    "missing": QColor("#8f6b00"),  # dark amber
}
"""Badge fill per state. Each has a relative luminance between 0.1 and 0.3 (WCAG 2), which
gives at least 3:1 contrast (WCAG's minimum for graphical objects) against both a white and a
black background, so the badges read on light and dark palettes alike."""

TOOLTIP_WIDTH = 72
"""Characters per line of the wrapped caption or reason in a tooltip."""

TOOLTIP_MAX_CHARS = 1200
"""Longer captions are cut (with "…") in the tooltip; the caption editor shows them whole."""

_IMAGE_ROLES = (Qt.ItemDataRole.DecorationRole,)


def qa_text(count: QACount) -> str:
    """How the grid's tooltip names an image's question-answer pairs: ``3 question-answer
    pairs, 1 confirmed`` (and how many are invalid)."""
    text = f"{count.total} question-answer pair{'s' if count.total != 1 else ''}, " \
        f"{count.confirmed} confirmed"
    return text + (f", {count.invalid} invalid" if count.invalid else "")


def image_state(record: ImageRecord, missing: bool) -> str:
    """The state of an image, one of :data:`STATES`.

    In order: ``invalid`` (the scan found the file unusable), ``missing`` (``missing``: the file
    is no longer on disk), the provenance of a non-empty caption (``generated``, ``edited``,
    ``manual``, ``imported``), ``failed`` (the latest attempt failed), else ``uncaptioned``.
    """
    if not record.valid:
        return "invalid"
    if missing:
        return "missing"
    if record.has_caption and record.caption is not None:
        return record.caption.provenance.value
    if record.failed:
        return "failed"
    return "uncaptioned"


def state_text_color(state: str) -> QColor:
    """Black or white, whichever contrasts more with the state's badge colour."""
    return _contrasting(STATE_COLORS[state])


def relative_luminance(color: QColor) -> float:
    """WCAG 2 relative luminance of an sRGB colour, 0 (black) to 1 (white)."""

    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    return (0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF())
            + 0.0722 * channel(color.blueF()))


def _contrasting(color: QColor) -> QColor:
    lum = relative_luminance(color)
    on_white = 1.05 / (lum + 0.05)
    on_black = (lum + 0.05) / 0.05
    return QColor(Qt.GlobalColor.white) if on_white >= on_black else QColor(Qt.GlobalColor.black)


def _wrapped_html(text: str) -> str:
    """``text`` cut to TOOLTIP_MAX_CHARS, wrapped to TOOLTIP_WIDTH columns, HTML-escaped."""
    text = text.strip()
    if len(text) > TOOLTIP_MAX_CHARS:
        text = text[: TOOLTIP_MAX_CHARS - 1].rstrip() + "…"
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, TOOLTIP_WIDTH, break_long_words=True,
                                   break_on_hyphens=False) or [""])
    return "<br>".join(html.escape(line) for line in lines)


#: Labels for images by stored path (:func:`loracap.core.text.path_labels`).
grid_labels = path_labels


class ImageListModel(QAbstractListModel):
    """One row per image, in the order of the records given; ``data()`` answers from memory.

    The rows are an :class:`~loracap.core.image_rows.ImageRows` (compact columns: a million
    images in a few hundred MB); a row's :class:`ImageRecord` is made when asked for
    (:meth:`record`, ``Roles.RECORD``, the tooltip) and the last few are kept, so painting the
    grid makes records only for the rows on screen. The other roles read single fields.

    Roles: ``DisplayRole`` the file name, or the end of the path that tells images of the same
    name apart (:func:`grid_labels`); ``DecorationRole`` the thumbnail, the provider's
    placeholder while it loads, or its broken pixmap for invalid and missing files (no load is
    queued for them); ``ToolTipRole`` rich text with the file name, the state and the reason or
    the caption; and :class:`Roles`. Use from the GUI thread only.

    The model also keeps two sets of counts up to date incrementally (no recount on an update):
    the tag frequencies of the valid images' caption bodies (:meth:`tag_counter`, split on the
    project's tag separator) and the review-progress counts (:meth:`status_counts`).

    Signals: ``tag_counts_changed(dict)`` -- tag -> new count (0 = gone) after an update;
    ``tags_reset()`` -- the counts were rebuilt (new records or a new separator);
    ``status_changed()`` -- :meth:`status_counts` may have changed.
    """

    tag_counts_changed = pyqtSignal(dict)
    tags_reset = pyqtSignal()
    status_changed = pyqtSignal()

    def __init__(self, thumbnails: ThumbnailProvider, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thumbnails = thumbnails
        self._rows = ImageRows(Path())
        self._labels: dict[int, str] = {}  # row -> DisplayRole where it is not the file name
        self._recent: dict[int, ImageRecord] = {}  # row -> record, the last few made
        self._missing: set[int] = set()
        self._settings: ProjectSettings | None = None
        self._counter = TagCounter()
        self._status: dict[str, int] = dict.fromkeys(_STATUS_KEYS, 0)
        self._qa: dict[int, QACount] = {}
        #: True between :meth:`begin_loading` and :meth:`finish_loading`: the rows are still
        #: coming, and the tag counts wait for every row (edits meanwhile are kept here).
        self._loading = False
        self._pending_tag_edits: list[tuple[str, str]] = []
        #: Updates of images whose row has not come yet (while loading): applied when it does.
        self._early: dict[int, tuple[ImageRecord, bool | None]] = {}
        thumbnails.thumbnail_ready.connect(self._on_thumbnail_ready)

    # ------------------------------------------------------------------ feeding the model

    def set_records(self, records: Sequence[ImageRecord], settings: ProjectSettings | None,
                    missing_ids: Iterable[int] = frozenset()) -> None:
        """Replace every row (a model reset). ``records``: an
        :class:`~loracap.core.image_rows.ImageRows` (kept as it is: do not change it
        afterwards) or any sequence of records; ``missing_ids``: images whose file is not on
        disk.

        Rows keep the order of ``records``. ``settings`` None (no project open) shows caption
        bodies without a prefix. Raises ValueError if two records share an id.
        """
        rows = _as_rows(records)
        self._loading = False
        self._pending_tag_edits = []
        self._early = {}
        self.beginResetModel()
        try:
            self._rows = rows
            self._labels = path_label_changes(rows.paths())
            self._recent = {}
            self._missing = {image_id for image_id in missing_ids if rows.row_of(image_id) >= 0}
            self._settings = settings
        finally:
            self.endResetModel()
        self._recount()

    # ------------------------------------------------------------------ loading in steps

    @property
    def loading(self) -> bool:
        """Whether a large project's rows are still being loaded (:meth:`begin_loading`)."""
        return self._loading

    def begin_loading(self, records: Sequence[ImageRecord],
                      settings: ProjectSettings | None) -> None:
        """Show the first rows of a large project at once (a model reset); the others follow
        with :meth:`append_records`, in the same order, and :meth:`finish_loading` brings what
        needs every row: the labels that tell images of the same name apart, the tag counts
        and the missing files. Until then the rows are labelled by file name, the tag counts
        are empty (``tags_reset`` follows when they are ready) and no file is missing; the
        review counts grow with the rows. ``records`` as for :meth:`set_records`; the rows
        appended later must share its table of common values (``ImageRows(..., like=...)``)
        to be added column by column. ``settings`` None: the project is still opening
        (:meth:`set_settings` follows)."""
        rows = _as_rows(records)
        self._loading = False
        self.beginResetModel()
        try:
            self._rows = ImageRows(rows.folder, like=rows)
            self._labels = {}
            self._recent = {}
            self._missing = set()
            self._settings = settings
        finally:
            self.endResetModel()
        self._loading = True
        self._pending_tag_edits = []
        self._early = {}
        self._counter = TagCounter(settings.tag_separator if settings else DEFAULT_SEPARATOR)
        self._status = dict.fromkeys(_STATUS_KEYS, 0)
        self.append_records(rows)
        self.tags_reset.emit()

    def append_records(self, records: Sequence[ImageRecord]) -> None:
        """Add rows at the end (the next records of :meth:`begin_loading`'s order). Raises
        ValueError for an image id already shown (nothing is added then)."""
        if not records:
            return
        rows = self._rows
        start = len(rows)
        added = records if isinstance(records, ImageRows) else _as_rows(records, rows.folder)
        self.beginInsertRows(QModelIndex(), start, start + len(added) - 1)
        try:
            rows.extend(added)
        finally:
            self.endInsertRows()
        for key, value in rows.status_counts(start).items():
            self._status[key] += value
        self.status_changed.emit()
        if self._early:
            for image_id in list(self._early):
                if rows.row_of(image_id) >= 0:
                    record, missing = self._early.pop(image_id)
                    self.update_record(record, missing)

    def finish_loading(self, labels: Mapping[int, str] | Sequence[str], counter: TagCounter,
                       missing_ids: Iterable[int]) -> None:
        """Every row is in: ``labels`` the labels that are not the file name, by row
        (:func:`~loracap.core.text.path_label_changes`; or every row's label in order,
        :func:`grid_labels`), ``counter`` the tag counts of the rows as loaded (edits made
        meanwhile are applied on top) and the images whose file is missing. Emits
        ``tags_reset``."""
        for old_body, new_body in self._pending_tag_edits:
            counter.replace_caption(old_body, new_body)
        self._pending_tag_edits = []
        self._counter = counter
        self._loading = False
        self._early = {}
        if not isinstance(labels, Mapping):
            rows = self._rows
            labels = {row: label for row, label in enumerate(labels)
                      if row < len(rows) and label != rows.file_name(row)}
        self._set_labels(dict(labels))
        for image_id in missing_ids:
            if self._rows.row_of(image_id) >= 0 and image_id not in self._missing:
                self.set_missing(image_id, True)
        self.tags_reset.emit()

    def set_qa_counts(self, counts: dict[int, QACount]) -> None:
        """The question-answer counts of every image (images without pairs left out), e.g.
        after opening a project; the rows say so and the filter looks again."""
        self._qa = dict(counts)
        if len(self._rows):
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, 0),
                                  [Roles.QA, Roles.RECORD, Qt.ItemDataRole.ToolTipRole])

    def update_qa_count(self, image_id: int, count: QACount | None) -> None:
        """One image's question-answer count after an edit (None: no pair left)."""
        if count is None or not count.total:
            changed = self._qa.pop(image_id, None) is not None
        else:
            changed = self._qa.get(image_id) != count
            self._qa[image_id] = count
        row = self._rows.row_of(image_id)
        if changed and row >= 0:
            index = self.index(row, 0)
            self.dataChanged.emit(index, index,
                                  [Roles.QA, Roles.RECORD, Qt.ItemDataRole.ToolTipRole])

    def qa_count(self, image_id: int) -> QACount | None:
        """The image's question-answer count, None when it has no pair."""
        return self._qa.get(image_id)

    def _recount(self) -> None:
        separator = self._settings.tag_separator if self._settings else DEFAULT_SEPARATOR
        counter = TagCounter(separator)
        for body in self._rows.counted_bodies():
            counter.add_caption(body)
        self._counter = counter
        self._status = self._rows.status_counts()
        self.tags_reset.emit()
        self.status_changed.emit()

    def update_record(self, record: ImageRecord, missing: bool | None = None) -> bool:
        """Replace the row of ``record.id`` and emit ``dataChanged`` with the roles that changed.

        ``missing`` None keeps the row's missing flag. Returns False (and changes nothing) when
        no row has that id -- while a large project loads, the update is kept and applied when
        the row comes. A new path, mtime, size or validity drops the cached thumbnail.
        """
        row = self._rows.row_of(record.id)
        if row < 0:
            if self._loading:
                self._early[record.id] = (record, missing)
            log.debug("update_record: image %s is not in the model", record.id)
            return False
        old = self.record(row)
        was_missing = record.id in self._missing
        now_missing = was_missing if missing is None else bool(missing)
        if old == record and was_missing == now_missing:
            return True
        self._rows.set(row, record)
        self._recent.pop(row, None)
        if now_missing:
            self._missing.add(record.id)
        else:
            self._missing.discard(record.id)
        old_status, new_status = _status_of(old), _status_of(record)
        if old_status != new_status:
            for key in _STATUS_KEYS:
                self._status[key] += new_status[key] - old_status[key]
        old_body, new_body = counted_body(old), counted_body(record)
        if old_body != new_body and self._loading:
            self._pending_tag_edits.append((old_body, new_body))
        elif old_body != new_body:
            changed = self._counter.replace_caption(old_body, new_body)
            if changed:
                self.tag_counts_changed.emit(changed)
        if old_status != new_status:
            self.status_changed.emit()

        roles: list[int] = [Roles.RECORD]
        if old.path != record.path:
            roles.append(Roles.PATH)
            self._set_labels(path_label_changes(self._rows.paths()))
        file_changed = (old.path, old.abs_path, old.mtime, old.file_size) != (
            record.path, record.abs_path, record.mtime, record.file_size)
        if file_changed:
            self._thumbnails.invalidate(record.id)
        if file_changed or old.valid != record.valid or was_missing != now_missing:
            roles.append(Qt.ItemDataRole.DecorationRole)
        if image_state(old, was_missing) != image_state(record, now_missing):
            roles.append(Roles.STATE)
        if self._caption(old) != self._caption(record):
            roles.append(Roles.CAPTION)
        roles.append(Qt.ItemDataRole.ToolTipRole)
        index = self.index(row, 0)
        self.dataChanged.emit(index, index, roles)
        return True

    def set_settings(self, settings: ProjectSettings) -> None:
        """Use new project settings; a new caption prefix updates every row's caption. While
        rows load, the tag counts wait for :meth:`finish_loading` (they are counted with the
        project's separator)."""
        old = self._settings
        self._settings = settings
        if self._loading:
            self._counter = TagCounter(settings.tag_separator)
        elif old is None or old.tag_separator != settings.tag_separator:
            self._recount()
        if old is not None and (old.prefix_template, old.trigger) == (
            settings.prefix_template, settings.trigger
        ):
            return
        if len(self._rows):
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._rows) - 1, 0),
                [Roles.CAPTION, Qt.ItemDataRole.ToolTipRole],
            )

    def refresh_thumbnails(self) -> None:
        """Ask the views to fetch every thumbnail again (e.g. after a change of screen scale)."""
        if len(self._rows):
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, 0),
                                  [Qt.ItemDataRole.DecorationRole])

    def set_missing(self, image_id: int, missing: bool) -> None:
        """Mark one image's file as missing or back on disk (same as ``update_record``)."""
        row = self._rows.row_of(image_id)
        if row >= 0:
            self.update_record(self.record(row), missing)

    # ------------------------------------------------------------------ lookups

    def record(self, row: int) -> ImageRecord:
        """The record shown in ``row``; raises IndexError outside ``0 .. rowCount()-1``."""
        record = self._recent.get(row)
        if record is None:
            if not 0 <= row < len(self._rows):
                raise IndexError(f"no row {row} in a model of {len(self._rows)} rows")
            if len(self._recent) >= _RECENT_RECORDS:
                self._recent.clear()
            record = self._recent[row] = self._rows.record(row)
        return record

    def row_of(self, image_id: int) -> int:
        """The row of an image id, -1 if it is not in the model. O(1)."""
        return self._rows.row_of(image_id)

    def records(self) -> list[ImageRecord]:
        """A copy of the records, in row order (each one made: slow for a large project;
        :meth:`image_ids` and :meth:`record` are not)."""
        return list(self._rows)

    def image_ids(self) -> list[int]:
        """The image ids, in row order."""
        return self._rows.ids().tolist()

    def is_missing(self, image_id: int) -> bool:
        """True when the image's file was reported missing."""
        return image_id in self._missing

    def missing_count(self) -> int:
        """How many images' files were reported missing (invalid images not counted)."""
        rows = self._rows
        return sum(1 for image_id in self._missing
                   if rows.flags(rows.row_of(image_id)) & VALID)

    def settings(self) -> ProjectSettings | None:
        """The project settings in use (None before :meth:`set_records`)."""
        return self._settings

    def tag_counter(self) -> TagCounter:
        """The tag frequencies of the valid images' captions (kept current; do not modify)."""
        return self._counter

    def status_counts(self) -> dict[str, int]:
        """``{"valid", "reviewed", "failed", "uncaptioned"}`` image counts, kept current."""
        return dict(self._status)

    # ------------------------------------------------------------------ Qt model interface

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
                | Qt.ItemFlag.ItemNeverHasChildren)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = index.row()
        rows = self._rows
        if not 0 <= row < len(rows) or index.column() != 0:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._labels.get(row) or rows.file_name(row)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(row)
        if role == Roles.STATE:
            return self._state(row)
        if role == Roles.RECORD:
            return self.record(row)
        if role == Roles.IMAGE_ID:
            return rows.id(row)
        if role == Roles.CAPTION:
            return self._caption_of(rows.body(row))
        if role == Roles.PATH:
            return rows.path(row)
        if role == Roles.QA:
            return self._qa.get(rows.id(row))
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(self.record(row))
        return None

    def roleNames(self) -> dict[int, Any]:
        names = dict(super().roleNames())
        for role, name in ((Roles.IMAGE_ID, b"imageId"), (Roles.STATE, b"state"),
                           (Roles.CAPTION, b"caption"), (Roles.PATH, b"path"),
                           (Roles.RECORD, b"record"), (Roles.QA, b"qa")):
            names[int(role)] = QByteArray(name)
        return names

    # ------------------------------------------------------------------ helpers

    def _set_labels(self, labels: dict[int, str]) -> None:
        """New labels (where they are not the file name); ``dataChanged`` for each row whose
        label changed."""
        old, self._labels = self._labels, labels
        for row in sorted(old.keys() ^ labels.keys() | {
                row for row in old.keys() & labels.keys() if old[row] != labels[row]}):
            index = self.index(row, 0)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole])

    def _state(self, row: int) -> str:
        """:func:`image_state` of ``row``, from its flags alone."""
        rows = self._rows
        flags = rows.flags(row)
        if not flags & VALID:
            return "invalid"
        if self._missing and rows.id(row) in self._missing:
            return "missing"
        if flags & HAS_TEXT:
            provenance = rows.provenance(row)
            return provenance.value if provenance is not None else "uncaptioned"
        return "failed" if flags & LAST_FAILED else "uncaptioned"

    def _caption(self, record: ImageRecord) -> str:
        return self._caption_of(record.caption.body if record.caption is not None else None)

    def _caption_of(self, body: str | None) -> str:
        """The full caption shown for a caption ``body`` (None: no caption)."""
        if body is None:
            return ""
        if self._settings is None:
            return body.strip()
        return full_caption(self._settings.prefix_template, self._settings.trigger, body)

    def _decoration(self, row: int) -> Any:
        rows = self._rows
        image_id = rows.id(row)
        if not rows.flags(row) & VALID or image_id in self._missing:
            return self._thumbnails.broken_pixmap()
        mtime, size = rows.file_state(row)
        pixmap = self._thumbnails.pixmap(image_id, rows.abs_path(row), mtime, size)
        return pixmap if pixmap is not None else self._thumbnails.placeholder()

    def _tooltip(self, record: ImageRecord) -> str:
        state = image_state(record, record.id in self._missing)
        parts = [f"<b>{html.escape(record.file_name)}</b>", html.escape(STATE_LABELS[state])]
        if record.outside:
            parts.append(html.escape(OUTSIDE_TEXT))
        if record.people == 0:
            parts.append(html.escape(NO_PERSON_TEXT))
        qa = self._qa.get(record.id)
        if qa is not None:
            parts.append(html.escape(qa_text(qa)))
        if state == "invalid":
            detail = record.invalid_reason or "The file cannot be used."
        elif state == "missing":
            detail = f"The file is no longer at {record.abs_path}"
        elif state == "failed":
            detail = record.last_error
        elif state == "uncaptioned":
            detail = ""
        else:
            detail = self._caption(record)
        if detail:
            parts.append(_wrapped_html(detail))
        return "<br>".join(parts)

    @pyqtSlot(int)
    def _on_thumbnail_ready(self, image_id: int) -> None:
        row = self._rows.row_of(image_id)
        if row >= 0:
            index = self.index(row, 0)
            self.dataChanged.emit(index, index, list(_IMAGE_ROLES))


_STATUS_KEYS = ("valid", "reviewed", "failed", "uncaptioned")

#: Records :meth:`ImageListModel.record` keeps (more than a screen of rows): the rows a paint
#: asks about several times.
_RECENT_RECORDS = 512


def _as_rows(records: Sequence[ImageRecord], folder: Path | None = None) -> ImageRows:
    """``records`` as :class:`ImageRows` (as they are if they already are). Raises
    ValueError if two records share an id."""
    if isinstance(records, ImageRows):
        return records
    if folder is None:
        folder = _folder_of(records)
    rows = ImageRows(folder)
    for record in records:
        rows.append_record(record)
    return rows


def _folder_of(records: Sequence[ImageRecord]) -> Path:
    """The project folder of records: where a record's file is its path below the folder."""
    for record in records:
        tail = "/" + record.path
        whole = record.abs_path.as_posix()
        if not record.outside and whole.endswith(tail):
            return Path(whole[:-len(tail)] or "/")
    return Path()


def _status_of(record: ImageRecord) -> dict[str, int]:
    if not record.valid:
        return dict.fromkeys(_STATUS_KEYS, 0)
    return {
        "valid": 1,
        "reviewed": int(record.review is not Review.UNREVIEWED),
        "failed": int(record.failed),
        "uncaptioned": int(not record.has_caption and not record.failed),
    }


class ImageFilterProxy(QSortFilterProxyModel):
    """Filters an :class:`ImageListModel` by text and by state; keeps the source's row order.

    The text filter matches, ignoring case, anywhere in the file name, the stored path or the
    full caption. The state filter keeps the rows whose state is in the set (None: all).
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._states: frozenset[str] | None = None
        self._query: Query | None = None
        self._query_text = ""
        self._separator = DEFAULT_SEPARATOR
        # The record changes on every update_record, so re-filtering on this role catches any
        # change of state or caption even on Qt versions that re-filter only for this role.
        self.setFilterRole(Roles.RECORD)

    def text_filter(self) -> str:
        """The current text filter, as given (stripped)."""
        return self._text

    def state_filter(self) -> frozenset[str] | None:
        """The current state filter (None: every state)."""
        return self._states

    def set_text_filter(self, text: str) -> None:
        """Keep only rows whose file name, path or caption contains ``text`` (any case)."""
        text = text.strip()
        if text == self._text:
            return
        self._change_filter(lambda: setattr(self, "_text", text))

    def set_query(self, text: str) -> str:
        """Filter with the query language of :mod:`loracap.core.query` (``tag:lamp
        state:edited``, ...). Returns ``""``, or the syntax error's message when ``text`` is not
        a valid query -- the filter then stays as it was, instead of showing nothing."""
        try:
            query = parse_query(text, self._separator)
        except QuerySyntaxError as exc:
            return str(exc)
        self._query_text = text
        new = None if query.matches_everything else query
        if new is None and self._query is None:
            return ""
        self._change_filter(lambda: setattr(self, "_query", new))
        return ""

    def set_separator(self, separator: str) -> None:
        """Split captions into tags on ``separator`` for ``tag:`` terms (the project setting)."""
        if separator == self._separator:
            return
        self._separator = separator
        if self._query is not None:
            self._query = None
            self.set_query(self._query_text)

    def set_state_filter(self, states: frozenset[str] | None) -> None:
        """Keep only rows in one of ``states`` (values of ``image_state``); None keeps all."""
        states = frozenset(states) if states is not None else None
        if states == self._states:
            return
        unknown = (states or frozenset()) - set(STATES)
        if unknown:
            raise ValueError(f"unknown image state(s): {', '.join(sorted(unknown))}")
        self._change_filter(lambda: setattr(self, "_states", states))

    def _change_filter(self, apply: Any) -> None:
        # Qt 6.10 added begin/endFilterChange and deprecates invalidateFilter (a warning).
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            apply()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            apply()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        if self._states is None and self._query is None and not self._text:
            return True  # no filter: asked of every row a large project appends
        model = self.sourceModel()
        if model is None:
            return False
        index = model.index(source_row, 0, source_parent)
        if self._states is not None and index.data(Roles.STATE) not in self._states:
            return False
        if self._query is not None and not self._query.matches(self._query_item(index)):
            return False
        if not self._text:
            return True
        needle = self._text.casefold()
        # The stored path ends with the file name, so matching it matches the name too.
        path = str(index.data(Roles.PATH) or "")
        caption = str(index.data(Roles.CAPTION) or "")
        return needle in path.casefold() or needle in caption.casefold()

    @staticmethod
    def _query_item(index: QModelIndex) -> QueryItem:
        record = index.data(Roles.RECORD)
        body = record.caption.body if isinstance(record, ImageRecord) and record.caption else ""
        qa = index.data(Roles.QA)
        return QueryItem(
            file_name=str(index.data(Qt.ItemDataRole.DisplayRole) or ""),
            caption=str(index.data(Roles.CAPTION) or ""),
            state=str(index.data(Roles.STATE) or ""),
            review=record.review.value if isinstance(record, ImageRecord) else "unreviewed",
            body=body,
            qa_total=qa.total if isinstance(qa, QACount) else 0,
            qa_confirmed=qa.confirmed if isinstance(qa, QACount) else 0,
            qa_best_score=qa.best_score if isinstance(qa, QACount) else None,
            qa_tags=qa.tags if isinstance(qa, QACount) else frozenset(),
        )


__all__ = [
    "STATES", "STATE_BADGES", "STATE_COLORS", "STATE_LABELS", "ImageFilterProxy",
    "ImageListModel", "Roles", "image_state", "relative_luminance", "state_text_color",
]
