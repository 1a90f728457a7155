"""``loracap check``, run as a user runs it: ``python -m loracap check`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from loracap.core.project import Project
from loracap.core.scan import scan_folder
from tests.fakes.photos import make_photo, make_photo_folder

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def loracap(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")}
    env["PYTHON_KEYRING_BACKEND"] = "tests.fakes.memory_keyring.MemoryKeyring"
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "loracap", *map(str, args)], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 4, size=(800, 600))
    make_photo(folder / "tiny.jpg", size=(400, 300), seed=9)
    with Image.open(folder / "IMG_0001.jpg") as im:
        im.save(folder / "IMG_0001_copy.jpg", quality=50)
    path = folder / "hall.loraproj"
    with Project.create(path, trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
        ids = {rec.path: rec.id for rec in project.images()}
        project.edit_caption(ids["IMG_0001.jpg"], "a lobby with a red sofa")
        project.edit_caption(ids["IMG_0001_copy.jpg"], "a lobby with a red sofa")
        project.edit_caption(ids["IMG_0002.jpg"], " ".join(["tall"] * 90))
        project.edit_caption(ids["IMG_0003.jpg"], "photo of hall, a corridor")
        project.edit_caption(ids["IMG_0004.jpg"], "a lecture room")
        project.edit_caption(ids["tiny.jpg"], "a small door")
    return path


EXPECTED = [
    ("IMG_0001.jpg", "duplicate"),
    ("IMG_0001.jpg", "near_duplicate"),
    ("IMG_0001_copy.jpg", "duplicate"),
    ("IMG_0001_copy.jpg", "near_duplicate"),
    ("IMG_0002.jpg", "too_long"),
    ("IMG_0003.jpg", "prefix_twice"),
    ("tiny.jpg", "small"),
]


def test_check_prints_one_line_per_finding(project_path: Path) -> None:
    result = loracap("check", project_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert all(len(row) == 3 for row in rows)
    assert [(path, kind) for path, kind, _ in rows] == EXPECTED
    assert "93 CLIP tokens" in rows[4][2]
    assert result.stderr.strip() == (
        "7 findings in 6 images: 1 doubled prefix, 2 duplicates, 1 too long, 1 small image, "
        "2 near-duplicates."
    )


def test_check_json_and_no_near_duplicates(project_path: Path) -> None:
    result = loracap("check", project_path, "--json", "--no-near-duplicates")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(item["path"], item["kind"]) for item in data] == [
        pair for pair in EXPECTED if pair[1] != "near_duplicate"]
    assert set(data[0]) == {"path", "kind", "message", "image_id"}
    assert "IMG_0001_copy.jpg" in data[0]["message"]
    assert result.stderr.startswith("5 findings in 6 images:")


def test_check_clean_project_and_bad_input(tmp_path: Path) -> None:
    folder = tmp_path / "clean"
    make_photo_folder(folder, 2, size=(800, 600))
    path = folder / "clean.loraproj"
    with Project.create(path, trigger="clean") as project:
        project.add_scanned(scan_folder(folder))
    result = loracap("check", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == "No problems found in 2 images."
    missing = loracap("check", tmp_path / "nope.loraproj")
    assert missing.returncode == 2 and "No project file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_tags_prints_the_tag_list_by_frequency(tmp_path: Path) -> None:
    folder = tmp_path / "cafe"
    make_photo_folder(folder, 3)
    path = folder / "cafe.loraproj"
    with Project.create(path, trigger="cafe") as project:
        project.add_scanned(scan_folder(folder))
        for rec, body in zip(project.images(), ["lamp, oak table", "lamp, rug", "lamp, rug, tiles"],
                             strict=True):
            project.edit_caption(rec.id, body)
    result = loracap("tags", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "lamp\nrug\noak table\ntiles\n"
    counted = loracap("tags", path, "--counts")
    assert counted.stdout.splitlines()[:2] == ["lamp\t3", "rug\t2"]


def test_check_reports_a_foreign_prefix(tmp_path: Path) -> None:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 2, size=(800, 600))
    (folder / "IMG_0001.txt").write_text("Photo of Other_Name, a lobby", encoding="utf-8")
    (folder / "IMG_0002.txt").write_text("a corridor", encoding="utf-8")
    path = folder / "hall.loraproj"
    with Project.create(path, trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
    result = loracap("check", path, "--json", "--no-near-duplicates")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(item["path"], item["kind"]) for item in data] == [("IMG_0001.jpg", "prefix_other")]
    assert data[0]["message"] == (
        'The caption starts with "Photo of Other_Name": another trigger word\'s prefix; the '
        'export would read "photo of hall Photo of Other_Name …".')
    assert result.stderr.strip() == "1 finding in 2 images: 1 foreign prefix."
    text = loracap("check", path, "--no-near-duplicates")
    assert text.stdout.startswith("IMG_0001.jpg\tprefix_other\tThe caption starts with ")
