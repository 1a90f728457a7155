"""The ai-toolkit, fal and folder exports, read back the way their trainers read them.

ai-toolkit's reader below follows its data loader (ostris/ai-toolkit, commit 27a03a9:
``toolkit/data_loader.py`` ``AiToolkitDataset``, ``toolkit/dataloader_mixins.py``
``load_caption``/``get_caption``, ``toolkit/prompt_utils.py`` ``inject_trigger_into_prompt``,
``toolkit/config.py`` ``get_config``): recursive walk, hidden folders and files skipped,
``.jpg .jpeg .png .webp`` in any case, caption = path without extension + ``caption_ext``,
``[trigger]`` replaced by the dataset's trigger word (prepended when missing), images opened
with ``exif_transpose`` then ``convert("RGB")``. fal's trainers are closed: their zip is read
as fal documents it (``photo.jpg`` + ``photo.txt``). The folder is read as OneTrainer and any
sidecar reader do: ``<stem>.txt`` beside each image, each line a caption.
"""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image, ImageOps

from loracap.core.errors import InputError, UntrainableImagesError
from loracap.core.exports import ExportFormat, ExportResult, get_format
from loracap.core.exports.replicate import AI_TOOLKIT_EXTENSIONS
from tests.core.test_export import captioned_project, export_project
from tests.fakes.photos import make_photo

IMAGE_FORMATS = [ExportFormat.AI_TOOLKIT, ExportFormat.FAL, ExportFormat.FOLDER]

#: OneTrainer's image extensions (``modules/util/path_util.py``), compared in lower case.
ONETRAINER_EXTENSIONS = {".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".avif"}


# ---------------------------------------------------------------------- readers


def load_job_yaml(text: str) -> Any:
    """Load YAML as ai-toolkit's ``get_config`` does: ``${NAME}`` anywhere is an environment
    variable that must exist, then a safe load."""
    for match in re.finditer(r"\$\{([^}]+)\}", text):
        if match.group(1) not in os.environ:
            raise ValueError(f"Environment variable {match.group(1)} not set")
    return yaml.safe_load(text)


def read_like_ai_toolkit(root: Path, dataset: dict[str, Any]) -> dict[str, str]:
    """{image path relative to ``root``: the caption ai-toolkit trains it with} for one
    ``datasets:`` entry (its ``folder_path`` ignored: ``root`` is read)."""
    ext = dataset.get("caption_ext", ".txt")
    if ext and not ext.startswith("."):
        ext = "." + ext
    trigger = dataset.get("trigger_word") or ""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if Path(folder).name == "_controls":
            continue
        for name in files:
            if name.startswith(".") or not name.lower().endswith(tuple(AI_TOOLKIT_EXTENSIONS)):
                continue
            path = Path(folder) / name
            caption_path = Path(os.path.splitext(path)[0] + ext)
            caption = caption_path.read_text(encoding="utf-8") if caption_path.exists() else ""
            for token in ("[name]", "[trigger]"):
                caption = caption.replace(token, trigger)
            if trigger.strip() and trigger not in caption:
                caption = f"{trigger} {caption}"
            with Image.open(path) as im:
                rgb = ImageOps.exif_transpose(im).convert("RGB")
                assert min(rgb.size) >= 128  # no image ai-toolkit's buckets choke on
            found[path.relative_to(root).as_posix()] = caption
    return found


def unpack(archive_path: Path, into: Path) -> Path:
    """Unpack a zip as a user does, after checking it holds no entry twice and none outside."""
    with zipfile.ZipFile(archive_path) as archive:
        names = archive.namelist()
        assert len(names) == len(set(names))
        for name in names:
            assert not name.startswith("/") and ".." not in name.split("/")
        archive.extractall(into)
    return into


def read_sidecars(root: Path) -> dict[str, list[str]]:
    """{image path: its caption lines} as OneTrainer reads a folder: its image extensions in
    any case, ``<stem>.txt`` beside each image, one caption per line."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in ONETRAINER_EXTENSIONS:
            sidecar = path.with_suffix(".txt")
            lines = sidecar.read_text(encoding="utf-8").splitlines() if sidecar.exists() else []
            found[path.relative_to(root).as_posix()] = lines
    return found


def read_fal_zip(path: Path) -> dict[str, str]:
    """{image name: caption} of a fal zip: ``photo.jpg`` + ``photo.txt`` side by side."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert len(names) == len(set(names))
        found = {}
        for name in names:
            if Path(name).suffix.lower() in AI_TOOLKIT_EXTENSIONS:
                caption_name = f"{Path(name).with_suffix('')}.txt"
                found[name] = (archive.read(caption_name).decode("utf-8")
                               if caption_name in names else "")
        return found


def trained_captions(result: ExportResult, tmp_path: Path) -> dict[str, str]:
    """{image: caption} of any of the three exports, as its trainer reads it."""
    if result.format is ExportFormat.AI_TOOLKIT:
        root = result.path
        if zipfile.is_zipfile(root):
            root = unpack(root, tmp_path / "unpacked")
        config = load_job_yaml((root / "config.yaml").read_text(encoding="utf-8"))
        return read_like_ai_toolkit(root, config["datasets"][0])
    if result.format is ExportFormat.FAL:
        return read_fal_zip(result.path)
    return {name: " ".join(lines) for name, lines in read_sidecars(result.path).items()}


def image_bytes(result: ExportResult, name: str) -> bytes:
    if result.path.is_dir():
        return (result.path / name).read_bytes()
    with zipfile.ZipFile(result.path) as archive:
        return archive.read(name)


# ---------------------------------------------------------------------- ai-toolkit


def test_ai_toolkit_folder_trains_every_image_with_its_caption(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    names = ["b.jpg", "A.png", "c.webp", "sub/d.JPEG", "scan.bmp"]
    with captioned_project(folder, names) as project:
        result = export_project(project, ExportFormat.AI_TOOLKIT)
    assert result.path == folder / "ide_main_hall_ai-toolkit" and result.path.is_dir()
    text = (result.path / "config.yaml").read_text(encoding="utf-8")
    config = load_job_yaml(text)
    [dataset] = config["datasets"]
    assert dataset["folder_path"].endswith("/ide_main_hall_ai-toolkit")
    assert dataset["caption_ext"] == "txt" and dataset["trigger_word"] == "ide_main_hall"
    assert dataset["resolution"] == [512, 768, 1024]
    captions = trained_captions(result, tmp_path)
    assert captions == {
        "A.png": "photo of ide_main_hall caption of A.png",
        "b.jpg": "photo of ide_main_hall caption of b.jpg",
        "c.webp": "photo of ide_main_hall caption of c.webp",
        "d.JPEG": "photo of ide_main_hall caption of sub/d.JPEG",
        "scan.png": "photo of ide_main_hall caption of scan.bmp",  # BMP: ai-toolkit skips it
    }
    for name in ("A.png", "b.jpg", "c.webp"):
        assert image_bytes(result, name) == (folder / name).read_bytes()
    assert [(c.path, c.new_name) for c in result.conversions] == [("scan.bmp", "scan.png")]


def test_ai_toolkit_zip_when_the_output_ends_in_zip(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["b.jpg", "A.png"]) as project:
        result = export_project(project, ExportFormat.AI_TOOLKIT, out=tmp_path / "hall.zip")
    assert result.path == tmp_path / "hall.zip" and zipfile.is_zipfile(result.path)
    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == ["A.png", "A.txt", "b.jpg", "b.txt", "config.yaml"]
    assert trained_captions(result, tmp_path) == {
        "A.png": "photo of ide_main_hall caption of A.png",
        "b.jpg": "photo of ide_main_hall caption of b.jpg",
    }


def test_ai_toolkit_config_pastes_into_a_job_and_keeps_yaml_words_strings(
        tmp_path: Path) -> None:
    # "on" is a valid trigger word and YAML 1.1's true: an unquoted value would train on True.
    with captioned_project(tmp_path / "ds", ["a.jpg"], trigger="on") as project:
        result = export_project(project, ExportFormat.AI_TOOLKIT)
    text = (result.path / "config.yaml").read_text(encoding="utf-8")
    assert "${" not in text  # ai-toolkit would take it for an environment variable
    job = ("job: extension\nconfig:\n  name: \"my_lora\"\n  process:\n"
           "    - type: 'sd_trainer'\n      training_folder: \"output\"\n" + text
           + "      train:\n        steps: 2000\n")
    process = load_job_yaml(job)["config"]["process"][0]
    assert process["train"] == {"steps": 2000}  # the block sits where ai-toolkit looks
    [dataset] = process["datasets"]
    assert dataset["trigger_word"] == "on"
    assert dataset["caption_dropout_rate"] == 0.05
    assert dataset["cache_latents_to_disk"] is True and dataset["shuffle_tokens"] is False


# ---------------------------------------------------------------------- fal


def test_fal_zip_of_photo_and_txt(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["photo.jpg", "other.png", "scan.bmp"]) as project:
        result = export_project(project, ExportFormat.FAL)
    assert result.path == folder / "ide_main_hall_fal.zip"
    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == [
            "other.png", "other.txt", "photo.jpg", "photo.txt", "scan.png", "scan.txt"]
        assert archive.read("photo.jpg") == (folder / "photo.jpg").read_bytes()
        assert archive.getinfo("photo.jpg").compress_type == zipfile.ZIP_STORED
    assert read_fal_zip(result.path)["photo.jpg"] == "photo of ide_main_hall caption of photo.jpg"


# ---------------------------------------------------------------------- folder


def test_folder_is_a_plain_copy_with_sidecar_captions(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["b.jpg", "scan.bmp", "sub/c.webp"]) as project:
        rec = next(r for r in project.images() if r.path == "b.jpg")
        project.edit_caption(rec.id, "glass doors,\nentrance area")  # one line in the file
        result = export_project(project, ExportFormat.FOLDER)
    assert result.path == folder / "ide_main_hall_dataset"
    assert read_sidecars(result.path) == {
        "b.jpg": ["photo of ide_main_hall glass doors, entrance area"],
        "c.webp": ["photo of ide_main_hall caption of sub/c.webp"],
        "scan.bmp": ["photo of ide_main_hall caption of scan.bmp"],
    }
    for name, source in (("b.jpg", "b.jpg"), ("scan.bmp", "scan.bmp"), ("c.webp", "sub/c.webp")):
        assert (result.path / name).read_bytes() == (folder / source).read_bytes()
    assert result.conversions == []


# ---------------------------------------------------------------------- shared rules


@pytest.mark.parametrize("fmt", [ExportFormat.AI_TOOLKIT, ExportFormat.FAL])
def test_trigger_placeholder_is_written_and_read_back_as_the_trigger(
        tmp_path: Path, fmt: ExportFormat) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["a.jpg", "b.jpg"]) as project:
        rec = next(r for r in project.images() if r.path == "b.jpg")
        project.edit_caption(rec.id, "the ide_main_hall entrance, not ide_main_hall_old")
        plain = export_project(project, fmt, out=tmp_path / "plain.zip")
        marked = export_project(project, fmt, out=tmp_path / "marked.zip",
                                trigger_placeholder=True)
    with zipfile.ZipFile(marked.path) as archive:
        assert archive.read("a.txt") == b"photo of [trigger] caption of a.jpg"
        assert archive.read("b.txt") == (
            b"photo of [trigger] the [trigger] entrance, not ide_main_hall_old")
    if fmt is ExportFormat.FAL:
        return  # fal's replacement happens in its closed trainer
    assert trained_captions(marked, tmp_path / "m") == trained_captions(plain, tmp_path / "p")
    assert trained_captions(marked, tmp_path / "m2")["b.jpg"] == (
        "photo of ide_main_hall the ide_main_hall entrance, not ide_main_hall_old")


def test_folder_has_no_trigger_placeholder(tmp_path: Path) -> None:
    with captioned_project(tmp_path / "ds", ["a.jpg"]) as project:
        with pytest.raises(InputError, match="--trigger-placeholder"):
            export_project(project, ExportFormat.FOLDER, trigger_placeholder=True)


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_rename_prefix_with_renames_csv(tmp_path: Path, fmt: ExportFormat) -> None:
    folder = tmp_path / "ds"
    names = ["z.jpg", "a.png", "sub/m.webp"]
    with captioned_project(folder, names) as project:
        result = export_project(project, fmt, rename_prefix="hall")
    captions = trained_captions(result, tmp_path)
    assert sorted(captions) == ["hall_0001.png", "hall_0002.webp", "hall_0003.jpg"]
    if result.path.is_dir():
        renames = (result.path / "renames.csv").read_text(encoding="utf-8")
    else:
        with zipfile.ZipFile(result.path) as archive:
            renames = archive.read("renames.csv").decode("utf-8")
    rows = list(csv.reader(io.StringIO(renames)))
    assert rows[0] == ["path", "exported_as"]
    old_of = {new: old for old, new in rows[1:]}
    assert old_of == {"hall_0001.png": "a.png", "hall_0002.webp": "sub/m.webp",
                      "hall_0003.jpg": "z.jpg"}
    for new, caption in captions.items():
        assert caption == f"photo of ide_main_hall caption of {old_of[new]}"
        assert image_bytes(result, new) == (folder / old_of[new]).read_bytes()


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_stem_collisions_never_share_a_caption(tmp_path: Path, fmt: ExportFormat) -> None:
    folder = tmp_path / "ds"
    names = ["a.jpg", "a.png", "one/IMG_1.jpg", "two/IMG_1.jpg", "two/img_1.webp"]
    with captioned_project(folder, names) as project:
        result = export_project(project, fmt)
    captions = trained_captions(result, tmp_path)
    assert len(captions) == 5  # nothing dropped, nothing overwritten
    renamed = {change.new_name: change.path for change in result.renames}
    assert set(renamed.values()) == {"a.png", "two/IMG_1.jpg", "two/img_1.webp"}
    source_of = {"a.jpg": "a.jpg", "IMG_1.jpg": "one/IMG_1.jpg", **renamed}
    assert set(captions) == set(source_of)
    for name, caption in captions.items():
        assert caption == f"photo of ide_main_hall caption of {source_of[name]}"


@pytest.mark.parametrize("fmt", [ExportFormat.AI_TOOLKIT, ExportFormat.FAL])
def test_a_100_px_image_stops_the_export_or_is_left_out(tmp_path: Path,
                                                        fmt: ExportFormat) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["big.jpg"]) as project:
        make_photo(folder / "tiny.jpg", size=(100, 150), seed=9)
        from loracap.core.scan import scan_folder

        project.add_scanned(scan_folder(folder))
        rec = next(r for r in project.images() if r.path == "tiny.jpg")
        project.edit_caption(rec.id, "a tiny picture")
        with pytest.raises(UntrainableImagesError, match="tiny.jpg") as info:
            export_project(project, fmt)
        assert info.value.images == ["tiny.jpg"]
        assert "--skip-untrainable" in str(info.value)
        result = export_project(project, fmt, skip_untrainable=True)
    assert [(c.path, c.new_name) for c in result.untrainable] == [("tiny.jpg", "tiny.jpg")]
    assert "100 × 150 px" in result.untrainable[0].reason
    assert list(trained_captions(result, tmp_path)) == ["big.jpg"]


def test_the_folder_format_keeps_a_100_px_image(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["big.jpg"]) as project:
        make_photo(folder / "tiny.jpg", size=(100, 150), seed=9)
        from loracap.core.scan import scan_folder

        project.add_scanned(scan_folder(folder))
        rec = next(r for r in project.images() if r.path == "tiny.jpg")
        project.edit_caption(rec.id, "a tiny picture")
        result = export_project(project, ExportFormat.FOLDER)
    assert sorted(read_sidecars(result.path)) == ["big.jpg", "tiny.jpg"]
    assert result.untrainable == []


def test_the_formats_are_listed_in_order() -> None:
    from loracap.core.exports import FORMATS

    mine = [name for name in FORMATS if name in IMAGE_FORMATS]
    assert mine == IMAGE_FORMATS
    for name in IMAGE_FORMATS:
        assert get_format(name.value).name is name


@pytest.mark.slow
def test_cli_exports_each_format(tmp_path: Path) -> None:
    from tests.test_cli import loracap

    folder = tmp_path / "ds"
    with captioned_project(folder, ["a.jpg"]) as project:
        path = project.path
    out = tmp_path / "hall.zip"
    done = loracap("export", path, "--format", "ai-toolkit", "--out", out,
                   "--trigger-placeholder")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    with zipfile.ZipFile(out) as archive:
        assert archive.read("a.txt") == b"photo of [trigger] caption of a.jpg"
        assert "config.yaml" in archive.namelist()
    done = loracap("export", path, "--format", "fal", "--rename", "hall")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(folder / "ide_main_hall_fal.zip") as archive:
        assert sorted(archive.namelist()) == ["hall_0001.jpg", "hall_0001.txt", "renames.csv"]
    refused = loracap("export", path, "--format", "folder", "--trigger-placeholder")
    assert refused.returncode == 2 and "--trigger-placeholder" in refused.stderr
    assert not (folder / "ide_main_hall_dataset").exists()
    done = loracap("export", path, "--format", "folder")
    assert done.returncode == 0, done.stderr
    assert (folder / "ide_main_hall_dataset" / "a.txt").read_text(encoding="utf-8") == (
        "photo of ide_main_hall caption of a.jpg")
