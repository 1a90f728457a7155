"""A photo whose structure is whole but whose pixels do not decode never reaches an export.

The scan checks a file's structure only (:mod:`loracap.core.structure`): a JPEG whose
entropy-coded data is garbage between an intact header and its end-of-image marker passes it.
Every export decodes each image before writing it: such an image is left out, marked invalid in
the project with the reason, and told about; the other images are exported as usual.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from loracap.core.errors import NothingToExportError
from loracap.core.exports import (
    ExportFormat,
    ExportOptions,
    export_project,
    get_format,
    plan_export,
)
from loracap.core.exports.planner import UndecodableImagesError
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from tests.fakes.photos import make_photo

REPO = Path(__file__).resolve().parents[2]
GARBAGE_REASON = "truncated or corrupt image data (broken data stream when reading image file)"


def sos_end(data: bytes) -> int:
    """Where a JPEG's entropy-coded data starts: after its first SOS segment."""
    pos = 2
    while True:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:
            return pos


def make_garbage_jpeg(path: Path, seed: int = 7, orientation: int | None = None) -> Path:
    """A real JPEG (made with Pillow) with the middle half of its entropy-coded data
    overwritten by random bytes; SOI..SOS and EOI kept, so its structure is whole."""
    make_photo(path, size=(800, 600), seed=seed, orientation=orientation)
    data = path.read_bytes()
    start = sos_end(data)
    middle = start + (len(data) - 2 - start) // 4
    junk = random.Random(seed).randbytes((len(data) - 2 - start) // 2)
    path.write_bytes(data[:middle] + junk + data[middle + len(junk):])
    with Image.open(path) as im, pytest.raises(OSError):  # libjpeg shrugs at a few junk runs:
        im.load()  # make sure this one is beyond it, as a trainer would find
    return path


def make_broken_transparent_png(path: Path) -> Path:
    """A transparent PNG whose compressed data does not inflate, with every CRC right (as a
    broken program writes it)."""
    import struct
    import zlib

    image = Image.new("RGBA", (800, 600), (200, 30, 30, 120))
    image.save(path)
    data = path.read_bytes()
    pos = data.index(b"IDAT") - 4
    length = int.from_bytes(data[pos:pos + 4], "big")
    idat = bytearray(data[pos + 8:pos + 8 + length])
    idat[2:40] = bytes(range(38))
    body = b"IDAT" + bytes(idat)
    chunk = struct.pack(">I", len(idat)) + body + struct.pack(">I", zlib.crc32(body))
    path.write_bytes(data[:pos] + chunk + data[pos + 12 + length:])
    return path


def captioned(folder: Path, trigger: str = "hall") -> Path:
    """A project of ``folder`` (scanned as ``loracap new`` does), every valid image captioned."""
    path = folder / f"{trigger}.loraproj"
    with Project.create(path, trigger=trigger) as project:
        project.add_scanned(scan_folder(folder))
        for rec in project.images():
            if rec.valid:
                project.edit_caption(rec.id, f"caption of {rec.file_name}")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dataset = tmp_path / "hall"
    make_photo(dataset / "IMG_1.jpg", size=(800, 600), seed=1)
    make_photo(dataset / "IMG_2.jpg", size=(800, 600), seed=2)
    make_garbage_jpeg(dataset / "IMG_3.jpg")
    return dataset


def test_the_garbage_jpeg_passes_the_scan(folder: Path) -> None:
    scanned = {item.rel_path: item.info for item in scan_folder(folder)}
    assert scanned["IMG_3.jpg"].valid


def test_export_leaves_it_out_marks_it_invalid_and_says_so(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Project.open(captioned(folder)) as project:
        with caplog.at_level(logging.WARNING, logger="loracap.core.exports.writer"):
            result = export_project(project, get_format(ExportFormat.REPLICATE))
        with zipfile.ZipFile(result.path) as archive:
            names = sorted(archive.namelist())
            assert archive.testzip() is None
        assert names == ["IMG_1.jpg", "IMG_1.txt", "IMG_2.jpg", "IMG_2.txt", "metadata.txt"]
        assert result.images == 2
        bad = next(rec for rec in project.images() if rec.file_name == "IMG_3.jpg")
        assert (bad.valid, bad.invalid_reason) == (False, GARBAGE_REASON)
        assert bad.caption is not None and bad.caption.body == "caption of IMG_3.jpg"  # kept
        assert project.stats().invalid == 1
    assert caplog.messages == [
        f"Left IMG_3.jpg out of the export: its pixels cannot be decoded ({GARBAGE_REASON}); "
        "it is now marked invalid in the project."]


def test_a_project_open_read_only_leaves_it_out_without_marking(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = captioned(folder)
    with Project.open(path, read_only=True) as project:
        with caplog.at_level(logging.WARNING, logger="loracap.core.exports.writer"):
            result = export_project(project, get_format(ExportFormat.REPLICATE),
                                    folder.parent / "out.zip")
        assert zipfile.ZipFile(result.path).namelist().count("IMG_3.jpg") == 0
        assert all(rec.valid for rec in project.images())
    assert caplog.messages == [
        f"Left IMG_3.jpg out of the export: its pixels cannot be decoded ({GARBAGE_REASON})."]


@pytest.mark.parametrize("fmt", [ExportFormat.KOHYA, ExportFormat.AI_TOOLKIT, ExportFormat.HF])
def test_every_image_writing_format_leaves_it_out(folder: Path, tmp_path: Path,
                                                  fmt: ExportFormat) -> None:
    make_garbage_jpeg(folder / "IMG_4.jpg", seed=5, orientation=6)  # kohya converts it
    with Project.open(captioned(folder)) as project:
        result = export_project(project, get_format(fmt), tmp_path / f"out-{fmt.value}")
        images = [p.name for p in result.path.rglob("*") if p.suffix in (".jpg", ".png")]
        assert sorted(images) == ["IMG_1.jpg", "IMG_2.jpg"]
        invalid = {rec.file_name: rec.invalid_reason for rec in project.images() if not rec.valid}
        assert invalid == {"IMG_3.jpg": GARBAGE_REASON, "IMG_4.jpg": GARBAGE_REASON}


def test_an_image_whose_alpha_does_not_decode_is_left_out_too(folder: Path) -> None:
    make_broken_transparent_png(folder / "glass.png")
    with Project.open(captioned(folder)) as project:
        glass = next(rec for rec in project.images() if rec.file_name == "glass.png")
        assert glass.valid  # its structure (CRCs) is whole
        with pytest.raises(UndecodableImagesError) as stopped:  # the preview names it
            plan_export(project, get_format(ExportFormat.REPLICATE))
        assert list(stopped.value.failures) == [glass.id]
        assert "glass.png (truncated or corrupt image data (" in str(stopped.value)
        result = export_project(project, get_format(ExportFormat.REPLICATE))
        names = zipfile.ZipFile(result.path).namelist()
        assert "glass.png" not in names and "IMG_1.jpg" in names
        assert not project.image(glass.id).valid


def test_nothing_left_to_export_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_garbage_jpeg(folder / "a.jpg", seed=1)
    make_garbage_jpeg(folder / "b.jpg", seed=2)
    with Project.open(captioned(folder)) as project, pytest.raises(NothingToExportError) as err:
        export_project(project, get_format(ExportFormat.REPLICATE), options=ExportOptions())
    assert str(err.value) == "No image is left to export (2 invalid); nothing was written."


@pytest.mark.slow
def test_loracap_new_then_export_on_the_command_line(folder: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}

    def loracap(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "loracap", *map(str, args)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=120)

    made = loracap("new", folder, "--trigger", "hall")
    assert made.returncode == 0, made.stderr
    assert "3 image(s), 0 invalid" in made.stdout  # the scan cannot see inside the data
    with Project.open(folder / "hall.loraproj") as project:
        for rec in project.images():
            project.edit_caption(rec.id, f"caption of {rec.file_name}")
    exported = loracap("export", folder / "hall.loraproj")
    assert exported.returncode == 0, exported.stderr
    assert (f"Left IMG_3.jpg out of the export: its pixels cannot be decoded ({GARBAGE_REASON}); "
            "it is now marked invalid in the project.") in exported.stderr
    assert "Exported 2 image(s), 2 caption(s)" in exported.stderr
    with zipfile.ZipFile(folder / "hall_training.zip") as archive:
        assert "IMG_3.jpg" not in archive.namelist()
    with Project.open(folder / "hall.loraproj", read_only=True) as project:
        bad = next(rec for rec in project.images() if rec.file_name == "IMG_3.jpg")
        assert (bad.valid, bad.invalid_reason) == (False, GARBAGE_REASON)
