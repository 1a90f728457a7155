"""Rules every export keeps (issue 10's defects of the Replicate zip, and the shared planner and
writer): the trainability gate, pixels the trainer would misread, reserved and unsafe names,
unicode, the rename map, read-back verification, permissions, nothing to export, and targets an
export must never write over.

Images are read back the way ai-toolkit (and so Replicate's trainer) loads them: Pillow,
``convert("RGB")``.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import unicodedata
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from loracap.core.errors import (
    ExportError,
    NothingToExportError,
    OutputExistsError,
    UntrainableImagesError,
)
from loracap.core.exports import (
    METADATA_FORMAT,
    REPLICATE_FORMAT,
    ExportOptions,
    ExportResult,
    ReviewFilter,
    TrainerFormat,
    export_project,
)
from loracap.core.exports import writer as writer_module
from loracap.core.imaging import to_rgb_on_white
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.core.schema import Review
from tests.fakes.photos import make_photo


def make_project(folder: Path, trigger: str = "ide_main_hall") -> Project:
    """A project of every image in ``folder``, each captioned "caption of <path>"."""
    project = Project.create(folder / f"{trigger}.loraproj", trigger=trigger)
    project.add_scanned(scan_folder(folder))
    for rec in project.images():
        if rec.valid:
            project.store_generated(rec.id, f"caption of {rec.path}", backend="gemini",
                                    model="m", prompt="p")
    return project


def export(project: Project, fmt: TrainerFormat = REPLICATE_FORMAT, out: Path | None = None,
           *, force: bool = False, **options: object) -> ExportResult:
    return export_project(project, fmt, out, ExportOptions(**options),  # type: ignore[arg-type]
                          force=force)


def trainer_pixels(data: bytes) -> Image.Image:
    """An image as ai-toolkit loads it: EXIF applied, then ``convert("RGB")``."""
    from PIL import ImageOps

    with Image.open(io.BytesIO(data)) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


# ---------------------------------------------------------------------- trainability gate


def test_an_image_too_small_for_the_trainer_stops_the_export_or_is_left_out(
        tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "hall.jpg", size=(640, 480), seed=1)
    make_photo(folder / "thumb.jpg", size=(160, 100), seed=2)  # short side 100 px
    with make_project(folder) as project:
        with pytest.raises(UntrainableImagesError) as raised:
            export(project)
        assert raised.value.images == ["thumb.jpg"] and raised.value.exit_code == 2
        message = str(raised.value)
        assert message.startswith(
            "1 image(s) are too small for Replicate (FLUX LoRA trainer): a short side under "
            "128 px would abort Replicate training (ai-toolkit gives it a 0 × 0 bucket):\n"
            "  thumb.jpg (160 × 100 px)\n")
        assert "--skip-untrainable" in message
        assert not (folder / "ide_main_hall_training.zip").exists()
        result = export(project, skip_untrainable=True)
    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == ["hall.jpg", "hall.txt", "metadata.txt"]
    assert [(c.path, c.reason) for c in result.untrainable] == [
        ("thumb.jpg", "160 × 100 px: would abort Replicate training (ai-toolkit gives it a "
                      "0 × 0 bucket)")]


def test_metadata_txt_has_no_gate(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "thumb.jpg", size=(160, 100), seed=2)
    with make_project(folder) as project:
        result = export(project, METADATA_FORMAT)
    assert result.path.read_text() == "photo of ide_main_hall caption of thumb.jpg\n"


# ---------------------------------------------------------------------- pixels


def test_a_16_bit_png_trains_on_the_picture_the_captioner_saw(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    gradient = Image.linear_gradient("L").resize((256, 256))
    deep = gradient.convert("I").point(lambda v: v * 257)  # 16-bit samples 0..65535
    deep.convert("I;16").save(folder / "deep.png")
    with Image.open(folder / "deep.png") as check:
        assert check.mode.startswith("I")  # a real 16-bit PNG
    with make_project(folder) as project:
        result = export(project)
    assert [(c.path, c.new_name) for c in result.conversions] == [("deep.png", "deep.png")]
    assert "16-bit" in result.conversions[0].reason
    with zipfile.ZipFile(result.path) as archive:
        trained = trainer_pixels(archive.read("deep.png"))
    with Image.open(folder / "deep.png") as source:
        seen = to_rgb_on_white(source)
    assert trained.tobytes() == seen.tobytes()
    # The trainer would otherwise have clipped the picture to near white.
    with Image.open(folder / "deep.png") as source:
        clipped = source.convert("RGB")
    assert sum(clipped.convert("L").tobytes()) > 0.9 * 255 * 256 * 256
    assert abs(trained.getpixel((128, 128))[0] - gradient.getpixel((128, 128))) <= 1


def test_a_transparent_image_is_flattened_onto_white_and_an_opaque_one_copied(
        tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    sticker = Image.new("RGBA", (200, 200), (255, 0, 0, 0))  # red under a transparent area
    sticker.paste((0, 0, 255, 255), (50, 50, 150, 150))
    sticker.save(folder / "sticker.png")
    Image.new("RGBA", (200, 200), (10, 200, 30, 255)).save(folder / "opaque.png")
    with make_project(folder) as project:
        result = export(project)
    assert [c.path for c in result.conversions] == ["sticker.png"]
    assert "flattened onto white" in result.conversions[0].reason
    with zipfile.ZipFile(result.path) as archive:
        trained = trainer_pixels(archive.read("sticker.png"))
        assert archive.read("opaque.png") == (folder / "opaque.png").read_bytes()
    assert trained.getpixel((5, 5)) == (255, 255, 255)  # white, not the red under it
    assert trained.getpixel((100, 100)) == (0, 0, 255)


# ---------------------------------------------------------------------- names


def test_an_image_named_metadata_never_shares_the_metadata_file(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "metadata.jpg", seed=1)
    make_photo(folder / "hall.jpg", seed=2)
    with make_project(folder) as project:
        result = export(project)
    with zipfile.ZipFile(result.path) as archive:
        names = archive.namelist()
        assert names.count("metadata.txt") == 1 and len(names) == len(set(names))
        assert archive.read("metadata_2.txt") == b"photo of ide_main_hall caption of metadata.jpg"
        assert archive.read("metadata.txt") == (
            b"photo of ide_main_hall caption of hall.jpg\n"
            b"photo of ide_main_hall caption of metadata.jpg\n")
    assert [(c.path, c.new_name, c.reason) for c in result.renames] == [
        ("metadata.jpg", "metadata_2.jpg", "the name was taken")]


def test_names_become_nfc_and_names_that_differ_only_in_normalisation_do_not_collide(
        tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    decomposed = unicodedata.normalize("NFD", "café.jpg")
    composed = unicodedata.normalize("NFC", "café.png")
    make_photo(folder / decomposed, seed=1)
    make_photo(folder / composed, seed=2)
    with make_project(folder) as project:
        result = export(project)
    with zipfile.ZipFile(result.path) as archive:
        images = sorted(n for n in archive.namelist() if not n.endswith(".txt"))
        captions = sorted(n for n in archive.namelist() if n.endswith(".txt"))
    assert all(name == unicodedata.normalize("NFC", name) for name in images + captions)
    assert images == ["café.jpg", "café_2.png"]
    assert captions == ["café.txt", "café_2.txt", "metadata.txt"]


def test_unsafe_file_names_are_made_safe_in_the_zip(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "a\\..\\..\\evil.jpg", seed=1)  # one file name on Linux
    make_photo(folder / "con.jpg", seed=2)  # a Windows device name
    with make_project(folder) as project:
        result = export(project)
    with zipfile.ZipFile(result.path) as archive:
        names = archive.namelist()
    for name in names:
        assert "\\" not in name and ".." not in name.split("/") and "/" not in name
    assert "_con.jpg" in names
    reasons = {c.path: c.reason for c in result.renames}
    assert reasons["a\\..\\..\\evil.jpg"] == "not a safe file name on every system"


def test_rename_prefix_names_the_images_in_order_and_writes_the_map(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    for seed, name in enumerate(["b.jpg", "a.png", "sub/c.webp"]):
        make_photo(folder / name, seed=seed)
    with make_project(folder) as project:
        result = export(project, rename_prefix="hall")
    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == [
            "hall_0001.png", "hall_0001.txt", "hall_0002.jpg", "hall_0002.txt", "hall_0003.txt",
            "hall_0003.webp", "metadata.txt", "renames.csv"]
        assert archive.read("hall_0002.txt") == b"photo of ide_main_hall caption of b.jpg"
        rows = list(csv.reader(io.StringIO(archive.read("renames.csv").decode("utf-8"))))
    assert rows == [["path", "exported_as"], ["a.png", "hall_0001.png"],
                    ["b.jpg", "hall_0002.jpg"], ["sub/c.webp", "hall_0003.webp"]]
    assert {c.reason for c in result.renames} == {"renamed as asked"}


# ---------------------------------------------------------------------- writing


def test_a_written_zip_that_differs_from_the_plan_is_never_delivered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "hall.jpg", seed=1)
    original = writer_module._ZipSink.add_bytes

    def wrong_caption(self: object, name: str, data: bytes, *, compress: bool) -> None:
        if name == "hall.txt":
            data = b"photo of ide_main_hall something else"
        original(self, name, data, compress=compress)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module._ZipSink, "add_bytes", wrong_caption)
    with make_project(folder) as project:
        with pytest.raises(ExportError, match=r"hall.txt: other content"):
            export(project)
    assert sorted(p.name for p in folder.iterdir()) == ["hall.jpg", "ide_main_hall.loraproj"]


def test_a_zip_holding_an_entry_twice_is_never_delivered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "hall.jpg", seed=1)
    original = writer_module._ZipSink.add_bytes

    def twice(self: object, name: str, data: bytes, *, compress: bool) -> None:
        original(self, name, data, compress=compress)  # type: ignore[arg-type]
        if name == "metadata.txt":
            original(self, name, data, compress=compress)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module._ZipSink, "add_bytes", twice)
    with make_project(folder) as project, pytest.warns(UserWarning, match="Duplicate name"):
        with pytest.raises(ExportError, match="metadata.txt: written twice"):
            export(project)
    assert not (folder / "ide_main_hall_training.zip").exists()


def test_exported_files_get_the_permissions_the_umask_allows(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "hall.jpg", seed=1)
    old = os.umask(0o022)
    try:
        with make_project(folder) as project:
            first = export(project)
            assert stat.S_IMODE(first.path.stat().st_mode) == 0o644
            os.chmod(first.path, 0o600)
            again = export(project, force=True)
            assert stat.S_IMODE(again.path.stat().st_mode) == 0o644
            os.umask(0o077)
            private = export(project, METADATA_FORMAT)
            assert stat.S_IMODE(private.path.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_leftovers_of_an_interrupted_export_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "hall.jpg", seed=1)
    stale = [folder / ".ide_main_hall_training.zip.ab12cd34.loracap-part",
             folder / ".ide_main_hall_training.zip.x1y2z3.part"]  # an older version's name
    for path in stale:
        path.write_bytes(b"half an export" * 1000)
    keep = folder / ".other.zip.ab12.loracap-part"
    keep.write_bytes(b"not ours to judge")
    with make_project(folder) as project:
        export(project)
    assert not any(path.exists() for path in stale)
    assert keep.exists()


def test_nothing_to_export_is_an_error_not_an_empty_zip(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "hall.jpg", seed=1)
    with make_project(folder) as project:
        project.set_review(project.images()[0].id, review=Review.REJECTED)
        with pytest.raises(NothingToExportError) as raised:
            export(project, review=ReviewFilter.NOT_REJECTED)
        assert raised.value.exit_code == 2
        assert "1 left out by their review mark" in str(raised.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with Project.create(empty / "x.loraproj", trigger="x") as project:
        with pytest.raises(NothingToExportError, match="no images"):
            export(project)
    assert sorted(p.name for p in empty.iterdir()) == ["x.loraproj"]


# ---------------------------------------------------------------------- targets


def test_an_export_never_writes_over_the_project_its_images_or_a_device(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "hall.jpg", seed=1)
    with make_project(folder) as project:
        before = project.path.read_bytes()
        for target in (project.path, folder / "other.loraproj", folder / "hall.jpg"):
            if target.name == "other.loraproj":
                target.write_bytes(b"SQLite format 3\x00")
            with pytest.raises(OutputExistsError, match="never writes over"):
                export(project, out=target, force=True)
        if Path("/dev/null").exists():
            with pytest.raises(OutputExistsError, match="not a regular file"):
                export(project, out=Path("/dev/null"), force=True)
        assert project.path.read_bytes() == before
        assert project.images()[0].caption is not None  # the project still works


def test_a_converted_image_keeps_its_orientation(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    sticker = Image.new("RGBA", (300, 200), (0, 0, 255, 255))
    sticker.paste((255, 0, 0, 0), (0, 0, 20, 20))  # a transparent corner
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise: 200 × 300
    sticker.save(folder / "turned.png", exif=exif)
    with make_project(folder) as project:
        result = export(project)
    assert "EXIF orientation" in result.conversions[0].reason
    with zipfile.ZipFile(result.path) as archive:
        trained = trainer_pixels(archive.read("turned.png"))
    assert trained.size == (200, 300)
