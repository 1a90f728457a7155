"""Multi-person captions on the command line, as a user runs them (``python -m loracap``)
against the fake Gemini server: ``new --profile multi-person --aliases``, ``caption``, ``info
--list`` with the people found, and a tagger refused for the profile with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.photos import make_photo

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def loracap(*args: str | Path, server: FakeGeminiServer | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GEMINI_", "GOOGLE_", "OPENAI_", "ANTHROPIC_"))}
    env.update({"PYTHON_KEYRING_BACKEND": "tests.fakes.memory_keyring.MemoryKeyring",
                "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO),
                "GEMINI_API_KEY": "test-key"})
    if server is not None:
        env["GOOGLE_GEMINI_BASE_URL"] = server.base_url
    return subprocess.run([sys.executable, "-m", "loracap", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def test_multi_person_captions_end_to_end(tmp_path: Path, server: FakeGeminiServer) -> None:
    folder = tmp_path / "couple"
    make_photo(folder / "IMG_0001.jpg", size=(800, 600), seed=1)
    make_photo(folder / "IMG_0002.jpg", size=(800, 600), seed=2)
    made = loracap("new", folder, "--trigger", "couple", "--profile", "multi-person",
                   "--aliases", "ohwx_anna, ben")
    assert made.returncode == 0, made.stderr
    project = folder / "couple.loraproj"
    # The first image has the two default people; the second none.
    server.queue_replies(Reply.json({"people": [
        {"box_2d": [100, 80, 950, 420], "gender": "woman"},
        {"box_2d": [150, 560, 980, 900], "gender": "man"}]}))
    done = loracap("caption", project, "--workers", "1", "--json", server=server)
    assert done.returncode == 0, done.stderr
    captions = {json.loads(line)["path"]: json.loads(line)["caption"]
                for line in done.stdout.splitlines()}
    assert set(captions) == {"IMG_0001.jpg", "IMG_0002.jpg"}
    first = captions["IMG_0001.jpg"].splitlines()
    assert first[0].startswith("photo of couple ohwx_anna: ")
    assert first[1].startswith("ben: ") and first[2].startswith("Scene: ")
    listed = loracap("info", project, "--list")
    assert "IMG_0001.jpg\tgenerated (2 people)" in listed.stdout
    assert "IMG_0002.jpg\tgenerated (2 people)" in listed.stdout  # the default answer
    data = json.loads(loracap("info", project, "--list", "--json").stdout)
    assert {f["path"]: f["people"] for f in data["files"]} == {"IMG_0001.jpg": 2,
                                                               "IMG_0002.jpg": 2}
    bad = loracap("new", tmp_path / "couple", "--trigger", "other", "--profile",
                  "multi-person", "--aliases", "anna,,ben")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_no_person_found_is_said_in_the_list(tmp_path: Path, server: FakeGeminiServer) -> None:
    folder = tmp_path / "room"
    make_photo(folder / "IMG_0001.jpg", size=(640, 480))
    assert loracap("new", folder, "--trigger", "room", "--profile", "multi-person"
                   ).returncode == 0
    server.queue_replies(Reply.json({"people": []}))
    done = loracap("caption", folder / "room.loraproj", server=server)
    assert done.returncode == 0, done.stderr
    listed = loracap("info", folder / "room.loraproj", "--list")
    assert "IMG_0001.jpg\tgenerated (no person found)" in listed.stdout


def test_a_tagger_cannot_make_multi_person_captions(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from tests.fakes.tiny_tagger import write_tagger

    folder = tmp_path / "room"
    make_photo(folder / "IMG_0001.jpg", size=(640, 480))
    assert loracap("new", folder, "--trigger", "room", "--profile", "multi-person"
                   ).returncode == 0
    done = loracap("caption", folder / "room.loraproj", "--backend", "wd14", "--model-dir",
                   write_tagger(tmp_path / "tiny"))
    assert done.returncode == 1
    assert "Multi-person captions need a vision model" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_local_person_detector_from_the_command_line(tmp_path: Path,
                                                       server: FakeGeminiServer) -> None:
    pytest.importorskip("onnxruntime")
    from tests.fakes.tiny_detector import build_fixed, save

    folder = tmp_path / "duo"
    make_photo(folder / "IMG_0001.jpg", size=(640, 480))
    missing = loracap("new", folder, "--trigger", "duo", "--profile", "multi-person",
                      "--detector", tmp_path / "nope.onnx")
    assert missing.returncode == 2 and "is not a file" in missing.stderr
    assert not (folder / "duo.loraproj").exists()
    model = save(build_fixed([[16, 32, 20, 40, 0.9], [48, 32, 20, 40, 0.8]]),
                 tmp_path / "yolo.onnx")
    made = loracap("new", folder, "--trigger", "duo", "--profile", "multi-person",
                   "--detector", model)
    assert made.returncode == 0, made.stderr
    done = loracap("caption", folder / "duo.loraproj", "--workers", "1", server=server)
    assert done.returncode == 0, done.stderr
    assert len(server.generate_requests) == 3  # no whole image sent to find the people
    model.write_bytes(b"not a model")
    broken = loracap("caption", folder / "duo.loraproj", "--only", "all", server=server)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert len(server.generate_requests) == 3  # nothing sent with a broken detector


def test_the_estimate_of_a_multi_person_project(tmp_path: Path) -> None:
    folder = tmp_path / "team"
    for index in range(3):
        make_photo(folder / f"IMG_{index}.jpg", size=(640, 480), seed=index)
    assert loracap("new", folder, "--trigger", "team", "--profile", "multi-person"
                   ).returncode == 0
    estimate = loracap("caption", folder / "team.loraproj", "--estimate")
    assert estimate.returncode == 0, estimate.stderr
    assert "requests: 12" in estimate.stdout and "4.0 per image" in estimate.stdout
