"""A project's images as compact columns (issue 15): :class:`ImageRows` gives back exactly the
records it was read or given, counts as the records do, and reads a project file in the order
and in the parts the window asks for, straight from the file when it is not open yet."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loracap.core import image_rows
from loracap.core.image_rows import (
    ImageRows,
    first_page,
    order_key,
    path_order,
    read_only_uri,
    read_rows,
)
from loracap.core.project import Project
from loracap.core.records import ImageRecord, Review
from loracap.core.tags import counted_body
from loracap.core.text import path_label_changes, path_labels
from tests.core.test_project_reads import _varied_project


@pytest.fixture
def varied(tmp_path: Path) -> Iterator[Project]:
    with _varied_project(tmp_path) as project:
        yield project


@pytest.fixture
def rows(varied: Project) -> ImageRows:
    return varied.image_rows()


def _status(records: list[ImageRecord]) -> dict[str, int]:
    valid = [rec for rec in records if rec.valid]
    return {"valid": len(valid),
            "reviewed": sum(rec.review is not Review.UNREVIEWED for rec in valid),
            "failed": sum(rec.failed for rec in valid),
            "uncaptioned": sum(not rec.has_caption and not rec.failed for rec in valid)}


def test_the_fields_are_those_of_the_records(varied: Project, rows: ImageRows) -> None:
    records = varied.images()
    assert list(rows) == records and len(rows) == len(records)
    for row, rec in enumerate(records):
        assert rows[row] == rec == rows.record(row)
        assert rows.id(row) == rec.id and rows.row_of(rec.id) == row
        assert rows.path(row) == rec.path and rows.file_name(row) == rec.file_name
        assert rows.abs_path(row) == rec.abs_path
        assert rows.file_state(row) == (rec.mtime, rec.file_size)
        assert rows.body(row) == (rec.caption.body if rec.caption else None)
        assert rows.review(row) is rec.review and rows.people(row) == rec.people
        assert bool(rows.flags(row) & image_rows.VALID) == rec.valid
        assert bool(rows.flags(row) & image_rows.HAS_TEXT) == rec.has_caption
        assert bool(rows.flags(row) & image_rows.OUTSIDE) == rec.outside
    assert rows[-1] == records[-1]
    assert rows.row_of(10**9) == -1 and rows.row_of(-5) == -1
    with pytest.raises(IndexError):
        rows[len(records)]
    assert list(rows.paths()) == [rec.path for rec in records]
    assert rows.ids().tolist() == [rec.id for rec in records]


def test_counts_bodies_and_missing_files_are_those_of_the_records(
        varied: Project, rows: ImageRows) -> None:
    records = varied.images()
    assert rows.status_counts() == _status(records)
    assert rows.status_counts(5, 20) == _status(records[5:20])
    assert list(rows.counted_bodies()) == [counted_body(rec) for rec in records]
    assert rows.missing_ids() == [rec.id for rec in varied.missing_images()]


def test_slices_and_parts_join_to_the_whole(varied: Project, rows: ImageRows) -> None:
    records = varied.images()
    assert list(rows[3:11]) == records[3:11] and rows[3:11].row_of(records[3].id) == 0
    joined = varied.image_rows(limit=7)
    assert list(joined) == records[:7]
    parts = list(varied.image_row_parts(7, joined, [3, 5, 10**6]))
    assert [len(part) for part in parts] == [3, 5, len(records) - 15]
    for part in parts:
        joined.extend(part)
    assert list(joined) == records
    assert [joined.row_of(rec.id) for rec in records] == list(range(len(records)))
    with pytest.raises(ValueError, match="same image id"):
        joined.extend(parts[0])
    assert len(joined) == len(records)  # nothing appended
    assert list(varied.image_rows(offset=30, limit=4)) == records[30:34]


def test_whole_blocks_are_shared_not_copied(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(image_rows, "BLOCK", 4)
    monkeypatch.setattr(image_rows, "IDS_PER_QUERY", 2)
    with _varied_project(tmp_path) as project:
        records = project.images()
        first = project.image_rows(limit=8)
        parts = list(project.image_row_parts(8, first, [8, 4, 10**6]))
        joined = ImageRows(first.folder, like=first)
        for part in [first, *parts]:
            joined.extend(part)
        assert list(joined) == records
        assert joined._bodies._blocks[2] is parts[0]._bodies._blocks[0]


def test_a_row_set_by_hand_gives_back_that_record(varied: Project, rows: ImageRows) -> None:
    records = varied.images()
    row = next(i for i, rec in enumerate(records) if rec.caption and rec.valid)
    when = datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    caption = dataclasses.replace(records[row].caption, body="a new body, sofa",
                                  backend=None, prompt="a prompt\x1f with [json]",
                                  updated_at=when)
    changed = dataclasses.replace(records[row], caption=caption, review=Review.REJECTED,
                                  rating=5, note="a note", last_error="boom",
                                  last_error_kind="server", people=4, width=None)
    rows.set(row, changed)
    assert rows[row] == changed
    moved = dataclasses.replace(changed, path="elsewhere/new.jpg",
                                abs_path=varied.folder / "elsewhere" / "new.jpg")
    rows.set(row, moved)
    assert rows[row] == moved and rows.stored_path(row) == "elsewhere/new.jpg"
    uncaptioned = dataclasses.replace(moved, caption=None, last_error="", last_error_kind="")
    rows.set(row, uncaptioned)
    assert rows[row] == uncaptioned and rows.body(row) is None
    with pytest.raises(ValueError):
        rows.set(row, records[row + 1])
    # Records given one by one (a model fed a plain list) come back the same too.
    by_hand = ImageRows(varied.folder)
    for rec in reversed(records):
        by_hand.append_record(rec)
    assert list(by_hand) == list(reversed(records))
    with pytest.raises(ValueError, match="same image id"):
        by_hand.append_record(records[0])


def test_the_order_is_by_path_ignoring_case_whatever_the_characters(varied: Project) -> None:
    with varied._driver() as conn:
        order = path_order(conn).tolist()
        first = path_order(conn, 6).tolist()
        ascii_only = conn.execute(
            "SELECT count(*) FROM images WHERE length(path) = length(CAST(path AS BLOB))"
        ).fetchone()[0]
    records = varied.images()
    assert ascii_only < len(records)  # names that are not ASCII are merged in
    expected = [rec.id for rec in sorted(records, key=lambda rec: order_key(rec.path))]
    assert order == expected and first == expected[:6]


def test_the_first_page_is_read_before_the_project_opens(varied: Project) -> None:
    varied.close()
    path = varied.path
    with Project.open(path, read_only=True) as reopened:
        records = reopened.images()
    page = first_page(path, 10)
    assert page is not None and list(page) == records[:10]
    assert first_page(path, len(records)) is None  # small enough to open at once
    assert first_page(path.with_name("nowhere.loraproj"), 10) is None
    not_a_project = path.with_name("other.loraproj")
    sqlite3.connect(not_a_project).execute("CREATE TABLE t (x)").connection.close()
    assert first_page(not_a_project, 10) is None
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE images SET review = 'maybe' WHERE id = ?", (records[3].id,))
    conn.close()
    assert first_page(path, 10) is None  # damaged: opened the usual way, which says so
    conn = sqlite3.connect(read_only_uri(path), uri=True)
    with pytest.raises(ValueError):
        read_rows(conn, path.parent)
    conn.close()


def test_labels_that_are_not_the_file_name() -> None:
    paths = ["a/IMG_1.jpg", "b/img_1.JPG", "c/x.jpg", "IMG_2.jpg", "d/e/P.jpg", "f/e/P.jpg",
             "Straße.jpg", "q/STRASSE.JPG"]
    changes = path_label_changes(paths)
    assert changes == {0: "a/IMG_1.jpg", 1: "b/img_1.JPG", 4: "d/e/P.jpg", 5: "f/e/P.jpg",
                       6: "Straße.jpg", 7: "q/STRASSE.JPG"}
    assert path_labels(paths) == [changes.get(i) or path.rsplit("/", 1)[-1]
                                  for i, path in enumerate(paths)]


def test_texts_and_times_come_back_exactly(tmp_path: Path) -> None:
    """Whatever a caption's source holds (quotes, line breaks, any character) and a stored
    time with a zone (written by another program) read back as the ORM reads them."""
    from tests.core.test_project_reads import _reference_records

    with _varied_project(tmp_path) as project:
        target = next(rec for rec in project.images() if rec.valid and rec.caption is None)
        prompt = 'say "hi"\n\\ ü 🙂 \x1f [1, {"a": null}]'
        project.store_generated(target.id, "a body", backend='b"e', model="m\tx", prompt=prompt)
        conn = sqlite3.connect(project.path)
        with conn:
            conn.execute("UPDATE captions SET created_at = '2024-05-01 09:30:00.123456+02:00' "
                         "WHERE image_id = ?", (target.id,))
        conn.close()
        record = project.image(target.id)
        assert record.caption is not None and record.caption.prompt == prompt
        assert record.caption.created_at.utcoffset() == timedelta(hours=2)
        assert project.images() == _reference_records(project)
