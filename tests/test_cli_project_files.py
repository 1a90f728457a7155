"""The command line on folders and project files that used to break it (issue 11, items 2, 3
and 7): file names that are not UTF-8, a disk that fills up during ``new``, a project file
edited to read or write outside its folder, and a damaged one. Run as a user runs it."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.photos import make_photo, make_photo_folder
from tests.test_cli import REPO, cli_env, loracap

pytestmark = pytest.mark.slow


def project_files(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if ".loraproj" in name)


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="file names that are not UTF-8 need Linux")
def test_new_caption_info_export_on_names_that_are_not_utf8(
        tmp_path: Path, server: FakeGeminiServer) -> None:
    folder = tmp_path / "cafe"
    make_photo_folder(folder, 1, size=(800, 600))
    raw = os.fsencode(folder)
    make_photo(folder / "one.jpg", size=(800, 600), seed=3)
    os.rename(raw + b"/one.jpg", raw + b"/caf\xe9.jpg")
    os.mkdir(raw + b"/d\xffr")
    make_photo(folder / "two.png", size=(800, 600), seed=4)
    os.rename(raw + b"/two.png", raw + b"/d\xffr/b\xe0d.png")
    with open(raw + b"/caf\xe9.txt", "wb") as sidecar:
        sidecar.write(b"photo of cafe a marble table\n")
    project = folder / "cafe.loraproj"

    made = loracap("new", folder, "--trigger", "cafe")
    assert made.returncode == 0, made.stderr
    assert "3 image(s), 0 invalid, 1 caption(s) imported" in made.stdout
    assert "Traceback" not in made.stderr

    captioned = loracap("caption", project, server=server)
    assert captioned.returncode == 0, captioned.stderr
    assert "Captioned 2 of 2" in captioned.stderr
    assert re.search(r"^d\\+xffr/b\\+xe0d\.png\tphoto of cafe ", captioned.stdout, re.M)

    listed = loracap("info", project, "--list", "--json")
    assert listed.returncode == 0, listed.stderr
    files = {entry["path"]: entry["provenance"] for entry in json.loads(listed.stdout)["files"]}
    assert files == {"IMG_0001.jpg": "generated", "caf\\xe9.jpg": "imported",
                     "d\\xffr/b\\xe0d.png": "generated"}
    text = loracap("info", project, "--list")
    assert text.returncode == 0, text.stderr
    assert re.search(r"^caf\\+xe9\.jpg\timported$", text.stdout, re.M)

    exported = loracap("export", project)
    assert exported.returncode == 0, exported.stderr
    assert re.search(r"renamed caf\\+xe9\.jpg -> caf_xe9\.jpg", exported.stderr)
    with zipfile.ZipFile(folder / "cafe_training.zip") as archive:
        assert sorted(archive.namelist()) == [
            "IMG_0001.jpg", "IMG_0001.txt", "b_xe0d.png", "b_xe0d.txt", "caf_xe9.jpg",
            "caf_xe9.txt", "metadata.txt"]
        assert archive.read("caf_xe9.txt") == b"photo of cafe a marble table"
        with open(raw + b"/caf\xe9.jpg", "rb") as original:
            assert archive.read("caf_xe9.jpg") == original.read()


def test_a_disk_that_fills_up_during_new_leaves_nothing_to_block_the_retry(
        tmp_path: Path, server: FakeGeminiServer) -> None:
    folder = tmp_path / "hall"
    first = make_photo(folder / "IMG_000.jpg", size=(64, 48), seed=1)
    for number in range(120):
        if number:
            shutil.copy(first, folder / f"IMG_{number:03d}.jpg")
        (folder / f"IMG_{number:03d}.txt").write_text(f"word{number} " * 700)
    limit = 256 * 1024  # the images fit; their 120 imported captions do not

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = subprocess.run(
        [sys.executable, "-m", "loracap", "new", str(folder), "--trigger", "hall"], cwd=REPO,
        env=cli_env(None), capture_output=True, text=True, timeout=120, preexec_fn=small_disk)
    assert full.returncode == 2, full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("loracap:")]
    assert errors == [
        f"loracap: error: Cannot create the project file {folder / 'hall.loraproj'}: disk I/O "
        "error. No project file was left behind; check that the disk has free space and the "
        "folder can be written, then try again."]
    assert "Traceback" not in full.stderr
    assert project_files(folder) == []

    again = loracap("run", folder, "--trigger", "hall", "--rpm", "1000", "--skip-untrainable",
                    server=server)
    assert f"Created {folder / 'hall.loraproj'}: 120 image(s), 120 caption(s) imported" in (
        again.stderr)
    assert "Nothing to caption" in again.stderr and "already exists" not in again.stderr


def _project_with_outside_rows(tmp_path: Path) -> Path:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 2, size=(800, 600))
    made = loracap("new", folder, "--trigger", "hall")
    assert made.returncode == 0, made.stderr
    make_photo(tmp_path / "secret_notes.jpg", size=(800, 600), seed=7)
    conn = sqlite3.connect(folder / "hall.loraproj")
    conn.execute("INSERT INTO images (path, file_size, mtime, width, height, format, valid, "
                 "invalid_reason, added_at, review, note) VALUES ('../secret_notes.jpg', 1000, "
                 "0, 800, 600, 'JPEG', 1, '', '2024-01-01', 'unreviewed', '')")
    for (image_id,) in conn.execute("SELECT id FROM images").fetchall():
        conn.execute("INSERT INTO captions (image_id, body, provenance, created_at, "
                     "updated_at) VALUES (?, 'a room', 'manual', '2024-01-01', '2024-01-01')",
                     (image_id,))
    conn.commit()
    conn.close()
    return folder / "hall.loraproj"


def test_export_leaves_images_outside_the_folder_alone_without_allow_outside(
        tmp_path: Path) -> None:
    project = _project_with_outside_rows(tmp_path)
    refused = loracap("export", project)
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "loracap: error: 1 image(s) are outside the project folder:\n  ../secret_notes.jpg\n")
    assert "--allow-outside" in refused.stderr
    assert not (project.parent / "hall_training.zip").exists()
    listed = loracap("info", project, "--list", "--json")
    assert "../secret_notes.jpg" in [f["path"] for f in json.loads(listed.stdout)["files"]]

    allowed = loracap("export", project, "--allow-outside")
    assert allowed.returncode == 0, allowed.stderr
    with zipfile.ZipFile(project.parent / "hall_training.zip") as archive:
        assert "secret_notes.jpg" in archive.namelist()

    (tmp_path / "secret_notes.jpg").write_bytes(b"my bank PIN is 4711")
    never = loracap("export", project, "--allow-outside", "--force", "--format", "folder")
    assert never.returncode == 2
    assert "1 file(s) outside the project folder are not usable images" in never.stderr
    assert not (project.parent / "hall_folder").exists()


def test_a_trigger_word_edited_to_leave_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "home" / "hall"
    make_photo_folder(folder, 2, size=(800, 600))
    assert loracap("new", folder, "--trigger", "hall").returncode == 0
    conn = sqlite3.connect(folder / "hall.loraproj")
    conn.execute("UPDATE project SET trigger = '../../x/ESCAPED'")
    conn.commit()
    conn.close()
    for command in (("export", "--allow-uncaptioned"), ("info",), ("caption",)):
        result = loracap(command[0], folder / "hall.loraproj", *command[1:])
        assert result.returncode == 2
        assert result.stderr.startswith(
            'loracap: error: hall.loraproj is damaged: its trigger word "../../x/ESCAPED" is '
            "not a valid trigger word")
        assert result.stderr.count("\n") == 1
    assert [path for path in tmp_path.rglob("*") if "ESCAPED" in path.name] == []
    assert sorted(os.listdir(folder)) == ["IMG_0001.jpg", "IMG_0002.jpg", "hall.loraproj"]


def test_a_damaged_project_is_one_line_and_makes_no_copies(tmp_path: Path) -> None:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 1, size=(800, 600))
    path = folder / "hall.loraproj"
    conn = sqlite3.connect(path)  # the right application id, nothing else
    conn.execute("PRAGMA application_id = 1282363969")
    conn.execute("CREATE TABLE junk (x)")
    conn.close()
    for _attempt in range(3):
        result = loracap("caption", path)
        assert result.returncode == 2
        assert result.stderr == (
            "loracap: error: hall.loraproj is damaged: it has no project format version "
            "(user_version 0). LoRACap did not open it and changed nothing; use a backup copy, "
            "or start a new project from the photo folder.\n")
    assert project_files(folder) == ["hall.loraproj"]
