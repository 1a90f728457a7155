"""Multi-person captions in exports, read as the trainers read them: one line joined with "; "
where the trainer reads one line (kohya's first line, Replicate's zip, OneTrainer's random line),
the lines kept in the Hugging Face layout (``datasets`` reads them back whole)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from loracap.core.prompts import Profile
from tests.core.test_export import captioned_project, export_project
from tests.core.test_export_hf import Loader, load_imagefolder  # noqa: F401
from tests.core.test_export_kohya import read_kohya

BODY = ("sksA: A young woman in a blue dress, smiling.\n"
        "sksB: A man in a black suit, arms crossed.\n"
        "Scene: Modern office with tall windows.")
JOINED = ("photo of team sksA: A young woman in a blue dress, smiling; "
          "sksB: A man in a black suit, arms crossed; Scene: Modern office with tall windows.")


def people_project(folder: Path):  # type: ignore[no-untyped-def]
    project = captioned_project(folder, ["IMG_0001.jpg"], trigger="team")
    project.update_settings(profile=Profile.MULTI_PERSON.value)
    [record] = project.images()
    project.store_generated(record.id, BODY, backend="gemini", model="m", prompt="p")
    return project


def test_one_line_formats_join_the_lines(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with people_project(folder) as project:
        replicate = export_project(project)
        kohya = export_project(project, "kohya")
        plain = export_project(project, "folder")
    with zipfile.ZipFile(replicate.path) as archive:
        assert archive.read("IMG_0001.txt").decode() == JOINED
    # Read by kohya sd-scripts' rules (its first line only): all of it is on that line.
    [image] = read_kohya(kohya.path / "img")
    assert image.caption == JOINED
    assert (plain.path / "IMG_0001.txt").read_text(encoding="utf-8").splitlines() == [JOINED]


def test_the_hugging_face_layout_keeps_the_lines(tmp_path: Path,
                                                 load_imagefolder: Loader) -> None:  # noqa: F811
    folder = tmp_path / "ds"
    with people_project(folder) as project:
        result = export_project(project, "hf")
    [row] = [json.loads(line) for line in
             (result.path / "train" / "metadata.jsonl").read_text().splitlines()]
    assert row["text"] == "photo of team " + BODY
    split = load_imagefolder(result.path)["train"]
    assert split["text"] == ["photo of team " + BODY]


def test_other_profiles_still_read_a_typed_line_break_as_a_space(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    with captioned_project(folder, ["IMG_0001.jpg"], trigger="team") as project:
        [record] = project.images()
        project.edit_caption(record.id, "glass doors,\nentrance area.")
        replicate = export_project(project)
    with zipfile.ZipFile(replicate.path) as archive:
        assert archive.read("IMG_0001.txt").decode() == (
            "photo of team glass doors, entrance area.")
