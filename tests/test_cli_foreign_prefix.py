"""``loracap new`` and ``run`` say how many imported captions carry another trigger word's
prefix (run as a user runs them: a subprocess); nothing is stripped."""

from __future__ import annotations

from pathlib import Path

import pytest

from loracap.core.project import Project
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.photos import make_photo_folder
from tests.test_cli import loracap

pytestmark = pytest.mark.slow

NOTE = ("2 imported captions start with another trigger word's prefix (photo of other_name); "
        "`loracap check` lists them, and Review > Check Dataset in the window can strip it.")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "ide_main_hall"
    make_photo_folder(folder, 3, size=(400, 300))
    (folder / "IMG_0001.txt").write_text("photo of other_name a hall", encoding="utf-8")
    (folder / "IMG_0002.txt").write_text("Photo of  other_name, a lobby", encoding="utf-8")
    (folder / "IMG_0003.txt").write_text("photo of hall a corridor", encoding="utf-8")
    return folder


def bodies(path: Path) -> list[str]:
    with Project.open(path) as project:
        return [rec.caption.body for rec in project.images() if rec.caption]


def test_new_counts_imported_foreign_prefixes(photos: Path) -> None:
    result = loracap("new", photos, "--trigger", "hall")
    assert result.returncode == 0, result.stderr
    assert NOTE in result.stderr.splitlines()
    assert bodies(photos / "hall.loraproj") == [  # imported as they are: nothing stripped
        "photo of other_name a hall", "Photo of  other_name, a lobby", "a corridor"]


def test_the_trigger_word_decides_which_prefix_is_foreign(photos: Path) -> None:
    result = loracap("new", photos, "--trigger", "other_name")
    assert result.returncode == 0, result.stderr
    assert ("1 imported caption starts with another trigger word's prefix (photo of hall); "
            in result.stderr)


def test_run_counts_imported_foreign_prefixes(photos: Path, server: FakeGeminiServer) -> None:
    result = loracap("run", photos, "--trigger", "hall", server=server)
    assert NOTE in result.stderr.splitlines(), result.stderr
    assert bodies(photos / "hall.loraproj") == [
        "photo of other_name a hall", "Photo of  other_name, a lobby", "a corridor"]
