"""A re-export does not decode again the images whose files have not changed (issue 15).

Every export decodes each image's pixels before writing it; the size and mtime a file had when
its pixels decoded whole are kept in the project (format 8), so the next export of the same
files copies them without decoding. A file that changed since (another mtime, another size) is
decoded again: cut off, it is left out and marked invalid, and the export's result, the
command line and the window say so.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from loracap.core.errors import InputError, UndecodableImageError
from loracap.core.exports import (
    ExportFormat,
    ExportResult,
    LeftOutImage,
    export_project,
    get_format,
)
from loracap.core.exports.pixels import probe_pixels
from loracap.core.project import Project
from tests.core.test_export_undecodable import (
    GARBAGE_REASON,
    captioned,
    make_broken_transparent_png,
    make_garbage_jpeg,
    sos_end,
)
from tests.core.test_project import make_version_7
from tests.fakes.photos import make_photo

REPO = Path(__file__).resolve().parents[2]
NAMES = ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg", "IMG_4.png"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dataset = tmp_path / "hall"
    for seed, name in enumerate(NAMES, start=1):
        make_photo(dataset / name, size=(800, 600), seed=seed)
    return dataset



def recorded(path: Path) -> dict[str, tuple[int, float] | None]:
    """The decode record of each image as the project file holds it, by file name."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT path, decoded_size, decoded_mtime FROM images").fetchall()
    finally:
        conn.close()
    return {name: None if size is None else (size, mtime) for name, size, mtime in rows}


def damage(path: Path, seed: int = 7) -> None:
    """Overwrite the middle half of a JPEG's entropy-coded data with random bytes, in place:
    the same size, its structure whole, its pixels beyond decoding."""
    data = bytearray(path.read_bytes())
    start = sos_end(bytes(data))
    middle = start + (len(data) - 2 - start) // 4
    junk = random.Random(seed).randbytes((len(data) - 2 - start) // 2)
    data[middle:middle + len(junk)] = junk
    path.write_bytes(bytes(data))
    with Image.open(path) as im, pytest.raises(OSError):
        im.load()


def state(path: Path) -> tuple[int, float]:
    info = os.lstat(path)
    return info.st_size, info.st_mtime


def export(project: Project, out: Path) -> tuple[ExportResult, list[str]]:
    """An export to ``out`` (replacing the one there), and the entries of its zip."""
    result = export_project(project, get_format(ExportFormat.REPLICATE), out, force=True)
    with zipfile.ZipFile(result.path) as archive:
        assert archive.testzip() is None
        return result, sorted(archive.namelist())


ALL_ENTRIES = sorted([*NAMES, *(f"{Path(n).stem}.txt" for n in NAMES), "metadata.txt"])


def test_a_re_export_of_unchanged_files_decodes_none(folder: Path, tmp_path: Path,
                                                     decodes: list[str]) -> None:
    path = captioned(folder)
    assert set(recorded(path).values()) == {None}
    with Project.open(path) as project:
        first, entries = export(project, tmp_path / "first.zip")
        assert sorted(decodes) == NAMES and entries == ALL_ENTRIES
        assert recorded(path) == {name: state(folder / name) for name in NAMES}
        decodes.clear()
        again, entries = export(project, tmp_path / "again.zip")
        assert decodes == [] and entries == ALL_ENTRIES
        assert again.images == first.images == 4 and again.undecodable == []
        with zipfile.ZipFile(again.path) as archive:
            assert archive.read("IMG_2.jpg") == (folder / "IMG_2.jpg").read_bytes()
    with Project.open(path, read_only=True) as project:  # reads the record, writes nothing
        _result, entries = export(project, tmp_path / "read-only.zip")
    assert decodes == [] and entries == ALL_ENTRIES


def test_a_file_touched_since_is_decoded_again(folder: Path, tmp_path: Path,
                                               decodes: list[str]) -> None:
    path = captioned(folder)
    with Project.open(path) as project:
        export(project, tmp_path / "first.zip")
        size, mtime = state(folder / "IMG_2.jpg")
        os.utime(folder / "IMG_2.jpg", (mtime + 60, mtime + 60))  # same bytes, new mtime
        decodes.clear()
        _result, entries = export(project, tmp_path / "again.zip")
    assert decodes == ["IMG_2.jpg"] and entries == ALL_ENTRIES
    assert recorded(path)["IMG_2.jpg"] == (size, mtime + 60)


def test_a_file_damaged_since_with_its_size_is_left_out_and_marked_invalid(
        folder: Path, tmp_path: Path, decodes: list[str]) -> None:
    path = captioned(folder)
    with Project.open(path) as project:
        export(project, tmp_path / "first.zip")
        size, mtime = state(folder / "IMG_2.jpg")
        damage(folder / "IMG_2.jpg")
        os.utime(folder / "IMG_2.jpg", (mtime + 1, mtime + 1))
        assert state(folder / "IMG_2.jpg") == (size, mtime + 1)
        decodes.clear()
        result, entries = export(project, tmp_path / "again.zip")
        assert decodes == ["IMG_2.jpg"]
        assert "IMG_2.jpg" not in entries and "IMG_2.txt" not in entries
        assert result.undecodable == [LeftOutImage("IMG_2.jpg", GARBAGE_REASON,
                                                   marked_invalid=True)]
        bad = next(rec for rec in project.images() if rec.file_name == "IMG_2.jpg")
        assert (bad.valid, bad.invalid_reason) == (False, GARBAGE_REASON)
    assert recorded(path)["IMG_2.jpg"] is None  # its record is cleared


def test_a_cut_off_file_is_left_out_and_marked_invalid(folder: Path, tmp_path: Path,
                                                       decodes: list[str]) -> None:
    path = captioned(folder)
    with Project.open(path) as project:
        export(project, tmp_path / "first.zip")
        data = (folder / "IMG_3.jpg").read_bytes()
        (folder / "IMG_3.jpg").write_bytes(data[:len(data) // 2])
        decodes.clear()
        result, entries = export(project, tmp_path / "again.zip")
        assert decodes == ["IMG_3.jpg"] and "IMG_3.jpg" not in entries
        assert entries == sorted(set(ALL_ENTRIES) - {"IMG_3.jpg", "IMG_3.txt"})
        (left,) = result.undecodable
        assert (left.path, left.marked_invalid) == ("IMG_3.jpg", True)
        assert left.reason.startswith("truncated or corrupt image data (")
        assert project.image(next(rec.id for rec in project.images()
                                  if rec.file_name == "IMG_3.jpg")).invalid_reason == left.reason
        assert result.images == 3


def test_a_version_7_project_open_read_only_exports_without_the_record(
        folder: Path, tmp_path: Path, decodes: list[str]) -> None:
    path = captioned(folder)
    make_version_7(path)
    for out in ("first.zip", "again.zip"):
        decodes.clear()
        with Project.open(path, read_only=True) as project:
            assert project.format_version == 7
            _result, entries = export(project, tmp_path / out)
        assert sorted(decodes) == NAMES and entries == ALL_ENTRIES  # decoded every time
    conn = sqlite3.connect(path)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(images)")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    assert "decoded_size" not in columns and version == 7


def test_a_read_only_project_leaves_out_without_marking_or_recording(
        folder: Path, tmp_path: Path) -> None:
    make_garbage_jpeg(folder / "IMG_3.jpg")
    path = captioned(folder)
    with Project.open(path, read_only=True) as project:
        result, entries = export(project, tmp_path / "out.zip")
    assert "IMG_3.jpg" not in entries
    assert result.undecodable == [LeftOutImage("IMG_3.jpg", GARBAGE_REASON,
                                               marked_invalid=False)]
    assert set(recorded(path).values()) == {None}


def test_a_converted_image_is_recorded_when_its_conversion_decodes(
        folder: Path, tmp_path: Path) -> None:
    make_photo(folder / "turned.jpg", size=(800, 600), seed=9, orientation=6)
    path = captioned(folder)
    with Project.open(path) as project:
        result = export_project(project, get_format(ExportFormat.KOHYA), tmp_path / "kohya")
        assert [change.path for change in result.conversions] == ["turned.jpg"]
    assert recorded(path)["turned.jpg"] == state(folder / "turned.jpg")


def test_one_undecodable_image_error_for_exports_and_batches(tmp_path: Path) -> None:
    glass = make_broken_transparent_png(tmp_path / "glass.png")
    with pytest.raises(UndecodableImageError) as err:
        probe_pixels(glass)
    assert isinstance(err.value, InputError)
    assert err.value.reason.startswith("truncated or corrupt image data (")
    with Image.open(glass) as im:  # its header is whole: only the pixels are damaged
        assert im.size == (800, 600)


@pytest.mark.slow
def test_the_command_line_lists_the_images_left_out(folder: Path) -> None:
    make_garbage_jpeg(folder / "IMG_3.jpg")
    make_garbage_jpeg(folder / "IMG_5.jpg", seed=5)
    path = captioned(folder)
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-m", "loracap", "export", str(path)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{folder / 'hall_training.zip'}\n"
    assert (
        "  2 images did not decode and were left out:\n"
        f"    IMG_3.jpg: {GARBAGE_REASON}; now marked invalid\n"
        f"    IMG_5.jpg: {GARBAGE_REASON}; now marked invalid\n") in done.stderr
