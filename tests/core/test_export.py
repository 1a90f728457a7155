"""Exports: the Replicate zip and metadata.txt, byte for byte; what every format shares (the
export record, review marks)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from PIL import Image

from loracap.core.errors import ExportError, OutputExistsError, UncaptionedImagesError
from loracap.core.exports import (
    ExportFormat,
    ExportOptions,
    ExportResult,
    ReviewFilter,
    default_review_filter,
    get_format,
    is_own_export,
)
from loracap.core.exports import default_output as _default_output
from loracap.core.exports import export_project as _export_project
from loracap.core.exports import plan_export as _plan_export
from loracap.core.exports.writer import zip_fingerprint
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.core.schema import Review
from tests.fakes.photos import make_photo


def export_project(project: Project, fmt: ExportFormat = ExportFormat.REPLICATE,
                   out: Path | None = None, *, force: bool = False, replace_own: bool = False,
                   **options: object) -> ExportResult:
    """``export_project`` with the format by name and the options as keywords."""
    return _export_project(project, get_format(fmt), out, ExportOptions(**options),  # type: ignore[arg-type]
                           force=force, replace_own=replace_own)


def default_output(project: Project, fmt: ExportFormat) -> Path:
    return _default_output(project, get_format(fmt))


def captioned_project(folder: Path, names: list[str], trigger: str = "ide_main_hall") -> Project:
    for seed, name in enumerate(names):
        make_photo(folder / name, seed=seed)
    project = Project.create(folder / f"{trigger}.loraproj", trigger=trigger)
    project.add_scanned(scan_folder(folder))
    for rec in project.images():
        project.store_generated(
            rec.id, f"caption of {rec.path}", backend="gemini", model="m", prompt="p"
        )
    return project


def test_replicate_zip_holds_images_unchanged_captions_and_metadata(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["b.jpg", "A.png", "c.webp"]) as project:
        rec = next(r for r in project.images() if r.path == "c.webp")
        project.edit_caption(rec.id, "glass doors,\nentrance area")  # a line break a person typed
        result = export_project(project)
    assert result.path == folder / "ide_main_hall_training.zip"
    with zipfile.ZipFile(result.path) as archive:
        names = archive.namelist()
        assert sorted(names) == sorted(
            ["A.png", "A.txt", "b.jpg", "b.txt", "c.webp", "c.txt", "metadata.txt"]
        )
        for image in ("A.png", "b.jpg", "c.webp"):
            assert archive.read(image) == (folder / image).read_bytes()
            assert archive.getinfo(image).compress_type == zipfile.ZIP_STORED
        assert archive.read("b.txt") == b"photo of ide_main_hall caption of b.jpg"
        assert archive.read("c.txt") == b"photo of ide_main_hall glass doors, entrance area"
        assert archive.read("metadata.txt") == (
            b"photo of ide_main_hall caption of A.png\n"
            b"photo of ide_main_hall caption of b.jpg\n"
            b"photo of ide_main_hall glass doors, entrance area\n"
        )
        for name in names:
            assert not name.startswith("/") and ".." not in name.split("/")
    assert result.images == 3 and result.captions == 3 and result.renames == []


def test_export_is_reproducible_byte_for_byte(tmp_path: Path) -> None:
    with captioned_project(tmp_path / "ds", ["x.jpg", "y.jpg"]) as project:
        first = export_project(project, out=tmp_path / "one.zip").path.read_bytes()
        second = export_project(project, out=tmp_path / "two.zip").path.read_bytes()
    assert first == second


def test_same_names_and_stem_collisions_are_renamed_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    names = ["a.jpg", "a.png", "one/IMG_1.jpg", "two/IMG_1.jpg", "two/img_1.webp"]
    with captioned_project(folder, names) as project:
        result = export_project(project)
    with zipfile.ZipFile(result.path) as archive:
        entries = set(archive.namelist())
        assert len([n for n in entries if not n.endswith(".txt")]) == 5  # nothing dropped
        stems = [Path(n).stem.casefold() for n in entries if not n.endswith(".txt")]
        assert len(stems) == len(set(stems))  # every image has its own caption file
        for name in entries - {"metadata.txt"}:
            if not name.endswith(".txt"):
                assert f"{Path(name).stem}.txt" in entries
        renamed = {change.path: change.new_name for change in result.renames}
        assert set(renamed) == {"a.png", "two/IMG_1.jpg", "two/img_1.webp"}
        assert renamed["a.png"] == "a_2.png"
        assert archive.read(renamed["a.png"]) == (folder / "a.png").read_bytes()
        assert archive.read("a_2.txt") == b"photo of ide_main_hall caption of a.png"


def test_uncaptioned_images_stop_the_export_unless_allowed(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["a.jpg", "b.jpg"]) as project:
        make_photo(folder / "c.jpg", seed=5)
        project.add_scanned(scan_folder(folder))
        with pytest.raises(UncaptionedImagesError) as info:
            export_project(project)
        assert info.value.images == ["c.jpg"] and "--allow-uncaptioned" in str(info.value)
        assert not default_output(project, ExportFormat.REPLICATE).exists()
        result = export_project(project, allow_uncaptioned=True)
    with zipfile.ZipFile(result.path) as archive:
        assert "c.jpg" in archive.namelist() and "c.txt" not in archive.namelist()
        assert archive.read("metadata.txt").count(b"\n") == 2
    assert result.uncaptioned == ["c.jpg"]


def test_empty_caption_is_never_written(tmp_path: Path) -> None:
    with captioned_project(tmp_path / "ds", ["a.jpg", "b.jpg"]) as project:
        rec = project.images()[0]
        project.edit_caption(rec.id, "   ")
        with pytest.raises(UncaptionedImagesError):
            export_project(project)
        result = export_project(project, allow_uncaptioned=True)
    with zipfile.ZipFile(result.path) as archive:
        assert "a.txt" not in archive.namelist()
        for name in archive.namelist():
            if name.endswith(".txt"):
                assert archive.read(name).strip()


def test_existing_output_needs_force(tmp_path: Path) -> None:
    with captioned_project(tmp_path / "ds", ["a.jpg"]) as project:
        out = tmp_path / "ds" / "ide_main_hall_training.zip"
        out.write_bytes(b"older export")
        with pytest.raises(OutputExistsError, match="--force"):
            export_project(project)
        assert out.read_bytes() == b"older export"
        export_project(project, force=True)
    assert zipfile.is_zipfile(out)


def test_metadata_txt_alone(tmp_path: Path) -> None:
    with captioned_project(tmp_path / "ds", ["b.jpg", "a.jpg"]) as project:
        result = export_project(project, ExportFormat.METADATA)
    assert result.path.name == "metadata.txt"
    assert result.path.read_bytes() == (
        b"photo of ide_main_hall caption of a.jpg\nphoto of ide_main_hall caption of b.jpg\n"
    )


def test_bmp_is_converted_losslessly_for_the_trainer(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["scan.bmp"]) as project:
        result = export_project(project)
    assert [(c.path, c.new_name) for c in result.conversions] == [("scan.bmp", "scan.png")]
    with zipfile.ZipFile(result.path) as archive:
        assert set(archive.namelist()) == {"scan.png", "scan.txt", "metadata.txt"}
        with archive.open("scan.png") as handle, Image.open(handle) as png:
            with Image.open(folder / "scan.bmp") as bmp:
                assert png.format == "PNG" and png.tobytes() == bmp.convert(png.mode).tobytes()


def test_missing_image_files_stop_the_export(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["a.jpg", "b.jpg"]) as project:
        (folder / "b.jpg").unlink()
        with pytest.raises(ExportError, match="missing on disk"):
            export_project(project)


def test_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["a.jpg", "b.jpg"]) as project:
        plan = _plan_export(project, get_format(ExportFormat.REPLICATE))
        (folder / "b.jpg").unlink()  # vanishes between planning and writing
        from loracap.core.exports.writer import write_plan

        with pytest.raises(ExportError, match="Cannot read b.jpg"):
            write_plan(project, plan, folder / "out.zip", replace_existing=False)
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg", "ide_main_hall.loraproj"]


@pytest.mark.parametrize(
    ("review", "exported"),
    [
        (ReviewFilter.ALL, {"a.jpg", "b.jpg", "c.jpg"}),
        (ReviewFilter.APPROVED, {"a.jpg"}),
        (ReviewFilter.NOT_REJECTED, {"a.jpg", "c.jpg"}),
    ],
)
def test_review_marks_choose_the_exported_images(tmp_path: Path, review: ReviewFilter,
                                                 exported: set[str]) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["a.jpg", "b.jpg", "c.jpg"]) as project:
        ids = {rec.path: rec.id for rec in project.images()}
        project.set_review(ids["a.jpg"], review=Review.APPROVED)
        project.set_review(ids["b.jpg"], review=Review.REJECTED)
        project.edit_caption(ids["b.jpg"], "")  # rejected and uncaptioned: no blocker then
        if review is ReviewFilter.ALL:
            with pytest.raises(UncaptionedImagesError):
                export_project(project, review=review)
            result = export_project(project, review=review, allow_uncaptioned=True)
        else:
            result = export_project(project, review=review)
    with zipfile.ZipFile(result.path) as archive:
        images = {n for n in archive.namelist() if n.endswith(".jpg")}
    assert images == exported
    assert len(result.review_skipped) == 3 - len(exported)


def test_every_export_is_recorded_and_its_own_file_can_be_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["a.jpg", "b.jpg"]) as project:
        first = export_project(project)
        data = first.path.read_bytes()
        assert first.recorded and not first.replaced_own
        assert first.sha256 == zip_fingerprint(first.path)
        [record] = project.exports()
        assert (record.path, record.format, record.size, record.sha256) == (
            "ide_main_hall_training.zip", "replicate", len(data), first.sha256)
        assert is_own_export(project, first.path)
        with pytest.raises(OutputExistsError, match="--force"):
            export_project(project)  # `loracap export` still asks for --force
        rec = project.images()[0]
        project.edit_caption(rec.id, "a new caption")
        second = export_project(project, replace_own=True)
        assert second.replaced_own and second.path.read_bytes() != data
        assert len(project.exports()) == 2
        # A zip changed by a zip tool (same size, another caption) is not its own any more.
        with zipfile.ZipFile(second.path) as archive:
            entries = {name: archive.read(name) for name in archive.namelist()}
        entries["a.txt"] = entries["a.txt"].replace(b"a", b"A", 1)
        edited = folder / "edited.zip"
        with zipfile.ZipFile(edited, "w") as archive:
            for name, content in entries.items():
                archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)),
                                 content)
        assert zip_fingerprint(edited) != second.sha256
        # A file changed since, or one LoRACap never wrote, is not replaced.
        with second.path.open("ab") as handle:
            handle.write(b"!")
        assert not is_own_export(project, second.path)
        with pytest.raises(OutputExistsError, match="not an export LoRACap wrote"):
            export_project(project, replace_own=True)
        foreign = folder / "metadata.txt"
        foreign.write_text("mine\n")
        with pytest.raises(OutputExistsError, match="not an export LoRACap wrote"):
            export_project(project, ExportFormat.METADATA, replace_own=True)
        assert foreign.read_text() == "mine\n"
        forced = export_project(project, ExportFormat.METADATA, force=True)
        assert forced.recorded and is_own_export(project, foreign)


def test_a_read_only_project_exports_without_recording(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["a.jpg"]):
        pass
    with Project.open(folder / "ide_main_hall.loraproj", read_only=True) as project:
        result = export_project(project)
        assert result.path.is_file() and not result.recorded
        assert project.exports() == []


def test_rejected_images_are_left_out_by_default_once_any_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["a.jpg", "b.jpg"]) as project:
        assert default_review_filter(project.stats()) is ReviewFilter.ALL
        assert default_review_filter(project.images()) is ReviewFilter.ALL
        rec = project.images()[0]
        project.set_review(rec.id, review=Review.APPROVED)
        assert default_review_filter(project.stats()) is ReviewFilter.ALL
        project.set_review(rec.id, review=Review.REJECTED)
        assert default_review_filter(project.stats()) is ReviewFilter.NOT_REJECTED
        assert default_review_filter(project.images()) is ReviewFilter.NOT_REJECTED
