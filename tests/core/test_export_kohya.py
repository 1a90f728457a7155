"""The kohya export, read back the way kohya sd-scripts reads a dataset.

:func:`read_kohya` follows kohya's documented rules (sd-scripts ``library/train_util.py`` and
``library/config_util.py``; see :mod:`loracap.core.exports.kohya`): each folder of
``train_data_dir`` named ``<repeats>_<class tokens>``, the images directly inside it (no
recursion, no dot-files) whose extension is in kohya's list in all-lower or all-upper case,
the caption file ``<stem><caption_extension>`` read as UTF-8 (an empty one aborts), its first
line stripped, the class tokens for an image without one, and the pixels as stored
(``convert("RGB")``, no EXIF orientation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from loracap.core.errors import InputError, UntrainableImagesError
from loracap.core.exports import (
    Conversion,
    ExportOptions,
    ExportResult,
    export_project,
    get_format,
    plan_export,
)
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.photos import make_photo

REPO = Path(__file__).resolve().parents[2]
TRIGGER = "ide_main_hall"

#: kohya's IMAGE_EXTENSIONS: each extension all lower or all upper case, nothing else.
_LOWER = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
KOHYA_IMAGE_EXTENSIONS = frozenset(_LOWER + tuple(ext.upper() for ext in _LOWER))


@dataclass(frozen=True)
class KohyaImage:
    path: Path
    repeats: int
    class_tokens: str
    caption: str
    has_caption_file: bool


def kohya_images(folder: Path) -> list[Path]:
    """The files kohya's per-extension glob finds in ``folder`` (not below it): the extension
    compared case-sensitively, as on Linux; names starting with a dot are not matched."""
    return sorted(
        entry for entry in folder.iterdir()
        if entry.is_file() and not entry.name.startswith(".")
        and os.path.splitext(entry.name)[1] in KOHYA_IMAGE_EXTENSIONS)


def kohya_caption(image: Path, caption_ext: str) -> str | None:
    """The caption kohya reads for ``image``: the first line of its caption file, stripped;
    None without one. An empty caption file aborts kohya's run (an assert): it fails here."""
    path = image.with_name(os.path.splitext(image.name)[0] + caption_ext)
    if not path.is_file():
        return None
    lines = path.read_bytes().decode("utf-8").splitlines()  # strict UTF-8, as kohya opens it
    assert lines, f"caption file is empty: {path} (kohya would abort)"
    return lines[0].strip()


def read_kohya(train_data_dir: Path, caption_ext: str = ".caption") -> list[KohyaImage]:
    """Every image kohya trains from ``train_data_dir`` (``--train_data_dir``)."""
    found = []
    for subset in sorted(p for p in train_data_dir.iterdir() if p.is_dir()):
        head, _, rest = subset.name.partition("_")
        try:
            repeats = int(head)
        except ValueError:
            continue  # kohya ignores a folder without repeats
        if repeats < 1:
            continue
        for image in kohya_images(subset):
            caption = kohya_caption(image, caption_ext)
            found.append(KohyaImage(image, repeats, rest,
                                    caption if caption is not None else rest,
                                    caption is not None))
    return found


def kohya_pixels(path: Path) -> Image.Image:
    """The pixels kohya trains on: the file as stored, ``convert("RGB")``, no EXIF applied."""
    with Image.open(path) as im:
        return im.convert("RGB")


def make_project(folder: Path, names: list[str], **photo: object) -> Project:
    for seed, name in enumerate(names):
        make_photo(folder / name, seed=seed, **photo)  # type: ignore[arg-type]
    project = Project.create(folder / f"{TRIGGER}.loraproj", trigger=TRIGGER)
    project.add_scanned(scan_folder(folder))
    for rec in project.images():
        project.store_generated(rec.id, f"caption of {rec.path}", backend="gemini", model="m",
                                prompt="p")
    return project


def export(project: Project, out: Path | None = None, **options: object) -> ExportResult:
    return export_project(project, get_format("kohya"), out,
                          ExportOptions(**options))  # type: ignore[arg-type]


def by_name(images: list[KohyaImage]) -> dict[str, KohyaImage]:
    return {image.path.name: image for image in images}


def test_kohya_finds_every_image_with_its_caption_and_repeats(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    names = ["b.jpg", "A.png", "c.webp", "d.bmp", "a.jpg", "sub/e.jpeg"]
    with make_project(folder, names) as project:
        rec = next(r for r in project.images() if r.path == "c.webp")
        project.edit_caption(rec.id, "glass doors,\nentrance area ünïcode")  # a typed line break
        result = export(project, repeats=7)
    out = folder / f"{TRIGGER}_kohya"
    assert result.path == out and result.images == 6
    assert sorted(p.name for p in out.iterdir()) == [
        ".loracap-export", "dataset.toml", "img", "meta_cap.json"]
    assert [p.name for p in (out / "img").iterdir()] == [f"7_{TRIGGER}"]

    found = by_name(read_kohya(out / "img"))
    # a.jpg and A.png would share a.caption: one is renamed; sub/e.jpeg sits in the folder itself
    assert sorted(found) == ["A_2.png", "a.jpg", "b.jpg", "c.webp", "d.bmp", "e.jpeg"]
    assert {(i.repeats, i.class_tokens, i.has_caption_file) for i in found.values()} == {
        (7, TRIGGER, True)}
    assert found["b.jpg"].caption == f"photo of {TRIGGER} caption of b.jpg"
    assert found["A_2.png"].caption == f"photo of {TRIGGER} caption of A.png"
    assert found["e.jpeg"].caption == f"photo of {TRIGGER} caption of sub/e.jpeg"
    assert found["c.webp"].caption == f"photo of {TRIGGER} glass doors, entrance area ünïcode"
    subset = out / "img" / f"7_{TRIGGER}"
    for image in found.values():  # one line, no trailing newline: the first line is all of it
        text = image.path.with_suffix(".caption").read_text(encoding="utf-8")
        assert text == image.caption
    assert (subset / "b.jpg").read_bytes() == (folder / "b.jpg").read_bytes()  # copied as is
    assert sorted(p.name for p in subset.iterdir()) == sorted(
        [*found, *(Path(n).stem + ".caption" for n in found)])


def test_exif_orientation_is_turned_into_pixels(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "turned.jpg", size=(640, 480), seed=3, orientation=6)
    make_photo(folder / "upright.jpg", size=(640, 480), seed=4, orientation=1)
    with make_project(folder, []) as project:
        result = export(project)
    with Image.open(folder / "turned.jpg") as im:
        upright = ImageOps.exif_transpose(im).convert("RGB")
    assert upright.size == (480, 640)
    assert kohya_pixels(folder / "turned.jpg").size == (640, 480)  # what kohya sees unbaked

    found = by_name(read_kohya(result.path / "img"))
    pixels = kohya_pixels(found["turned.jpg"].path)
    assert pixels.size == (480, 640)
    mean_diff = sum(ImageStat.Stat(ImageChops.difference(pixels, upright)).mean) / 3
    assert mean_diff < 2.0  # JPEG re-encoded at quality 95
    with Image.open(found["turned.jpg"].path) as im:
        assert im.getexif().get(0x0112, 1) == 1  # no tag left to turn it twice elsewhere
    # an upright image is copied byte for byte, not re-encoded
    assert found["upright.jpg"].path.read_bytes() == (folder / "upright.jpg").read_bytes()
    assert [(c.path, c.reason) for c in result.conversions] == [
        ("turned.jpg", str(Conversion.ORIENTATION))]


def test_mixed_case_extensions_are_written_in_lower_case(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    make_photo(folder / "Photo.Jpg", seed=1, fmt="JPEG")
    make_photo(folder / "Scan.PnG", seed=2, fmt="PNG")
    make_photo(folder / "Loud.JPG", seed=3, fmt="JPEG")
    # The reader is kohya's: a mixed-case extension is not found (on a case-sensitive disk).
    assert [p.name for p in kohya_images(folder)] == ["Loud.JPG"]
    with make_project(folder, []) as project:
        result = export(project)
    found = by_name(read_kohya(result.path / "img"))
    assert sorted(found) == ["Loud.jpg", "Photo.jpg", "Scan.png"]
    assert found["Photo.jpg"].caption == f"photo of {TRIGGER} caption of Photo.Jpg"
    assert found["Photo.jpg"].path.read_bytes() == (folder / "Photo.Jpg").read_bytes()


def test_txt_caption_files_on_request(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with make_project(folder, ["x.jpg", "y.png"]) as project:
        result = export(project, caption_ext=".txt")
        again = export(project, tmp_path / "plain", caption_ext="txt")  # kohya adds the dot
    subset = result.path / "img" / f"10_{TRIGGER}"
    assert sorted(p.name for p in subset.iterdir()) == ["x.jpg", "x.txt", "y.png", "y.txt"]
    found = by_name(read_kohya(result.path / "img", ".txt"))
    assert found["y.png"].caption == f"photo of {TRIGGER} caption of y.png"
    config = tomllib.loads((result.path / "dataset.toml").read_text(encoding="utf-8"))
    assert config["datasets"][0]["subsets"][0]["caption_extension"] == ".txt"
    assert (again.path / "img" / f"10_{TRIGGER}" / "x.txt").is_file()


@pytest.mark.parametrize(("options", "message"), [
    ({"caption_ext": ".md"}, ".caption (kohya's default) or .txt"),
    ({"caption_ext": ".TXT"}, ".caption (kohya's default) or .txt"),
    ({"repeats": 0}, "repeats must be 1 or more"),
    ({"rename_prefix": ".hidden"}, "cannot start with '.'"),
])
def test_options_kohya_cannot_use_are_refused(tmp_path: Path, options: dict[str, object],
                                              message: str) -> None:
    folder = tmp_path / "ds"
    with make_project(folder, ["x.jpg"]) as project, pytest.raises(InputError) as info:
        export(project, **options)
    assert message in str(info.value)
    assert not (folder / f"{TRIGGER}_kohya").exists()


def test_dataset_toml_points_at_the_image_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    out = tmp_path / "it's here"  # a quote in the path: the TOML string must escape it
    with make_project(folder, ["x.jpg", "y.png"]) as project:
        result = export(project, out, repeats=3)
        preview = plan_export(project, get_format("kohya"), ExportOptions(repeats=3))
    config = tomllib.loads((out / "dataset.toml").read_text(encoding="utf-8"))
    assert config["general"]["enable_bucket"] is True
    (dataset,) = config["datasets"]
    (subset,) = dataset["subsets"]
    assert subset == {"image_dir": str(out / "img" / f"3_{TRIGGER}"), "num_repeats": 3,
                      "class_tokens": TRIGGER, "caption_extension": ".caption"}
    assert Path(subset["image_dir"]).is_absolute()
    # Read the way --dataset_config makes kohya read it: that folder, those repeats.
    images = [KohyaImage(path, subset["num_repeats"], subset["class_tokens"],
                         kohya_caption(path, subset["caption_extension"]) or "", True)
              for path in kohya_images(Path(subset["image_dir"]))]
    assert [(i.path.name, i.repeats, i.caption) for i in images] == [
        ("x.jpg", 3, f"photo of {TRIGGER} caption of x.jpg"),
        ("y.png", 3, f"photo of {TRIGGER} caption of y.png")]
    assert result.path == out
    # Without a target (the Export dialog's preview) the folder is named relative to it.
    shown = tomllib.loads(preview.extra_files["dataset.toml"].decode("utf-8"))
    assert shown["datasets"][0]["subsets"][0]["image_dir"] == f"img/3_{TRIGGER}"


def test_meta_cap_json_holds_every_caption_by_absolute_path(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with make_project(folder, ["x.jpg", "y.png"]) as project:
        make_photo(folder / "bare.jpg", seed=9)
        project.add_scanned(scan_folder(folder))  # no caption
        result = export(project, allow_uncaptioned=True)
    subset = result.path / "img" / f"10_{TRIGGER}"
    metadata = json.loads((result.path / "meta_cap.json").read_text(encoding="utf-8"))
    assert metadata == {
        str(subset / "x.jpg"): {"caption": f"photo of {TRIGGER} caption of x.jpg"},
        str(subset / "y.png"): {"caption": f"photo of {TRIGGER} caption of y.png"},
    }
    assert all(Path(key).is_file() for key in metadata)
    # The uncaptioned image has no (empty) caption file: kohya trains it on the class tokens.
    found = by_name(read_kohya(result.path / "img"))
    assert not (subset / "bare.caption").exists()
    assert (found["bare.jpg"].caption, found["bare.jpg"].has_caption_file) == (TRIGGER, False)


def test_images_too_small_for_kohya_buckets_stop_the_export(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with make_project(folder, ["big.jpg"]) as project:
        make_photo(folder / "tiny.png", size=(200, 63), seed=5)
        make_photo(folder / "small.png", size=(64, 64), seed=6)
        project.add_scanned(scan_folder(folder))
        for rec in project.images():
            project.edit_caption(rec.id, f"caption of {rec.path}")
        with pytest.raises(UntrainableImagesError) as info:
            export(project)
        assert info.value.images == ["tiny.png"]
        assert "--bucket_no_upscale" in str(info.value)
        result = export(project, skip_untrainable=True)
    assert sorted(by_name(read_kohya(result.path / "img"))) == ["big.jpg", "small.png"]
    assert [change.path for change in result.untrainable] == ["tiny.png"]


@pytest.mark.slow
def test_cli_exports_kohya_from_real_photos(tmp_path: Path, server: FakeGeminiServer) -> None:
    photos = tmp_path / "hall"
    for i in range(1, 4):
        make_photo(photos / f"IMG_{i:04d}.JPG", size=(800, 600), seed=i, fmt="JPEG")
    make_photo(photos / "side.jpg", size=(800, 600), seed=7, orientation=6)
    make_photo(photos / "detail" / "door.png", size=(600, 800), seed=42)
    env = {k: v for k, v in os.environ.items()
           if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")}
    env.update(PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen", GEMINI_API_KEY="test-key",
               GOOGLE_GEMINI_BASE_URL=server.base_url,
               PYTHON_KEYRING_BACKEND="tests.fakes.memory_keyring.MemoryKeyring")

    def loracap(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "loracap", *map(str, args)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=120)

    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    project = photos / "hall.loraproj"
    captioned = loracap("caption", project)
    assert captioned.returncode == 0, captioned.stderr
    result = loracap("export", project, "--format", "kohya", "--repeats", "4",
                     "--caption-ext", ".txt")
    assert result.returncode == 0, result.stderr
    out = photos / "hall_kohya"
    assert result.stdout.strip() == str(out)
    assert "Exported 5 image(s), 5 caption(s)" in result.stderr
    assert "converted side.jpg -> side.jpg (EXIF orientation" in result.stderr

    found = by_name(read_kohya(out / "img", ".txt"))
    assert sorted(found) == ["IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg", "door.png",
                             "side.jpg"]
    with Project.open(project, read_only=True) as proj:
        stored = {rec.file_name: rec.caption for rec in proj.images()}
    for image in found.values():
        assert image.repeats == 4 and image.class_tokens == "hall" and image.has_caption_file
        assert image.caption.startswith("photo of hall ")
    assert found["door.png"].caption.endswith(stored["door.png"].body)  # type: ignore[union-attr]
    assert kohya_pixels(found["side.jpg"].path).size == (600, 800)  # upright
    config = tomllib.loads((out / "dataset.toml").read_text(encoding="utf-8"))
    assert config["datasets"][0]["subsets"][0]["image_dir"] == str(out / "img" / "4_hall")
    metadata = json.loads((out / "meta_cap.json").read_text(encoding="utf-8"))
    assert {Path(key).name: value["caption"] for key, value in metadata.items()} == {
        name: image.caption for name, image in found.items()}

    again = loracap("export", project, "--format", "kohya", "--caption-ext", ".md", "--force")
    assert again.returncode == 2 and ".caption (kohya's default) or .txt" in again.stderr
