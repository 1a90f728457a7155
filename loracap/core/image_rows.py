"""A project's images as compact columns, read with plain SQL (issue 15, "Open 100,000 images in
half a second").

:class:`ImageRows` holds images -- every field of :class:`~loracap.core.records.ImageRecord` --
as columns: arrays of numbers, texts most images share (a format, a reason, a backend, model
and prompt, an error) stored once and named by number, and the file names and caption bodies
packed 1,024 rows to a string. It is a ``Sequence[ImageRecord]`` whose records are made when
asked for, so a million images take a few hundred bytes each instead of about 1,600 as records,
and the window's grid makes records only for the rows it paints. :meth:`ImageRows.set`
replaces one row (an edit), :meth:`ImageRows.extend` appends rows.

:func:`path_order` and :func:`read_rows` read images from a project file through ``sqlite3``
(plain tuples: no ORM object, no SQLAlchemy import): the ids in the order the program shows
images (by path ignoring case, then by the exact path), sorted by SQLite, and the rows of given
ids in the order given, one query of the images, their captions and latest attempts for every
500 ids. :class:`~loracap.core.project.Project` makes its records through them, and the
window's background load reads through them.

This module imports nothing heavy (``sqlite3`` and the records), so the window can use it at
startup.
"""

from __future__ import annotations

import heapq
import itertools
import json
import operator
import os
import sqlite3
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path, PurePath
from typing import Any, overload
from urllib.parse import quote

from loracap.core.records import CaptionRecord, ImageRecord, Provenance, Review, readable_path
from loracap.core.tables import fs_decode

#: Rows of a packed text column per string (:class:`_Texts`).
BLOCK = 1024

#: Image ids per query of :func:`read_rows` (SQLite limits the variables of one statement;
#: a divisor of :data:`BLOCK`, so parts of whole blocks are read in whole queries).
IDS_PER_QUERY = 512

#: The review marks and provenances by their number in the columns (provenance 0: no caption).
REVIEWS: tuple[Review, ...] = (Review.UNREVIEWED, Review.APPROVED, Review.REJECTED)
PROVENANCES: tuple[Provenance | None, ...] = (None, *Provenance)
_REVIEW_NUMBERS = {review.value: number for number, review in enumerate(REVIEWS)}
_PROVENANCE_NUMBERS = {p.value: n for n, p in enumerate(PROVENANCES) if p is not None}

#: Bits of an image's flags: valid; its path leaves the project folder
#: (:attr:`ImageRecord.outside`); a caption that is not blank (:attr:`ImageRecord.has_caption`);
#: its latest attempt failed with an error (:attr:`ImageRecord.last_error`).
VALID, OUTSIDE, HAS_TEXT, LAST_FAILED = 1, 2, 4, 8
#: Set by the query for a path that may leave the folder; checked in Python, then cleared.
_MAYBE_OUTSIDE = 16
#: ``bytes.translate`` tables over the flags and review marks (:meth:`ImageRows.status_counts`).
_STATE_BITS = bytes(flags & (VALID | HAS_TEXT | LAST_FAILED) for flags in range(256))
_VALID_BYTE = bytes(flags & VALID for flags in range(256))
_NONZERO_BYTE = bytes(int(value != 0) for value in range(256))

#: A run of at least this many paths in one folder is looked up with one listing of the
#: folder (:func:`files_present`) instead of one ``stat`` per file.
LIST_FOLDER_FROM = 16

#: A time stored as microseconds since 1970-01-01 (naive, as SQLAlchemy writes them);
#: :data:`_NO_TIME` for none, :data:`_ODD_TIME` for one kept aside (a time with a zone).
_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_NO_TIME = -(2**63)
_ODD_TIME = -(2**63) + 1

#: Paths a stored image path is anchored by on this system (absolute, or a drive on Windows):
#: a path without them and without ``..`` never leads out of the project folder.
_ANCHORS = ("/", "\\") if os.name == "nt" else ("/",)

#: Every character ``str.strip()`` removes (``str.isspace``), for SQLite's ``trim(X, Y)``: a
#: caption is there when its body is not blank (:attr:`ImageRecord.has_caption`).
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
              "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def _numbered(column: str, numbers: dict[str, int]) -> str:
    """SQL giving the number of ``column``'s value in ``numbers`` (the value itself when it
    has none: a value a checked file never holds, refused when the row is added)."""
    cases = " ".join(f"WHEN '{value}' THEN {number}" for value, number in numbers.items())
    return f"CASE {column} {cases} ELSE {column} END"


#: The columns of :class:`ImageRows`, one row per image: its caption and latest attempt (the
#: caption attempt of the highest id) joined, both outer. As few Python objects per row as
#: the fields allow: the flags in one number, review marks and provenances as numbers, a
#: caption's source (backend, model, prompt) and a failure (error, kind) as one JSON text, an
#: update time only when it differs from the creation time.
_ROWS_SQL = (
    "SELECT images.id, images.path, "
    "images.valid"
    " | CASE WHEN captions.image_id IS NOT NULL AND trim(captions.body, ?) != '' THEN 4 ELSE 0 END"
    " | CASE WHEN latest.ok = 0 AND latest.error != '' THEN 8 ELSE 0 END"
    " | CASE WHEN instr(images.path, '..') OR instr(images.path, ':')"
    " OR substr(images.path, 1, 1) IN ('/', '\\') THEN 16 ELSE 0 END, "
    "images.invalid_reason, ifnull(images.width, -1), ifnull(images.height, -1), "
    "images.format, images.file_size, images.mtime, "
    f"{_numbered('images.review', _REVIEW_NUMBERS)}, ifnull(images.rating, 0), images.note, "
    "CASE WHEN captions.image_id IS NULL THEN 0 ELSE "
    f"{_numbered('captions.provenance', _PROVENANCE_NUMBERS)} END, "
    "ifnull(captions.body, ''), "
    "CASE WHEN captions.image_id IS NOT NULL THEN "
    "json_array(captions.backend, captions.model, captions.prompt) END, "
    "captions.created_at, "
    "CASE WHEN captions.updated_at != captions.created_at THEN captions.updated_at END, "
    "CASE WHEN latest.ok = 0 THEN json_array(latest.error, latest.error_kind) END "
    "FROM images LEFT OUTER JOIN captions ON captions.image_id = images.id "
    "LEFT OUTER JOIN caption_attempts AS latest ON latest.id = "
    "(SELECT max(caption_attempts.id) FROM caption_attempts "
    "WHERE caption_attempts.image_id = images.id)")

#: A stored path whose order SQLite's ``lower(path), path`` gives exactly as Python's
#: ``(path.casefold(), path)``: text of ASCII characters only (as many characters as bytes).
_ASCII_PATH = "typeof(path) = 'text' AND length(path) = length(CAST(path AS BLOB))"


def leaves_folder(stored: str) -> bool:
    """True when a stored image path is absolute or leads out of the project folder
    (``../notes.jpg``, ``a/../../b.jpg``), by this system's rules for paths; no disk access."""
    path = PurePath(stored)
    if path.is_absolute() or path.anchor:
        return True
    depth = 0
    for part in path.parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part != ".":
            depth += 1
    return False


def is_outside(stored: str) -> bool:
    """:func:`leaves_folder`, without building a path for the common stored path that has no
    anchor and no ``..``."""
    if ".." in stored or stored.startswith(_ANCHORS) or (os.name == "nt" and ":" in stored):
        return leaves_folder(stored)
    return False


def order_key(path: str) -> tuple[str, str]:
    """How images are ordered: by the readable path ignoring case, then by the exact path."""
    return path.casefold(), path


def stored_text(stored: str | bytes) -> str:
    """A stored path as Python names the file: a BLOB (a name that is not UTF-8) decoded with
    surrogate escapes (:func:`loracap.core.tables.fs_decode`)."""
    if isinstance(stored, str):
        return stored
    return fs_decode(stored)


class _Interned:
    """Values many rows share, each stored once and named by a number (0 is ``""``, 1 is None).
    Thread-safe: the window's load adds values on a pool thread while the GUI thread reads."""

    __slots__ = ("_lock", "decoded", "numbers", "values")

    def __init__(self) -> None:
        self.values: list[Any] = ["", None]
        self.numbers: dict[Any, int] = {"": 0, None: 1}
        #: JSON texts of :data:`_ROWS_SQL` read once: number -> list.
        self.decoded: dict[int, tuple[Any, ...]] = {}
        self._lock = threading.Lock()

    def number(self, value: Any) -> int:
        """The number of ``value``, given one if it has none yet."""
        number = self.numbers.get(value)
        if number is None:
            with self._lock:
                number = self.numbers.get(value)
                if number is None:
                    number = len(self.values)
                    self.values.append(value)
                    self.numbers[value] = number
        return number

    def numbered(self, values: Sequence[Any]) -> array[int]:
        """The numbers of ``values``, in order."""
        numbers = list(map(self.numbers.get, values))
        if None in numbers:
            return array("i", map(self.number, values))
        return array("i", numbers)  # type: ignore[arg-type]  # no None left

    def json(self, number: int) -> tuple[Any, ...]:
        """The JSON list numbered ``number`` as a tuple (``()`` for ``""`` and None)."""
        decoded = self.decoded.get(number)
        if decoded is None:
            text = self.values[number]
            decoded = self.decoded[number] = tuple(json.loads(text)) if text else ()
        return decoded


class _Texts:
    """Texts by row, packed :data:`BLOCK` rows to a string (one object per block, not per row);
    a text replaced later is kept aside."""

    __slots__ = ("_blocks", "_changed", "_open")

    def __init__(self) -> None:
        self._blocks: list[tuple[str, array[int]]] = []  # the texts joined, where each starts
        self._open: list[str] = []  # the rows after the last full block
        self._changed: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._blocks) * BLOCK + len(self._open)

    def __getitem__(self, row: int) -> str:
        if self._changed:
            changed = self._changed.get(row)
            if changed is not None:
                return changed
        block, offset = divmod(row, BLOCK)
        if block < len(self._blocks):
            text, starts = self._blocks[block]
            return text[starts[offset]:starts[offset + 1]]
        return self._open[offset]

    def set(self, row: int, text: str) -> None:
        self._changed[row] = text

    def extend_from(self, other: _Texts, start: int, stop: int) -> None:
        """Append ``other``'s rows ``start`` to ``stop``: its full blocks shared (not copied)
        when both are at a block boundary."""
        if not self._open and not other._changed and start % BLOCK == 0:
            whole = min(stop // BLOCK, len(other._blocks))
            if whole > start // BLOCK:
                self._blocks.extend(other._blocks[start // BLOCK:whole])
                start = whole * BLOCK
        self.extend([other[row] for row in range(start, stop)])

    def extend(self, texts: Sequence[str]) -> None:
        start = 0
        while start < len(texts):
            take = BLOCK - len(self._open)
            self._open.extend(texts[start:start + take])
            start += take
            if len(self._open) == BLOCK:
                block = self._open
                starts = array("I", itertools.accumulate(map(len, block), initial=0))
                self._blocks.append(("".join(block), starts))
                self._open = []


#: The number columns of :class:`ImageRows` (attribute, type code; ``B`` a bytearray).
_NUMBER_COLUMNS = (
    ("_ids", "q"), ("_flags", "B"), ("_reasons", "i"), ("_widths", "i"), ("_heights", "i"),
    ("_formats", "i"), ("_sizes", "q"), ("_mtimes", "d"), ("_reviews", "B"), ("_ratings", "B"),
    ("_notes", "i"), ("_provenances", "B"), ("_sources", "i"), ("_created", "q"),
    ("_updated", "q"), ("_failures", "i"), ("_people", "i"))


class ImageRows(Sequence[ImageRecord]):
    """Images as columns (see the module); a ``Sequence[ImageRecord]`` in row order.

    ``rows[i]`` makes the record of row ``i``; ``rows[a:b]`` is an :class:`ImageRows` of those
    rows. The accessors (:meth:`id`, :meth:`path`, :meth:`body`, :meth:`flags`, …) read one
    field without making a record. ``folder`` is the project folder (``abs_path`` is resolved
    against it). Rows are appended (:meth:`extend`, :func:`read_rows`) and replaced
    (:meth:`set`), never removed. Not thread-safe, except that stores made ``like`` one another
    share their table of common values safely.
    """

    def __init__(self, folder: Path, *, like: ImageRows | None = None) -> None:
        self.folder = Path(folder)
        #: Values shared by many rows (reasons, formats, notes, caption sources, failures),
        #: shared with ``like`` so that :meth:`extend` copies numbers.
        self._common: _Interned = like._common if like is not None else _Interned()
        self._folders: dict[str, Path] = {}  # stored folder -> project folder / folder
        self._ids = array("q")
        self._paths = _Texts()  # as stored (exact: a name that is not UTF-8 as surrogates)
        self._flags = bytearray()  # VALID | OUTSIDE | HAS_TEXT | LAST_FAILED
        self._reasons = array("i")
        self._widths = array("i")  # -1: None
        self._heights = array("i")
        self._formats = array("i")
        self._sizes = array("q")
        self._mtimes = array("d")
        self._reviews = bytearray()  # the number in REVIEWS
        self._ratings = bytearray()  # 0: None
        self._notes = array("i")
        self._provenances = bytearray()  # the number in PROVENANCES, 0: no caption
        self._bodies = _Texts()  # "" without a caption
        self._sources = array("i")  # JSON [backend, model, prompt]
        self._created = array("q")  # microseconds since 1970 (_NO_TIME, _ODD_TIME)
        self._updated = array("q")
        self._failures = array("i")  # JSON [error, kind] of a failed latest attempt, or 1
        self._people = array("i")  # -1: None
        self._odd_times: dict[tuple[int, int], datetime] = {}  # (row, 0 created/1 updated)
        # The row of each image id: by id in an array (ids are mostly 1..n), -1 for none; the
        # few ids far beyond the number of rows in a dict.
        self._row_at = array("i")
        self._far_rows: dict[int, int] = {}
        #: A row's readable path where it is not that of its stored path (a record given by
        #: hand whose path and file disagree): kept as given.
        self._shown_paths: dict[int, str] = {}

    # ------------------------------------------------------------------ Sequence

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> ImageRecord: ...

    @overload
    def __getitem__(self, index: slice) -> ImageRows: ...

    def __getitem__(self, index: int | slice) -> ImageRecord | ImageRows:
        if isinstance(index, slice):
            part = ImageRows(self.folder, like=self)
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("ImageRows slices take every row")
            part._append_from(self, start, max(start, stop))
            return part
        row = index + len(self) if index < 0 else index
        if not 0 <= row < len(self):
            raise IndexError(f"no row {index} in {len(self)} images")
        return self.record(row)

    def __iter__(self) -> Iterator[ImageRecord]:
        return map(self.record, range(len(self)))

    def __repr__(self) -> str:
        return f"<ImageRows of {len(self)} images in {self.folder}>"

    # ------------------------------------------------------------------ fields

    def id(self, row: int) -> int:
        """The image id of ``row``."""
        return self._ids[row]

    def ids(self) -> array[int]:
        """The image ids in row order (a copy)."""
        return array("q", self._ids)

    def row_of(self, image_id: int) -> int:
        """The row of an image id, -1 if none. O(1)."""
        if 0 <= image_id < len(self._row_at):
            return self._row_at[image_id]
        return self._far_rows.get(image_id, -1)

    def paths(self) -> Sequence[str]:
        """The readable paths (:meth:`path`) of the rows there are now, in row order, read
        when asked for; the view holds the paths only (not the other columns)."""
        texts, shown = self._paths, self._shown_paths

        def path(row: int) -> str:
            return shown.get(row) or readable_path(texts[row])

        return _Column(path, len(self))

    def stored_path(self, row: int) -> str:
        """The exact stored path of ``row`` (a name that is not UTF-8 with lone surrogates)."""
        return self._paths[row]

    def path(self, row: int) -> str:
        """:attr:`ImageRecord.path` of ``row``: the stored path, made readable."""
        if self._shown_paths:
            shown = self._shown_paths.get(row)
            if shown is not None:
                return shown
        return readable_path(self._paths[row])

    def file_name(self, row: int) -> str:
        """:attr:`ImageRecord.file_name` of ``row``."""
        stored = self._paths[row]
        return readable_path(stored[stored.rfind("/") + 1:])

    def abs_path(self, row: int) -> Path:
        """:attr:`ImageRecord.abs_path` of ``row``: the project folder joined with the stored
        path (an absolute one replaces it)."""
        stored = self._paths[row]
        name = stored[stored.rfind("/") + 1:]
        head = stored[:len(stored) - len(name)]  # with its "/": "/" for "/a.jpg"
        parent = self._folders.get(head)
        if parent is None:
            parent = self._folders[head] = self.folder / head
        return parent / name

    def file_state(self, row: int) -> tuple[float, int]:
        """``(mtime, file_size)`` of ``row`` as recorded."""
        return self._mtimes[row], self._sizes[row]

    def flags(self, row: int) -> int:
        """The bits :data:`VALID`, :data:`OUTSIDE`, :data:`HAS_TEXT` (a caption that is not
        blank) and :data:`LAST_FAILED` (the latest attempt failed with an error) of ``row``."""
        return self._flags[row]

    def body(self, row: int) -> str | None:
        """The caption body of ``row``, None without a caption."""
        return self._bodies[row] if self._provenances[row] else None

    def provenance(self, row: int) -> Provenance | None:
        """The caption's provenance of ``row``, None without a caption."""
        return PROVENANCES[self._provenances[row]]

    def review(self, row: int) -> Review:
        """The review mark of ``row``."""
        return REVIEWS[self._reviews[row]]

    def people(self, row: int) -> int | None:
        """:attr:`ImageRecord.people` of ``row``."""
        found = self._people[row]
        return None if found < 0 else found

    def status_counts(self, start: int = 0, stop: int | None = None) -> dict[str, int]:
        """Of rows ``start`` to ``stop`` (None: the last): the valid images, and of them those
        reviewed (approved or rejected), failed (:attr:`ImageRecord.failed`) and uncaptioned
        (neither a caption nor a failure): ``{"valid", "reviewed", "failed", "uncaptioned"}``.
        Counted over the columns' bytes, not row by row."""
        flags = bytes(self._flags[start:stop])
        state = flags.translate(_STATE_BITS)
        valid = flags.translate(_VALID_BYTE)
        reviewed = bytes(self._reviews[start:stop]).translate(_NONZERO_BYTE)
        return {
            "valid": valid.count(1),
            "reviewed": (int.from_bytes(valid, "little")
                         & int.from_bytes(reviewed, "little")).bit_count(),
            "failed": state.count(VALID | LAST_FAILED),
            "uncaptioned": state.count(VALID),
        }

    def counted_bodies(self) -> Iterator[str]:
        """The caption body of each row whose tags a project's tag counts include, ``""`` for
        an invalid or uncaptioned image (:func:`loracap.core.tags.counted_body`)."""
        flags, provenances, bodies = self._flags, self._provenances, self._bodies
        for row in range(len(self)):
            yield bodies[row] if flags[row] & VALID and provenances[row] else ""

    def missing_ids(self) -> list[int]:
        """The ids of the valid images whose file is not on disk
        (:func:`stored_files_present`)."""
        valid = [row for row, flags in enumerate(self._flags) if flags & VALID]
        texts, ids = self._paths, self._ids
        present = stored_files_present(self.folder, (texts[row] for row in valid))
        return [ids[row] for row, found in zip(valid, present, strict=True) if not found]

    def record(self, row: int) -> ImageRecord:
        """The :class:`ImageRecord` of ``row`` (``0 <= row < len(self)``)."""
        common = self._common
        values = common.values
        flags = self._flags[row]
        provenance = PROVENANCES[self._provenances[row]]
        caption = None
        if provenance is not None:
            backend, model, prompt = common.json(self._sources[row])
            created = self._time(row, 0)
            caption = CaptionRecord(
                body=self._bodies[row], provenance=provenance, backend=backend, model=model,
                prompt=prompt, created_at=created,
                updated_at=created if self._updated[row] == _NO_TIME else self._time(row, 1))
        failure = common.json(self._failures[row])
        width, height, found = self._widths[row], self._heights[row], self._people[row]
        return ImageRecord(
            id=self._ids[row],
            path=self.path(row),
            abs_path=self.abs_path(row),
            valid=bool(flags & VALID),
            invalid_reason=values[self._reasons[row]],
            width=None if width < 0 else width,
            height=None if height < 0 else height,
            format=values[self._formats[row]],
            file_size=self._sizes[row],
            mtime=self._mtimes[row],
            caption=caption,
            last_error=failure[0] if failure else "",
            last_error_kind=failure[1] if failure else "",
            review=REVIEWS[self._reviews[row]],
            rating=self._ratings[row] or None,
            note=values[self._notes[row]],
            outside=bool(flags & OUTSIDE),
            people=None if found < 0 else found,
        )

    def _time(self, row: int, which: int) -> datetime:
        micros = (self._created if which == 0 else self._updated)[row]
        if micros == _ODD_TIME:
            return self._odd_times[(row, which)]
        return _EPOCH + timedelta(microseconds=micros)

    # ------------------------------------------------------------------ changes

    def set(self, row: int, record: ImageRecord, *, stored: str | None = None) -> None:
        """Make ``row`` hold ``record`` (same id). ``stored``: the exact stored path, if known;
        else it is ``record.abs_path`` made relative to the folder when below it (the record's
        readable ``path`` is not exact for a name that is not UTF-8). Raises ``ValueError``
        for a record of another image."""
        if record.id != self._ids[row]:
            raise ValueError(f"row {row} holds image {self._ids[row]}, not {record.id}")
        if stored is None and record.abs_path != self.abs_path(row):
            stored = self._stored_of(record)
        if stored is not None:
            self._paths.set(row, stored)
        if readable_path(self._paths[row]) != record.path:
            self._shown_paths[row] = record.path
        else:
            self._shown_paths.pop(row, None)
        common = self._common
        caption = record.caption
        self._flags[row] = (
            (VALID if record.valid else 0) | (OUTSIDE if record.outside else 0)
            | (HAS_TEXT if caption is not None and caption.body.strip() else 0)
            | (LAST_FAILED if record.last_error else 0))
        self._reasons[row] = common.number(record.invalid_reason)
        self._widths[row] = -1 if record.width is None else record.width
        self._heights[row] = -1 if record.height is None else record.height
        self._formats[row] = common.number(record.format)
        self._sizes[row] = record.file_size
        self._mtimes[row] = record.mtime
        self._reviews[row] = _REVIEW_NUMBERS[record.review.value]
        self._ratings[row] = record.rating or 0
        self._notes[row] = common.number(record.note)
        self._failures[row] = common.number(
            json.dumps([record.last_error, record.last_error_kind])
            if record.last_error or record.last_error_kind else None)
        self._people[row] = -1 if record.people is None else record.people
        for which in (0, 1):
            self._odd_times.pop((row, which), None)
        if caption is None:
            self._provenances[row] = 0
            self._bodies.set(row, "")
            self._sources[row] = common.number(None)
            self._created[row] = self._updated[row] = _NO_TIME
            return
        self._provenances[row] = _PROVENANCE_NUMBERS[caption.provenance.value]
        self._bodies.set(row, caption.body)
        self._sources[row] = common.number(
            json.dumps([caption.backend, caption.model, caption.prompt]))
        for which, when in ((0, caption.created_at), (1, caption.updated_at)):
            micros = _micros(when)
            if micros == _ODD_TIME:
                self._odd_times[(row, which)] = when
            (self._created if which == 0 else self._updated)[row] = micros

    def append_record(self, record: ImageRecord) -> None:
        """Append one row holding ``record``; its stored path is ``record.abs_path`` made
        relative to the folder when below it. Raises ``ValueError`` for an id already here."""
        self._index([record.id], len(self))
        self._append_record(record, self._stored_of(record))

    def _stored_of(self, record: ImageRecord) -> str:
        """The stored path of ``record``'s file: relative to the folder when below it."""
        try:
            return record.abs_path.relative_to(self.folder).as_posix()
        except ValueError:
            return record.abs_path.as_posix()

    def extend(self, other: ImageRows) -> None:
        """Append the rows of ``other`` (same folder). Raises ``ValueError`` for an image id
        already here (nothing is appended then)."""
        self._append_from(other, 0, len(other))

    def _append_from(self, other: ImageRows, start: int, stop: int) -> None:
        first = len(self)
        self._index(other._ids[start:stop], first)
        if other._common is not self._common or other.folder != self.folder:
            # Another table of common values: one record at a time.
            for row in range(start, stop):
                self._append_record(other.record(row), other.stored_path(row))
            return
        for name, _code in _NUMBER_COLUMNS:
            getattr(self, name).extend(getattr(other, name)[start:stop])
        self._paths.extend_from(other._paths, start, stop)
        self._bodies.extend_from(other._bodies, start, stop)
        for (row, which), when in other._odd_times.items():
            if start <= row < stop:
                self._odd_times[(first + row - start, which)] = when
        for row, shown in other._shown_paths.items():
            if start <= row < stop:
                self._shown_paths[first + row - start] = shown

    def _index(self, ids: Sequence[int], first: int) -> None:
        """Note the rows of ``ids``, to be appended from row ``first`` on; raises
        ``ValueError`` (and notes nothing) when an id is here already or twice in ``ids``."""
        row_at, far = self._row_at, self._far_rows
        limit = 4 * (len(self) + len(ids)) + 65536  # ids beyond this go to the dict
        top = max((image_id for image_id in ids if image_id < limit), default=-1)
        if top >= len(row_at):
            row_at.extend(array("i", [-1]) * (top + 1 - len(row_at)))
        size, done = len(row_at), 0
        for row, image_id in enumerate(ids, first):
            if 0 <= image_id < size:
                if row_at[image_id] >= 0:
                    break
                row_at[image_id] = row
            elif image_id in far:
                break
            else:
                far[image_id] = row
            done += 1
        else:
            return
        for undo in ids[:done]:
            if 0 <= undo < size:
                row_at[undo] = -1
            else:
                del far[undo]
        raise ValueError("Two rows of the same image id.")

    def _append_record(self, record: ImageRecord, stored: str) -> None:
        """Append one row holding ``record``, stored at ``stored``."""
        row = len(self)
        for name, code in _NUMBER_COLUMNS:
            column = getattr(self, name)
            column.append(0.0 if code == "d" else 0)
        self._ids[row] = record.id
        self._paths.extend([stored])
        self._bodies.extend([""])
        self.set(row, record, stored=stored)

    def _append_sql(self, rows: Sequence[tuple[Any, ...]], people: dict[int, int]) -> None:
        """Append rows of :data:`_ROWS_SQL` (in order), with the people of each image's latest
        detection. Raises ``ValueError`` for a value a checked project file never holds."""
        if not rows:
            return
        (ids, paths, flags, reasons, widths, heights, formats, sizes, mtimes, reviews, ratings,
         notes, provenances, bodies, sources, created, updated, failures) = zip(*rows, strict=True)
        try:
            marks_reviews, marks_provenances = bytearray(reviews), bytearray(provenances)
        except TypeError as exc:  # a value the CASE did not know
            raise ValueError(f"An image has an unknown review mark or provenance: {exc}") from exc
        first = len(self)
        self._index(ids, first)
        common = self._common
        if bytes in set(map(type, paths)):
            paths = tuple(map(stored_text, paths))
        marks = bytearray(flags)
        if any(mark & _MAYBE_OUTSIDE for mark in marks):
            for offset, mark in enumerate(marks):
                if mark & _MAYBE_OUTSIDE:
                    marks[offset] = (mark & ~_MAYBE_OUTSIDE) | (
                        OUTSIDE if is_outside(paths[offset]) else 0)
        self._reviews.extend(marks_reviews)
        self._provenances.extend(marks_provenances)
        self._ids.extend(ids)
        self._paths.extend(paths)
        self._flags.extend(marks)
        self._reasons.extend(common.numbered(reasons))
        self._widths.extend(widths)
        self._heights.extend(heights)
        self._formats.extend(common.numbered(formats))
        self._sizes.extend(sizes)
        self._mtimes.extend(mtimes)
        self._ratings.extend(ratings)
        self._notes.extend(common.numbered(notes))
        self._bodies.extend(bodies)
        self._sources.extend(common.numbered(sources))
        for which, (column, times) in enumerate(((self._created, created),
                                                 (self._updated, updated))):
            micros = _times(times)
            for offset in (i for i, value in enumerate(micros) if value == _ODD_TIME):
                self._odd_times[(first + offset, which)] = datetime.fromisoformat(times[offset])
            column.extend(micros)
        self._failures.extend(common.numbered(failures))
        self._people.extend(array("i", [-1]) * len(ids) if not people else
                            array("i", [people.get(image_id, -1) for image_id in ids]))


class _Column(Sequence[Any]):
    """A read-only view of one field of every row (:meth:`ImageRows.paths`)."""

    def __init__(self, field: Callable[[int], Any], length: int) -> None:
        self._field = field
        self._length = length

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._field(row) for row in range(*index.indices(self._length))]
        if not -self._length <= index < self._length:
            raise IndexError(index)
        return self._field(index % self._length)


def _head(stored: str) -> str:
    """The folder of a stored path with its ``/`` (``""`` for none)."""
    return stored[:stored.rfind("/") + 1]


def _micros(when: datetime) -> int:
    """A naive time as microseconds since 1970; :data:`_ODD_TIME` for one with a zone."""
    if when.tzinfo is not None:
        return _ODD_TIME
    return (when - _EPOCH) // _MICROSECOND


def _times(texts: Sequence[str | None]) -> array[int]:
    """Stored times (``2025-03-01 10:00:00.000000``, None) as microseconds since 1970, read as
    SQLAlchemy reads them (``datetime.fromisoformat``); :data:`_NO_TIME` for None."""
    read, epoch, micro = datetime.fromisoformat, _EPOCH, _MICROSECOND
    try:
        return array("q", [_NO_TIME if text is None else (read(text) - epoch) // micro
                           for text in texts])
    except TypeError:  # a time with a zone: kept aside
        return array("q", [_NO_TIME if text is None else _micros(read(text))
                           for text in texts])


# ---------------------------------------------------------------------- files on disk


def files_present(paths: Iterable[str]) -> Iterator[bool]:
    """For each absolute path, whether it is a file on disk (as :meth:`Path.is_file`, but
    ``False`` rather than an error when a folder on the way cannot be searched), in order.

    A run of :data:`LIST_FOLDER_FROM` or more paths in the same folder (as a project's paths
    come, in path order or as stored) is looked up with one listing of the folder
    (``os.scandir``) instead of one ``stat`` per file; a name the listing lacks is still
    looked up (a case-insensitive disk, another Unicode normalisation), so the answer is the
    same either way. One folder's names are in memory at a time.
    """
    split = os.path.split
    runs = itertools.groupby(((path, *split(path)) for path in paths),
                             key=operator.itemgetter(1))
    for folder, run in runs:
        yield from _present_in(folder, [(path, name) for path, _, name in run])


def stored_files_present(folder: Path, stored: Iterable[str]) -> Iterator[bool]:
    """:func:`files_present` of stored image paths (relative to the project ``folder``, or
    absolute), without making each absolute path twice: the paths of one folder in a row are
    looked up with one listing of it."""
    base, join = os.fspath(folder), os.path.join
    for head, run in itertools.groupby(stored, key=_head):
        files = [(join(base, path), path[len(head):]) for path in run]
        yield from _present_in(join(base, head) if head else base, files)


def _present_in(folder: str, files: list[tuple[str, str]]) -> Iterator[bool]:
    """:func:`files_present` of ``files`` (path, name) in ``folder``."""
    isfile = os.path.isfile
    names = _file_names(folder) if len(files) >= LIST_FOLDER_FROM else None
    for path, name in files:
        yield (names is not None and name in names) or isfile(path)


def _file_names(folder: str) -> frozenset[str] | None:
    """The names of the files (links to files included) in ``folder``; None when it cannot
    be listed."""
    try:
        with os.scandir(folder) as entries:
            return frozenset(entry.name for entry in entries if entry.is_file())
    except OSError:
        return None


# ---------------------------------------------------------------------- reading a project file


def read_only_uri(path: Path) -> str:
    """SQLite's URI that opens ``path`` read-only. The path is percent-encoded from its exact
    bytes, so ``#``, ``?``, ``%`` and names that are not UTF-8 open the right file."""
    return f"file:{quote(os.fsencode(Path(path).absolute().as_posix()), safe='/:')}?mode=ro"


def first_page(path: Path, limit: int) -> ImageRows | None:
    """The first ``limit`` images of the project file at ``path`` when it holds more than
    ``limit``, read straight from the file (read-only, nothing written, no SQLAlchemy) before
    it is opened: the window shows them while :meth:`~loracap.core.project.Project.open`
    checks every row in the background (issue 15). None for a smaller project, or for a file
    that cannot be read so (not a project, an older format, damaged): it is then opened the
    usual way, and its checks say what is wrong."""
    try:
        conn = sqlite3.connect(read_only_uri(Path(os.path.abspath(path))), uri=True)
    except sqlite3.Error:
        return None
    try:
        (count,) = conn.execute("SELECT count(*) FROM images").fetchone()
        if count <= limit:
            return None
        return read_rows(conn, Path(os.path.abspath(path)).parent, path_order(conn, limit))
    except (sqlite3.Error, ValueError, TypeError, OverflowError, KeyError, IndexError):
        return None
    finally:
        conn.close()


def path_order(conn: sqlite3.Connection, limit: int | None = None) -> array[int]:
    """The ids of the images of the project file behind ``conn`` in the order the program shows
    them (:func:`order_key` of the readable path): the first ``limit`` (None: all).

    SQLite sorts paths of ASCII characters (``lower(path), path`` is that order for them,
    and with a ``limit`` it keeps only the first ones); the others -- none in most projects --
    are sorted here and merged in."""
    others = conn.execute(f"SELECT id, path FROM images WHERE NOT ({_ASCII_PATH})").fetchall()
    first = "" if limit is None else f" LIMIT {int(limit)}"
    if not others:
        query = f"SELECT id FROM images ORDER BY lower(path), path{first}"
        return array("q", map(operator.itemgetter(0), conn.execute(query)))
    keyed = sorted((order_key(readable_path(stored_text(stored))), image_id)
                   for image_id, stored in others)
    query = f"SELECT id, path FROM images WHERE {_ASCII_PATH} ORDER BY lower(path), path{first}"
    plain = ((order_key(stored), image_id) for image_id, stored in conn.execute(query))
    merged = heapq.merge(plain, keyed)
    return array("q", (image_id for _, image_id in itertools.islice(merged, limit)))


def read_rows(conn: sqlite3.Connection, folder: Path, ids: Sequence[int] | None = None, *,
              like: ImageRows | None = None) -> ImageRows:
    """The images with ``ids`` (None: every image, in :func:`path_order`) of the project file
    behind ``conn``, in the order of ``ids`` (unknown ids left out); ``folder`` is the
    project folder. ``like``: share its table of common values (to :meth:`ImageRows.extend`
    it with the result).

    One query per :data:`IDS_PER_QUERY` ids (the images, captions and latest attempts as plain
    tuples), and one for the people found by the latest multi-person detections, if any.
    Raises ``sqlite3.Error`` from the driver, ``ValueError`` for a value a checked project file
    never holds.
    """
    order = path_order(conn) if ids is None else ids
    for rows in iter_rows(conn, folder, order, like=like, sizes=[len(order)]):
        return rows
    return ImageRows(folder, like=like)


def iter_rows(conn: sqlite3.Connection, folder: Path, ids: Sequence[int], *,
              like: ImageRows | None, sizes: Iterable[int]) -> Iterator[ImageRows]:
    """:func:`read_rows` in parts: an :class:`ImageRows` (sharing ``like``'s table) of the
    next ``size`` ids for each size of ``sizes`` (the last one may be shorter), read as the
    parts are asked for: a large project's rows are handed over while the rest is read, and
    only one part is in memory here. Sizes that are multiples of :data:`BLOCK` let
    :meth:`ImageRows.extend` share the packed texts instead of copying them."""
    detections = _has_detections(conn)
    start = 0
    for size in sizes:
        if start >= len(ids):
            return
        part = ImageRows(folder, like=like)
        end = min(len(ids), start + max(1, size))
        for first in range(start, end, IDS_PER_QUERY):
            chunk = ids[first:min(end, first + IDS_PER_QUERY)]
            marks = ",".join("?" * len(chunk))
            found = {row[0]: row for row in conn.execute(
                f"{_ROWS_SQL} WHERE images.id IN ({marks})", (WHITESPACE, *chunk))}
            ordered = [found[image_id] for image_id in dict.fromkeys(chunk)
                       if image_id in found]
            part._append_sql(ordered, _people_found(conn, chunk) if detections else {})
        start = end
        yield part


def _has_detections(conn: sqlite3.Connection) -> bool:
    """Whether the file holds a multi-person detection (format 6; False for an older file)."""
    try:
        return conn.execute(
            "SELECT 1 FROM person_parts WHERE kind = 'detection' LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError:  # a file of an older format, opened read-only
        return False


def _people_found(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, int]:
    """The people each image's latest detection found, for the images with ``ids``."""
    marks = ",".join("?" * len(ids))
    query = ("SELECT image_id, text FROM person_parts WHERE id IN (SELECT max(id) FROM "
             f"person_parts WHERE kind = 'detection' AND image_id IN ({marks}) "
             "GROUP BY image_id)")
    return {image_id: len(detected_people(text))
            for image_id, text in conn.execute(query, tuple(ids))}


def detected_people(text: str) -> list[tuple[tuple[int, int, int, int], str]]:
    """The people of a stored detection part: ``(box, gender)`` pairs, in the detection's
    order; ``[]`` for text that is not such a list (the part is then worth nothing)."""
    try:
        loaded = json.loads(text)
    except ValueError:
        return []
    people: list[tuple[tuple[int, int, int, int], str]] = []
    for item in loaded if isinstance(loaded, list) else []:
        box = item.get("box") if isinstance(item, dict) else None
        if isinstance(box, list) and len(box) == 4 and all(type(v) is int for v in box):
            people.append(((box[0], box[1], box[2], box[3]), str(item.get("gender", "unknown"))))
    return people


__all__ = [
    "BLOCK", "HAS_TEXT", "IDS_PER_QUERY", "LAST_FAILED", "LIST_FOLDER_FROM", "OUTSIDE", "VALID",
    "WHITESPACE", "ImageRows", "detected_people", "files_present", "first_page", "iter_rows",
    "read_only_uri", "stored_files_present", "stored_text",
    "is_outside", "leaves_folder", "order_key", "path_order", "read_rows",
]
