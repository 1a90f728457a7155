"""Reading a project's images in bulk: the records, counts and missing files of a varied project
are exactly what the reference (one ORM object per row, as LoRACap built them up to format 7)
makes of it, in a handful of statements however many images there are."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from loracap.core.backends.base import TokenUsage
from loracap.core.image_rows import leaves_folder
from loracap.core.project import CaptionMode, Project, ProjectStats, Provenance
from loracap.core.project_base import _caption_record
from loracap.core.project_people import detected_people, detection_text
from loracap.core.records import ImageRecord, PersonPart, Review, readable_path
from loracap.core.schema import CaptionAttemptRow, CaptionRow, ImageRow, PersonPartRow


@dataclass(frozen=True)
class _Info:
    """What :meth:`Project.add_scanned` reads of a probed file."""

    valid: bool
    reason: str = ""
    format: str | None = "JPEG"
    width: int | None = 640
    height: int | None = 480
    file_size: int = 1234
    mtime: float = 1_700_000_000.25


@dataclass(frozen=True)
class _Scanned:
    """What :meth:`Project.add_scanned` reads of a scanned file."""

    path: Path
    info: _Info
    sidecar_caption: str | None = None
    sidecar_error: str = ""


def _reference_records(project: Project, ids: Sequence[int] | None = None
                       ) -> list[ImageRecord]:
    """The records as LoRACap built them before bulk reads: one ORM object per image and
    caption, the latest attempt and the latest detection of each image."""
    with Session(project._engine) as session:
        query = select(ImageRow, CaptionRow).outerjoin(
            CaptionRow, CaptionRow.image_id == ImageRow.id)
        if ids is not None:
            query = query.where(ImageRow.id.in_(ids))
        newest = select(CaptionAttemptRow.image_id,
                        func.max(CaptionAttemptRow.id).label("last")
                        ).group_by(CaptionAttemptRow.image_id).subquery()
        latest = {row.image_id: (row.ok, row.error, row.error_kind) for row in session.execute(
            select(CaptionAttemptRow.image_id, CaptionAttemptRow.ok, CaptionAttemptRow.error,
                   CaptionAttemptRow.error_kind).join(newest,
                                                      CaptionAttemptRow.id == newest.c.last))}
        people = {image_id: len(detected_people(text)) for image_id, text in session.execute(
            select(PersonPartRow.image_id, PersonPartRow.text)
            .where(PersonPartRow.kind == "detection").order_by(PersonPartRow.id))}
        records = []
        for image, caption in session.execute(query):
            attempt = latest.get(image.id)
            failed = attempt is not None and not attempt[0]
            records.append(ImageRecord(
                id=image.id, path=readable_path(image.path),
                abs_path=project.resolve(image.path), valid=image.valid,
                invalid_reason=image.invalid_reason, width=image.width, height=image.height,
                format=image.format, file_size=image.file_size, mtime=image.mtime,
                caption=_caption_record(caption) if caption is not None else None,
                last_error=attempt[1] if attempt and failed else "",
                last_error_kind=attempt[2] if attempt and failed else "",
                review=Review(image.review), rating=image.rating, note=image.note,
                outside=leaves_folder(image.path), people=people.get(image.id)))
    records.sort(key=lambda rec: (rec.path.casefold(), rec.path))
    return records


def _reference_stats(records: list[ImageRecord]) -> ProjectStats:
    """The counts as LoRACap made them from every record."""
    valid = [rec for rec in records if rec.valid]
    provenance = {p.value: 0 for p in Provenance}
    for rec in valid:
        if rec.has_caption and rec.caption:
            provenance[rec.caption.provenance.value] += 1
    return ProjectStats(
        images=len(valid), invalid=len(records) - len(valid),
        captioned=sum(rec.has_caption for rec in valid),
        failed=sum(rec.failed for rec in valid),
        missing_files=sum(not rec.abs_path.is_file() for rec in valid),
        provenance=provenance,
        reviewed=sum(rec.review is not Review.UNREVIEWED for rec in valid),
        approved=sum(rec.review is Review.APPROVED for rec in valid),
        rejected=sum(rec.review is Review.REJECTED for rec in valid),
    )


def _detection(image_id: int, people: int, text: str | None = None) -> PersonPart:
    boxes = [((10 * n, 0, 10 * n + 5, 9), "woman") for n in range(people)]
    return PersonPart(kind="detection", backend="gemini", model="m", file_size=1234,
                      mtime=1_700_000_000.25, text=detection_text(boxes) if text is None
                      else text, input_tokens=5, output_tokens=2)


def _varied_project(tmp_path: Path) -> Project:
    """A project with every kind of image, caption, attempt, review mark and detection; some
    files on disk, some missing, one outside the folder and, where the system allows it, a
    file name that is not UTF-8."""
    folder = tmp_path / "hall"
    folder.mkdir()
    names = ["b.jpg", "B.jpg", "a.JPG", "A.jpg", "sub/c.jpg", "Sub/C.jpg", "zz.png",
             "Élan.jpg", "elan.jpg", "ß.jpg", "SS.jpg", "x y.jpg", "broken.jpg", "bad.gif"]
    names += [f"many/IMG_{n:03d}.jpg" for n in range(24)]
    if sys.platform.startswith("linux"):
        names.append(os.fsdecode(b"caf\xe9.jpg"))
    scanned = []
    for number, name in enumerate(names):
        path = folder / name
        if number % 3:  # a third of the files is missing on disk
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        valid = name not in ("broken.jpg", "bad.gif")
        sidecar = "photo of hall imported text" if name in ("zz.png", "broken.jpg") else None
        info = _Info(valid=valid, reason="" if valid else "Not an image: the file is damaged.",
                     width=640 + number if valid else None, height=480 if valid else None,
                     format="JPEG" if valid else None, file_size=1000 + number,
                     mtime=1_700_000_000.0 + number / 7)
        scanned.append(_Scanned(path, info, sidecar))
    outside = tmp_path / "elsewhere" / "far.jpg"
    outside.parent.mkdir()
    outside.write_bytes(b"")
    scanned.append(_Scanned(outside, _Info(valid=True)))
    scanned.append(_Scanned(Path(os.path.abspath("/far-at-the-root.jpg")), _Info(valid=True)))
    project = Project.create(folder / "hall.loraproj", trigger="hall")
    project.add_scanned(scanned)
    ids = {rec.path: rec.id for rec in project.images()}
    many = [ids[f"many/IMG_{n:03d}.jpg"] for n in range(24)]
    usage = TokenUsage(input_tokens=300, output_tokens=40)
    for image_id in many[:12]:
        project.store_generated(image_id, f"a hall {image_id}", backend="gemini", model="m",
                                prompt="p", usage=usage)
    project.edit_caption(many[0], "an edited hall")
    project.edit_caption(many[1], "  \u3000\n ")  # whitespace only: not captioned
    project.edit_caption(many[2], "")
    project.edit_caption(many[12], "a hall a person wrote")
    project.store_generated(many[12], "kept in the history", backend="openai", model="gpt",
                            prompt="q")  # a person's caption is kept
    project.edit_caption(ids["broken.jpg"], "a caption of an invalid image")
    project.record_failure(many[13], "500 internal", kind="server", backend="gemini",
                           model="m")
    project.record_failure(many[14], "first", kind="timeout")
    project.record_failure(many[14], "refused", kind="rejected", usage=usage)
    project.record_failure(many[15], "early failure", kind="server")
    project.store_generated(many[15], "then captioned", backend="gemini", model="m",
                            prompt="p")
    project.record_failure(many[3], "failed after a caption", kind="server")
    project.record_failure(many[1], "failed, caption blank", kind="server")
    project.record_failure(ids["bad.gif"], "invalid and failed", kind="image")
    project.set_reviews(many[4:8], review=Review.APPROVED, rating=4)
    project.set_reviews(many[8:10], review=Review.REJECTED, note="blurry")
    project.set_reviews([ids["zz.png"]], rating=2, note="a note")
    project.set_reviews([ids["broken.jpg"]], review=Review.APPROVED)
    project.store_person_part(many[16], _detection(many[16], 1))
    project.store_person_part(many[16], _detection(many[16], 3))  # the latest counts
    project.store_person_part(many[17], _detection(many[17], 0))
    project.store_person_part(many[18], _detection(many[18], 2, text="not json"))
    project.store_person_part(many[19], _detection(many[19], 2))
    project.store_person_part(many[19], _detection(many[19], 2, text="[]"))
    project.store_person_part(many[20], _detection(many[20], 2))
    return project


@pytest.fixture
def varied(tmp_path: Path) -> Iterator[Project]:
    with _varied_project(tmp_path) as project:
        yield project


def test_the_records_are_those_of_the_reference(varied: Project) -> None:
    expected = _reference_records(varied)
    assert varied.images() == expected
    assert [rec.path for rec in expected if not rec.outside][:4] == [
        "A.jpg", "a.JPG", "B.jpg", "b.jpg"]
    assert any(rec.outside for rec in expected)
    assert {rec.people for rec in expected} == {None, 0, 2, 3}
    assert {rec.review for rec in expected} == set(Review)
    assert {rec.caption.provenance for rec in expected if rec.caption} == set(Provenance)
    assert sum(rec.failed for rec in expected) >= 3
    for rec in expected:
        assert varied.image(rec.id) == rec


def test_records_by_id_are_those_of_the_reference(varied: Project) -> None:
    every = [rec.id for rec in _reference_records(varied)]
    wanted = [every[5], every[1], 10_000, every[5], every[-1], every[2]]
    assert varied.images_by_id(wanted) == _reference_records(varied, wanted)
    assert varied.images_by_id([]) == []
    assert varied.images_by_id(list(reversed(every))) == _reference_records(varied)


def test_counts_and_missing_files_are_those_of_the_reference(varied: Project) -> None:
    expected = _reference_records(varied)
    stats = varied.stats()
    assert stats == _reference_stats(expected)
    assert stats.missing_files > 0 and stats.failed > 0 and stats.invalid == 2
    assert varied.missing_images() == [rec for rec in expected
                                       if rec.valid and not rec.abs_path.is_file()]


def test_an_image_that_moved_in_is_no_longer_missing(varied: Project) -> None:
    missing = varied.missing_images()
    missing[0].abs_path.parent.mkdir(parents=True, exist_ok=True)
    missing[0].abs_path.write_bytes(b"")
    assert varied.missing_images() == missing[1:]
    assert varied.stats().missing_files == len(missing) - 1


def test_selection_for_captioning_is_unchanged(varied: Project) -> None:
    records = _reference_records(varied)
    on_disk = [rec for rec in records if rec.valid and rec.abs_path.is_file()]
    chosen, protected = varied.select_for_captioning(CaptionMode.MISSING)
    assert chosen == [rec.id for rec in on_disk if not rec.has_caption]
    assert protected == []
    chosen, protected = varied.select_for_captioning(CaptionMode.ALL)
    assert protected == [rec.id for rec in on_disk
                         if rec.has_caption and rec.caption and rec.caption.provenance.protected]
    assert chosen == [rec.id for rec in on_disk if rec.id not in protected]
    chosen, _ = varied.select_for_captioning(CaptionMode.FAILED)
    assert chosen == [rec.id for rec in on_disk if rec.failed]


def test_reading_every_image_takes_a_few_statements(varied: Project) -> None:
    statements: list[str] = []

    def trace(dbapi: sqlite3.Connection, *_args: object) -> None:
        # Every statement the driver runs, through SQLAlchemy or straight (image_rows).
        dbapi.set_trace_callback(statements.append)

    event.listen(varied._engine, "checkout", trace)
    try:
        records = varied.images()
        varied.stats()
    finally:
        event.remove(varied._engine, "checkout", trace)
    queries = [text for text in statements if text.lstrip().upper().startswith("SELECT")]
    assert len(records) >= 40
    # The order, the paths that are not ASCII, whether a detection exists, the rows and the
    # people of 512 images at a time, then the counts and the paths of the valid images.
    assert 5 <= len(queries) <= 7, queries


def test_a_blank_caption_is_blank_to_sqlite_as_to_python() -> None:
    from loracap.core.image_rows import WHITESPACE

    assert set(WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need rights on Windows")
def test_files_on_disk_are_found_alike_listed_or_not(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from loracap.core import image_rows

    for n in range(20):
        (tmp_path / f"IMG_{n}.jpg").write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "link.jpg").symlink_to(tmp_path / "IMG_0.jpg")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "to-folder.jpg").symlink_to(tmp_path / "folder.jpg")
    names = [f"IMG_{n}.jpg" for n in range(20)] + [
        "folder.jpg", "link.jpg", "dangling.jpg", "to-folder.jpg", "gone.jpg", "img_1.jpg",
        "nowhere/IMG_1.jpg", "IMG_1.jpg/x.jpg"]
    paths = [os.path.join(tmp_path, name) for name in names]
    expected = [Path(path).is_file() for path in paths]
    assert expected.count(True) == 21
    assert list(image_rows.files_present(paths)) == expected  # the folder is listed
    monkeypatch.setattr(image_rows, "LIST_FOLDER_FROM", 10_000)
    assert list(image_rows.files_present(paths)) == expected  # each file looked up


def test_pages_are_the_records_in_order(varied: Project) -> None:
    every = varied.images()
    assert varied.images_page() == every
    assert varied.images_page(limit=7) == every[:7]
    assert varied.images_page(offset=7, limit=5) == every[7:12]
    assert varied.images_page(offset=7) == every[7:]
    assert varied.images_page(offset=len(every)) == []
    pages = [varied.images_page(offset=start, limit=6) for start in range(0, len(every), 6)]
    assert [rec for page in pages for rec in page] == every
    with pytest.raises(ValueError):
        varied.images_page(offset=-1)
