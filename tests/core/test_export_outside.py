"""A crafted project file cannot make an export read or write outside the dataset folder.

Image rows edited to ``../secret_notes.jpg``, an absolute path or a link out of the folder stop
every export unless ``allow_outside``; allowed, a file that is not an image is still never
exported; a trigger word edited to ``../../x/ESCAPED`` is refused when the project is opened,
so no export path is ever built from it.
"""

from __future__ import annotations

import os
import sqlite3
import zipfile
from pathlib import Path

import pytest

from loracap.core.errors import ProjectError
from loracap.core.exports import (
    FORMATS,
    METADATA_FORMAT,
    REPLICATE_FORMAT,
    ExportFormat,
    ExportOptions,
    ReviewFilter,
    export_project,
    plan_export,
)
from loracap.core.exports.planner import OutsideImagesError
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.core.schema import Review
from tests.fakes.photos import make_photo

SECRET = b"my bank PIN is 4711"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dataset = tmp_path / "home" / "ds"
    for number in (1, 2):
        make_photo(dataset / f"IMG_{number}.jpg", size=(800, 600), seed=number)
    with Project.create(dataset / "hall.loraproj", trigger="hall") as project:
        project.add_scanned(scan_folder(dataset))
    return dataset


def add_rows(project_file: Path, *paths: str) -> None:
    """Add image rows as a hand-edited (or hostile) project file would hold them."""
    conn = sqlite3.connect(project_file)
    for stored in paths:
        conn.execute("INSERT INTO images (path, file_size, mtime, width, height, format, valid, "
                     "invalid_reason, added_at, review, note) VALUES (?, 1000, 0, 800, 600, "
                     "'JPEG', 1, '', '2024-01-01', 'unreviewed', '')", (stored,))
    conn.commit()
    conn.close()


def caption_all(project: Project) -> None:
    for rec in project.images():
        if not rec.has_caption:
            project.store_generated(rec.id, f"caption of {rec.file_name}", backend="gemini",
                                    model="m", prompt="p")


def all_bytes_under(top: Path) -> bytes:
    found = b""
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            path = Path(dirpath) / name
            found += path.read_bytes()
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    found += b"".join(archive.read(entry) for entry in archive.namelist())
    return found


def test_images_outside_the_folder_stop_every_export_unless_allowed(folder: Path) -> None:
    outside = folder.parent
    make_photo(outside / "secret_notes.jpg", size=(800, 600), seed=7)
    make_photo(outside / "elsewhere" / "private.jpg", size=(800, 600), seed=8)
    add_rows(folder / "hall.loraproj", "../secret_notes.jpg",
             (outside / "elsewhere" / "private.jpg").as_posix())
    with Project.open(folder / "hall.loraproj") as project:
        caption_all(project)
        for fmt in FORMATS.values():
            with pytest.raises(OutsideImagesError) as stopped:
                plan_export(project, fmt)
            assert stopped.value.exit_code == 2
            assert stopped.value.images == ["../secret_notes.jpg",
                                            (outside / "elsewhere" / "private.jpg").as_posix()]
            message = str(stopped.value)
            assert message.startswith("2 image(s) are outside the project folder:\n")
            assert "--allow-outside" in message
            assert "Export images outside the project folder" in message
        assert sorted(os.listdir(folder)) == ["IMG_1.jpg", "IMG_2.jpg", "hall.loraproj",
                                              "hall.loraproj-shm", "hall.loraproj-wal"]
        result = export_project(project, REPLICATE_FORMAT, options=ExportOptions(
            allow_outside=True))
    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == [
            "IMG_1.jpg", "IMG_1.txt", "IMG_2.jpg", "IMG_2.txt", "metadata.txt", "private.jpg",
            "private.txt", "secret_notes.jpg", "secret_notes.txt"]
        assert (archive.read("secret_notes.jpg")
                == (outside / "secret_notes.jpg").read_bytes())


def test_a_file_outside_that_is_not_an_image_is_never_exported(folder: Path) -> None:
    (folder.parent / "secret_notes.jpg").write_bytes(SECRET)
    os.mkfifo(folder.parent / "pipe.jpg")
    add_rows(folder / "hall.loraproj", "../secret_notes.jpg", "../pipe.jpg", "/dev/zero")
    with Project.open(folder / "hall.loraproj") as project:
        caption_all(project)
        for allow in (False, True):
            for fmt in (REPLICATE_FORMAT, FORMATS[ExportFormat.FOLDER], METADATA_FORMAT):
                with pytest.raises(OutsideImagesError) as stopped:
                    export_project(project, fmt, options=ExportOptions(allow_outside=allow))
        message = str(stopped.value)
    assert message.startswith("3 file(s) outside the project folder are not usable images, "
                              "so they are never exported:\n")
    assert "../secret_notes.jpg (" in message and "/dev/zero (not a regular file)" in message
    assert "../pipe.jpg (not a regular file)" in message
    assert sorted(os.listdir(folder)) == ["IMG_1.jpg", "IMG_2.jpg", "hall.loraproj"]
    assert SECRET not in all_bytes_under(folder)


def test_a_link_out_of_the_folder_counts_as_outside(folder: Path, tmp_path: Path) -> None:
    make_photo(tmp_path / "private" / "holiday.jpg", size=(800, 600), seed=9)
    os.symlink(tmp_path / "private", folder / "album")
    add_rows(folder / "hall.loraproj", "album/holiday.jpg")
    with Project.open(folder / "hall.loraproj") as project:
        caption_all(project)
        record = next(rec for rec in project.images() if rec.path == "album/holiday.jpg")
        assert not record.outside  # the stored path alone stays inside …
        with pytest.raises(OutsideImagesError) as stopped:  # … the file does not
            plan_export(project, REPLICATE_FORMAT)
        assert stopped.value.images == ["album/holiday.jpg"]
        plan = plan_export(project, REPLICATE_FORMAT, ExportOptions(allow_outside=True))
        assert "holiday.jpg" in [image.name for image in plan.images]


def test_rejected_outside_images_are_left_out_without_asking(folder: Path) -> None:
    make_photo(folder.parent / "secret_notes.jpg", size=(800, 600), seed=7)
    add_rows(folder / "hall.loraproj", "../secret_notes.jpg")
    with Project.open(folder / "hall.loraproj") as project:
        caption_all(project)
        secret = next(rec for rec in project.images() if rec.outside)
        project.set_review(secret.id, review=Review.REJECTED)
        # As the CLI and the Export dialog start once an image is rejected:
        result = export_project(project, REPLICATE_FORMAT, options=ExportOptions(
            review=ReviewFilter.NOT_REJECTED))
        assert result.review_skipped == ["../secret_notes.jpg"]
    with zipfile.ZipFile(result.path) as archive:
        assert "secret_notes.jpg" not in archive.namelist()


def test_a_trigger_word_that_leaves_the_folder_never_reaches_an_export(folder: Path) -> None:
    conn = sqlite3.connect(folder / "hall.loraproj")
    conn.execute("UPDATE project SET trigger = '../../x/ESCAPED'")
    conn.commit()
    conn.close()
    for read_only in (False, True):
        with pytest.raises(ProjectError, match=r'is damaged: its trigger word '
                                               r'"\.\./\.\./x/ESCAPED" is not a valid'):
            Project.open(folder / "hall.loraproj", read_only=read_only)
    top = folder.parents[1]
    escaped = [str(path) for path in top.rglob("*") if "ESCAPED" in path.name or path.name == "x"]
    assert escaped == []
    assert sorted(os.listdir(folder)) == ["IMG_1.jpg", "IMG_2.jpg", "hall.loraproj"]
