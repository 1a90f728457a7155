"""``loracap run``: the whole job in one command, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from loracap.core.project import Project
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.photos import make_photo, make_photo_folder
from tests.test_cli import loracap

pytestmark = pytest.mark.slow


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "ide_main_hall"
    make_photo_folder(folder, 4, size=(400, 300))
    make_photo(folder / "detail" / "door.png", size=(300, 400), seed=42)
    return folder


def zip_captions(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()
                if name.endswith(".txt") and name != "metadata.txt"}


def info(folder: Path, trigger: str = "hall") -> dict:
    result = loracap("info", folder / f"{trigger}.loraproj", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_run_twice_captions_once_and_replaces_its_own_export(
    photos: Path, server: FakeGeminiServer
) -> None:
    first = loracap("run", photos, "--trigger", "hall", server=server)
    assert first.returncode == 0, first.stderr
    zip_path = photos / "hall_training.zip"
    assert first.stdout.splitlines()[-1] == str(zip_path)
    assert len(first.stdout.splitlines()) == 6  # five captions, then the export
    assert f"Created {photos / 'hall.loraproj'}: 5 image(s)" in first.stderr
    assert "Captioned 5 of 5" in first.stderr and "Exported 5 image(s), 5 caption(s)" in first.stderr
    assert len(zip_captions(zip_path)) == 5

    with Project.open(photos / "hall.loraproj") as project:  # a hand edit between the runs
        door = next(rec for rec in project.images() if rec.file_name == "door.png")
        project.edit_caption(door.id, "oak door")
    second = loracap("run", photos, "--trigger", "hall", server=server)
    assert second.returncode == 0, second.stderr
    assert "Nothing to caption: every image has a caption." in second.stderr
    assert "replaced the previous export" in second.stderr
    assert second.stdout == f"{zip_path}\n"
    assert len(server.generate_requests) == 5  # nothing was captioned twice
    assert zip_captions(zip_path)["door.txt"] == "photo of hall oak door"
    assert sorted(p.name for p in photos.glob("*.loraproj")) == ["hall.loraproj"]


def test_run_again_adds_new_images_and_keeps_a_persons_captions(
    photos: Path, server: FakeGeminiServer
) -> None:
    (photos / "IMG_0001.txt").write_text("photo of hall my own words\n")
    assert loracap("run", photos, "--trigger", "hall", server=server).returncode == 0
    make_photo(photos / "IMG_0100.jpg", size=(400, 300), seed=100)
    again = loracap("run", photos, "--trigger", "hall", server=server)
    assert again.returncode == 0, again.stderr
    assert "1 new image(s) added" in again.stderr and "Captioned 1 of 1" in again.stderr
    captions = zip_captions(photos / "hall_training.zip")
    assert len(captions) == 6 and captions["IMG_0001.txt"] == "photo of hall my own words"
    assert info(photos)["provenance"] == {"generated": 5, "edited": 0, "manual": 0,
                                          "imported": 1}


def test_run_after_a_quota_stop_continues_where_it_stopped(
    photos: Path, server: FakeGeminiServer
) -> None:
    server.daily_limit = 2
    stopped = loracap("run", photos, "--trigger", "hall", "--workers", "1", server=server)
    assert stopped.returncode == 4, stopped.stderr
    assert stopped.stderr.count("The Gemini daily quota is used up") == 1
    assert ("3 image(s) not captioned yet. Nothing was exported. Finished captions are kept; "
            "run the same command again after midnight Pacific time") in stopped.stderr
    assert not (photos / "hall_training.zip").exists()
    data = info(photos)
    assert (data["captioned"], data["failed"]) == (2, 0)

    server.daily_limit = None  # the quota has reset
    resumed = loracap("run", photos, "--trigger", "hall", server=server)
    assert resumed.returncode == 0, resumed.stderr
    assert "Captioned 3 of 3" in resumed.stderr
    assert len(zip_captions(photos / "hall_training.zip")) == 5
    assert info(photos)["captioned"] == 5


def test_run_refuses_a_file_it_did_not_write_unless_forced(
    photos: Path, server: FakeGeminiServer
) -> None:
    zip_path = photos / "hall_training.zip"
    zip_path.write_bytes(b"someone else's zip")
    refused = loracap("run", photos, "--trigger", "hall", server=server)
    assert refused.returncode == 2
    assert (f"loracap: error: {zip_path} already exists and is not an export LoRACap wrote for "
            "this project (or it was changed since). Add --force to replace it, or choose "
            "another file with --out.") in refused.stderr
    assert zip_path.read_bytes() == b"someone else's zip"
    assert info(photos)["captioned"] == 5  # the captions are kept for the next run

    forced = loracap("run", photos, "--trigger", "hall", "--force", server=server)
    assert forced.returncode == 0, forced.stderr
    assert len(zip_captions(zip_path)) == 5
    # From now on the file is the project's own: replaced without --force...
    again = loracap("run", photos, "--trigger", "hall", server=server)
    assert again.returncode == 0 and "replaced the previous export" in again.stderr
    # ...until someone changes it.
    with zip_path.open("ab") as handle:
        handle.write(b"\0")
    changed = loracap("run", photos, "--trigger", "hall", server=server)
    assert changed.returncode == 2 and "--force" in changed.stderr
    assert len(server.generate_requests) == 5


def test_run_replaces_an_export_written_by_loracap_export(
    photos: Path, server: FakeGeminiServer
) -> None:
    assert loracap("run", photos, "--trigger", "hall", "--format", "metadata",
                   server=server).returncode == 0
    exported = loracap("export", photos / "hall.loraproj", server=server)
    assert exported.returncode == 0, exported.stderr
    again = loracap("run", photos, "--trigger", "hall", server=server)
    assert again.returncode == 0, again.stderr
    assert "replaced the previous export" in again.stderr


def test_run_with_failed_images_exports_nothing_and_retries_them_next_time(
    photos: Path, server: FakeGeminiServer
) -> None:
    server.queue_replies(Reply.blocked("SAFETY"))
    failed = loracap("run", photos, "--trigger", "hall", "--workers", "1", server=server)
    assert failed.returncode == 1
    assert "  failed: " in failed.stderr and "SAFETY" in failed.stderr
    assert ("loracap: 1 image(s) could not be captioned, so nothing was exported. Run the same "
            "command again to retry them") in failed.stderr
    assert not (photos / "hall_training.zip").exists()
    retried = loracap("run", photos, "--trigger", "hall", server=server)
    assert retried.returncode == 0, retried.stderr
    assert "Captioned 1 of 1" in retried.stderr
    assert len(zip_captions(photos / "hall_training.zip")) == 5


def test_run_stopped_by_a_bad_key_says_what_to_do(photos: Path,
                                                 server: FakeGeminiServer) -> None:
    bad = loracap("run", photos, "--trigger", "hall", server=server, key="bad-key")
    assert bad.returncode == 3
    assert bad.stderr.count("Gemini refused the API key") == 1
    assert ("Nothing was exported. Set a valid Gemini API key with `loracap key set`"
            in bad.stderr)
    assert (info(photos)["captioned"], info(photos)["failed"]) == (0, 0)


def test_run_names_the_trigger_of_the_project_already_in_the_folder(
    photos: Path, server: FakeGeminiServer
) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    other = loracap("run", photos, "--trigger", "room", server=server)
    assert other.returncode == 2
    assert (f"loracap: error: {photos} already holds the project hall.loraproj (trigger word "
            f"hall). To continue it: loracap run {photos} --trigger hall") in other.stderr
    assert not (photos / "room.loraproj").exists() and server.generate_requests == []


def test_run_refuses_a_profile_or_prompt_that_contradicts_the_project(
    photos: Path, server: FakeGeminiServer
) -> None:
    assert loracap("new", photos, "--trigger", "hall").returncode == 0
    person = loracap("run", photos, "--trigger", "hall", "--profile", "person", server=server)
    assert person.returncode == 2
    assert ("hall.loraproj uses the space profile, not person; its captions were made with it. "
            "Leave out --profile to continue it") in person.stderr
    prompt = loracap("run", photos, "--trigger", "hall", "--prompt", "tags only", server=server)
    assert prompt.returncode == 2 and "Leave out --prompt" in prompt.stderr
    same = loracap("run", photos, "--trigger", "hall", "--profile", "space", server=server)
    assert same.returncode == 0, same.stderr
    assert server.generate_requests[0].api_key == "test-key"

