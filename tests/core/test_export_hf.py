"""The ``hf`` export, read the way its users read it: ``datasets.load_dataset("imagefolder",
data_dir=OUT)`` from the real ``datasets`` library, offline, with its caches in a temporary
folder."""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

from loracap.core.imaging import to_rgb_on_white
from loracap.core.scan import scan_folder
from loracap.core.schema import Review
from tests.core.test_export import captioned_project, export_project
from tests.fakes.photos import make_photo
from tests.test_cli import loracap

COLUMNS = ["image", "text", "provenance", "review", "rating", "trigger"]

Loader = Callable[[Path], Any]


@pytest.fixture(scope="module")
def load_imagefolder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loader]:
    """``load_dataset("imagefolder", data_dir=OUT)``, never reaching the Hub: offline, and
    ``HF_HOME`` and the datasets cache in a temporary folder (set before ``datasets`` is
    imported, as it reads them on import)."""
    home = tmp_path_factory.mktemp("hf-home")
    cache = home / "datasets"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        patch.setenv("HF_HOME", str(home))
        patch.setenv("HF_DATASETS_CACHE", str(cache))
        import datasets

        datasets.disable_progress_bars()

        def load(out: Path) -> Any:
            return datasets.load_dataset("imagefolder", data_dir=str(out), cache_dir=str(cache))

        yield load


def image_names(split: Any) -> list[str]:
    """The file names behind the ``image`` column, in row order."""
    import datasets

    paths = split.cast_column("image", datasets.Image(decode=False))["image"]
    return [Path(value["path"]).name for value in paths]


def test_hf_export_loads_as_one_train_split_with_every_image_and_its_caption(
        tmp_path: Path, load_imagefolder: Loader) -> None:
    folder = tmp_path / "ds"
    cafe_nfd = unicodedata.normalize("NFD", "café.jpg")
    # Split keywords in names would make datasets guess test/validation splits from file names.
    names = ["eval_room.jpg", "test_2.png", "val-1.webp", cafe_nfd, "Hall.JPG"]
    with captioned_project(folder, names) as project:
        make_photo(folder / "dev 3.jpg", seed=9)  # left uncaptioned
        project.add_scanned(scan_folder(folder))
        by_path = {rec.path: rec for rec in project.images()}
        project.set_review(by_path["eval_room.jpg"].id, review=Review.APPROVED, rating=4)
        project.edit_caption(by_path["test_2.png"].id, "a hand-written caption")
        result = export_project(project, "hf", allow_uncaptioned=True)

    out = folder / "ide_main_hall_hf"
    assert result.path == out and result.images == 6
    order = ["café.jpg", "dev 3.jpg", "eval_room.jpg", "Hall.JPG", "test_2.png", "val-1.webp"]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted([".loracap-export", "train/metadata.jsonl",
                              *(f"train/{name}" for name in order)])
    assert (out / "train" / "café.jpg").read_bytes() == (folder / cafe_nfd).read_bytes()

    data = (out / "train" / "metadata.jsonl").read_bytes()
    assert b"\r" not in data and data.endswith(b"\n")
    assert '"file_name": "café.jpg"'.encode() in data  # NFC, UTF-8, not \u-escaped
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    assert [row["file_name"] for row in rows] == order
    assert rows[2] == {"file_name": "eval_room.jpg",
                       "text": "photo of ide_main_hall caption of eval_room.jpg",
                       "provenance": "generated", "review": "approved", "rating": 4,
                       "trigger": "ide_main_hall"}
    assert rows[1] == {"file_name": "dev 3.jpg", "text": "", "provenance": "", "review":
                       "unreviewed", "rating": 0, "trigger": "ide_main_hall"}
    assert rows[4]["text"] == "photo of ide_main_hall a hand-written caption"
    assert rows[4]["provenance"] == "edited"

    loaded = load_imagefolder(out)
    assert list(loaded) == ["train"]
    train = loaded["train"]
    assert train.column_names == COLUMNS and train.num_rows == 6
    assert image_names(train) == order
    for row, want in zip(train, rows, strict=True):
        assert {key: row[key] for key in COLUMNS[1:]} == {
            key: want[key] for key in COLUMNS[1:]}
        assert row["image"].size == (640, 480)


def test_hf_export_pixels_decode_as_the_captioner_saw_them_and_upright(
        tmp_path: Path, load_imagefolder: Loader) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    gradient = Image.linear_gradient("L").resize((256, 256))
    gradient.convert("I").point(lambda v: v * 257).convert("I;16").save(folder / "deep.png")
    sticker = Image.new("RGBA", (200, 200), (255, 0, 0, 0))  # red under a transparent area
    sticker.paste((0, 0, 255, 255), (50, 50, 150, 150))
    sticker.save(folder / "sticker.png")
    make_photo(folder / "turned.jpg", size=(640, 480), orientation=6)  # shown 480 x 640
    with captioned_project(folder, []) as project:
        result = export_project(project, "hf")
    out = result.path
    assert sorted(c.path for c in result.conversions) == ["deep.png", "sticker.png"]
    assert (out / "train" / "turned.jpg").read_bytes() == (folder / "turned.jpg").read_bytes()

    train = load_imagefolder(out)["train"]
    assert image_names(train) == ["deep.png", "sticker.png", "turned.jpg"]
    deep, flat, turned = (row["image"] for row in train)
    with Image.open(folder / "deep.png") as source:
        assert deep.mode in ("RGB", "L")
        assert deep.convert("RGB").tobytes() == to_rgb_on_white(source).tobytes()
    assert abs(deep.convert("L").getpixel((128, 128)) - gradient.getpixel((128, 128))) <= 1
    assert flat.mode in ("RGB", "L")
    assert flat.getpixel((5, 5)) == (255, 255, 255) and flat.getpixel((100, 100)) == (0, 0, 255)
    assert turned.size == (480, 640)
    with Image.open(folder / "turned.jpg") as source:
        assert turned.convert("RGB").tobytes() == ImageOps.exif_transpose(source).tobytes()


@pytest.mark.slow
def test_cli_hf_export_with_renamed_copies_still_loads_one_train_split(
        tmp_path: Path, load_imagefolder: Loader) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["eval_room.jpg", "b.jpg"]) as project:
        project_path = project.path
    result = loracap("export", project_path, "--format", "hf", "--rename", "hall")
    assert result.returncode == 0, result.stderr
    out = folder / "ide_main_hall_hf"
    assert result.stdout.strip() == str(out)
    assert (out / "renames.csv").read_text(encoding="utf-8") == (
        "path,exported_as\nb.jpg,train/hall_0001.jpg\neval_room.jpg,train/hall_0002.jpg\n")
    assert sorted(os.listdir(out / "train")) == ["hall_0001.jpg", "hall_0002.jpg",
                                                 "metadata.jsonl"]
    train = load_imagefolder(out)
    assert list(train) == ["train"] and train["train"].column_names == COLUMNS
    assert image_names(train["train"]) == ["hall_0001.jpg", "hall_0002.jpg"]
    assert train["train"]["text"] == ["photo of ide_main_hall caption of b.jpg",
                                      "photo of ide_main_hall caption of eval_room.jpg"]

