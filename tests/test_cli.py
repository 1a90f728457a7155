"""The command line, run as a user runs it: ``python -m loracap`` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from loracap.core.exports.writer import zip_fingerprint
from loracap.core.project import Project
from loracap.core.schema import Review
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.photos import make_photo, make_photo_folder

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def cli_env(server: FakeGeminiServer | None, key: str | None = "test-key") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")}
    env["PYTHON_KEYRING_BACKEND"] = "tests.fakes.memory_keyring.MemoryKeyring"
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONPATH"] = str(REPO)
    if server is not None:
        env["GOOGLE_GEMINI_BASE_URL"] = server.base_url
    if key is not None:
        env["GEMINI_API_KEY"] = key
    return env


def loracap(*args: str | Path, server: FakeGeminiServer | None = None,
            key: str | None = "test-key") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loracap", *map(str, args)], cwd=REPO, env=cli_env(server, key),
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "ide_main_hall"
    make_photo_folder(folder, 5, size=(800, 600))
    make_photo(folder / "detail" / "door.png", size=(600, 800), seed=42)
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def test_new_caption_export_end_to_end(photos: Path, server: FakeGeminiServer) -> None:
    made = loracap("new", photos, "--trigger", "ide_main_hall")
    assert made.returncode == 0, made.stderr
    project = photos / "ide_main_hall.loraproj"
    assert str(project) in made.stdout
    assert "6 image(s), 1 invalid" in made.stdout and "empty.jpg: empty file" in made.stdout

    captioned = loracap("caption", project, server=server)
    assert captioned.returncode == 0, captioned.stderr
    lines = captioned.stdout.splitlines()
    assert len(lines) == 6
    assert all("\tphoto of ide_main_hall " in line for line in lines)
    assert "Captioned 6 of 6" in captioned.stderr
    assert "Traceback" not in captioned.stderr

    info = loracap("info", project, "--json")
    data = json.loads(info.stdout)
    assert {k: data[k] for k in ("images", "invalid", "captioned", "failed", "trigger")} == {
        "images": 6, "invalid": 1, "captioned": 6, "failed": 0, "trigger": "ide_main_hall"}
    assert data["provenance"] == {"generated": 6, "edited": 0, "manual": 0, "imported": 0}

    exported = loracap("export", project)
    assert exported.returncode == 0, exported.stderr
    zip_path = photos / "ide_main_hall_training.zip"
    assert exported.stdout.strip() == str(zip_path)
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        assert "door.png" in names and "door.txt" in names and "empty.jpg" not in names
        assert archive.read("IMG_0001.jpg") == (photos / "IMG_0001.jpg").read_bytes()
        metadata = archive.read("metadata.txt").decode("utf-8").splitlines()
        assert len(metadata) == 6 and all(m.startswith("photo of ide_main_hall ") for m in metadata)
        assert archive.read("IMG_0001.txt").decode() == metadata[1]  # door.png sorts first
    assert sorted(p.name for p in photos.glob("*.loraproj*")) == ["ide_main_hall.loraproj"]

    again = loracap("export", project)
    assert again.returncode == 2 and "--force" in again.stderr


def test_bad_trigger_word_is_rejected_with_the_fixed_form(photos: Path) -> None:
    result = loracap("new", photos, "--trigger", "IDE Main-Hall")
    assert result.returncode == 2
    assert "ide_main_hall" in result.stderr and "Traceback" not in result.stderr
    assert not list(photos.glob("*.loraproj"))


def test_missing_key_says_where_to_get_one(photos: Path) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    result = loracap("caption", photos / "hall.loraproj", key=None)
    assert result.returncode == 3
    assert "aistudio.google.com" in result.stderr and "GEMINI_API_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


def test_invalid_key_exits_3_and_daily_quota_exits_4(photos: Path,
                                                     server: FakeGeminiServer) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    project = photos / "hall.loraproj"
    bad = loracap("caption", project, server=server, key="bad-key")
    assert bad.returncode == 3 and "API key" in bad.stderr
    server.daily_limit = 2
    quota = loracap("caption", project, "--workers", "1", server=server)
    assert quota.returncode == 4
    assert ("run the same command again after midnight Pacific time, when the daily quota "
            "resets, or use a key with a paid plan") in quota.stderr
    assert len(quota.stdout.splitlines()) == 2  # the two answered captions were reported...
    with Project.open(project, read_only=True) as proj:
        assert proj.stats().captioned == 2  # ...and kept


def test_an_invalid_key_stops_once_with_the_right_advice(photos: Path,
                                                        server: FakeGeminiServer) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    project = photos / "hall.loraproj"
    bad = loracap("caption", project, "--workers", "3", server=server, key="bad-key")
    assert bad.returncode == 3
    assert bad.stderr.count("Gemini refused the API key") == 1, bad.stderr
    assert "WARNING" not in bad.stderr and "Traceback" not in bad.stderr
    assert ("6 image(s) not captioned yet. Set a valid Gemini API key with `loracap key set` "
            "(or in the GEMINI_API_KEY environment variable), then run the same command "
            "again.") in bad.stderr
    assert "failed:" not in bad.stderr
    info = json.loads(loracap("info", project, "--json").stdout)
    assert (info["captioned"], info["failed"]) == (0, 0)
    listed = loracap("info", project, "--list").stdout
    assert "failed" not in listed.replace("0 failed", "") and listed.count("uncaptioned") == 6
    retry = loracap("caption", project, "--only", "failed", server=server)
    assert retry.returncode == 0 and "Nothing to caption" in retry.stderr


def test_failed_images_are_named_and_the_run_is_still_done(photos: Path,
                                                           server: FakeGeminiServer) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    server.queue_replies(Reply.blocked("SAFETY"))
    result = loracap("caption", photos / "hall.loraproj", "--workers", "1", server=server)
    assert result.returncode == 0
    assert "1 failed" in result.stderr and "SAFETY" in result.stderr
    assert "--only failed" in result.stderr
    retry = loracap("caption", photos / "hall.loraproj", "--only", "failed", server=server)
    assert retry.returncode == 0 and len(retry.stdout.splitlines()) == 1


def test_export_lists_uncaptioned_images(photos: Path) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    result = loracap("export", photos / "hall.loraproj")
    assert result.returncode == 2
    assert "IMG_0001.jpg" in result.stderr and "--allow-uncaptioned" in result.stderr
    allowed = loracap("export", photos / "hall.loraproj", "--allow-uncaptioned")
    assert allowed.returncode == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert loracap("caption").returncode == 2
    missing = loracap("info", tmp_path / "nope.loraproj")
    assert missing.returncode == 2 and "No project file" in missing.stderr
    log_file = Path(os.environ["LORACAP_HOME"]) / "logs" / "loracap.log"
    assert "No project file" in log_file.read_text(encoding="utf-8")  # the log records it
    assert loracap("new", tmp_path / "nowhere", "--trigger", "x").returncode == 2


def test_killed_mid_batch_loses_nothing_reported_done(photos: Path) -> None:
    make_photo_folder(photos / "more", 10, size=(320, 240))
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    project = photos / "hall.loraproj"
    with FakeGeminiServer(latency_s=0.25) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loracap", "caption", str(project), "--workers", "2",
             "--rpm", "1000"],
            cwd=REPO, env=cli_env(server), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )
        reported: list[str] = []
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while len(reported) < 4 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            reported.append(line.split("\t", 1)[0])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert len(reported) == 4
    with Project.open(project) as proj:  # the dead process's lock is taken over
        stored = {rec.path for rec in proj.images() if rec.has_caption}
        assert set(reported) <= stored
        assert proj.stats().captioned < 16  # it really was killed mid-batch
    assert sorted(p.name for p in photos.glob("hall.loraproj*")) == ["hall.loraproj"]


def test_export_by_review_mark(photos: Path) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    project = photos / "hall.loraproj"
    with Project.open(project) as proj:
        for rec in proj.images():
            if rec.valid:
                proj.edit_caption(rec.id, f"caption {rec.file_name}")
        first = next(rec for rec in proj.images() if rec.path == "IMG_0001.jpg")
        proj.set_review(first.id, review=Review.APPROVED)
    result = loracap("export", project, "--only-approved")
    assert result.returncode == 0, result.stderr
    assert "5 image(s) left out by their review mark" in result.stderr
    with zipfile.ZipFile(photos / "hall_training.zip") as archive:
        assert sorted(archive.namelist()) == ["IMG_0001.jpg", "IMG_0001.txt", "metadata.txt"]
    both = loracap("export", project, "--only-approved", "--skip-rejected", "--force")
    assert both.returncode == 2


def test_the_progress_line_says_when_it_waits_for_the_rate_limit(photos: Path,
                                                                server: FakeGeminiServer) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    server.queue_replies(Reply.rate_limited(retry_delay_s=3))  # "retry in 3 s" on the first
    result = loracap("caption", photos / "hall.loraproj", "--workers", "1", server=server)
    assert result.returncode == 0, result.stderr
    waits = [line for line in result.stderr.splitlines() if "waiting" in line]
    # Not a terminal: one line when the wait starts (a terminal gets the countdown in place).
    assert len(waits) == 1, result.stderr
    assert re.fullmatch(r"Captioning 0 of 6 · waiting for the rate limit · next request in "
                        r"3 s · about \d+ s left", waits[0]), waits[0]
    assert "Captioned 6 of 6" in result.stderr and "WARNING" not in result.stderr


@pytest.mark.parametrize("command", ["new", "run"])
def test_new_and_run_refuse_a_folder_without_usable_photos(tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = loracap(command, empty, "--trigger", "hall")
    assert result.returncode == 2
    assert result.stderr == (f"loracap: error: {empty}: No photos in this folder (JPEG, PNG, "
                             "WebP or BMP).\n")
    assert list(empty.iterdir()) == []
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"")
    result = loracap(command, broken, "--trigger", "hall")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "  a.jpg: empty file (0 bytes)",
        f"loracap: error: {broken}: No usable photos in this folder (1 invalid).",
    ]
    assert not list(broken.glob("*.loraproj"))


def _caption_by_hand(project: Path, reject: str = "") -> None:
    with Project.open(project) as proj:
        for rec in proj.images():
            if rec.valid:
                proj.edit_caption(rec.id, f"caption {rec.file_name}")
                if rec.file_name == reject:
                    proj.set_review(rec.id, review=Review.REJECTED)


def test_export_leaves_rejected_images_out_by_default(photos: Path) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    project = photos / "hall.loraproj"
    _caption_by_hand(project, reject="IMG_0002.jpg")
    result = loracap("export", project)
    assert result.returncode == 0, result.stderr
    assert "  1 rejected image(s) left out; --include-rejected exports them.\n" in result.stderr
    with zipfile.ZipFile(photos / "hall_training.zip") as archive:
        names = archive.namelist()
    assert "IMG_0001.jpg" in names and "IMG_0002.jpg" not in names
    included = loracap("export", project, "--include-rejected", "--force")
    assert included.returncode == 0 and "left out" not in included.stderr
    with zipfile.ZipFile(photos / "hall_training.zip") as archive:
        assert "IMG_0002.jpg" in archive.namelist()
    both = loracap("export", project, "--include-rejected", "--skip-rejected", "--force")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_export_is_recorded_and_still_works_while_the_project_is_open_elsewhere(
    photos: Path,
) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    project = photos / "hall.loraproj"
    _caption_by_hand(project)
    zip_path = photos / "hall_training.zip"
    with Project.open(project) as held:  # as the window holds it
        result = loracap("export", project)
        assert result.returncode == 0, result.stderr
        assert zipfile.ZipFile(zip_path).testzip() is None
        assert held.exports() == []  # read-only: nothing recorded
    result = loracap("export", project, "--force")
    assert result.returncode == 0, result.stderr
    with Project.open(project, read_only=True) as proj:
        recorded = proj.exports()
    assert [(r.path, r.format, r.size) for r in recorded] == [
        ("hall_training.zip", "replicate", zip_path.stat().st_size)]
    assert recorded[0].sha256 == zip_fingerprint(zip_path)
