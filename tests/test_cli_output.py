"""Machine-readable output of the command line with names that would break it: file names and
tags holding tabs, line breaks and backslashes (issue 11, item 10). Every tab-separated line is
one record whose fields :func:`tsv_unescape` turns back into the exact text; ``--json`` gives
the same lists as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.core.text import tsv_unescape
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.photos import make_photo

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="tabs and line breaks in file names"),
]

REPO = Path(__file__).resolve().parents[1]

#: File names a POSIX file system allows and a naive ``path<TAB>…`` line would break on.
NAMES = ["tab\there.jpg", "line\nbreak.jpg", "back\\slash.jpg", "plain.jpg"]


def loracap(*args: str | Path,
            server: FakeGeminiServer | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")}
    env.update(PYTHON_KEYRING_BACKEND="tests.fakes.memory_keyring.MemoryKeyring",
               QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO), GEMINI_API_KEY="test-key")
    if server is not None:
        env["GOOGLE_GEMINI_BASE_URL"] = server.base_url
    return subprocess.run([sys.executable, "-m", "loracap", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, encoding="utf-8",
                          timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "hall"
    for seed, name in enumerate(NAMES):
        make_photo(folder / name, size=(800, 600), seed=seed)
    path = folder / "hall.loraproj"
    with Project.create(path, trigger="hall") as proj:
        proj.add_scanned(scan_folder(folder))
    return path


def fields(line: str, count: int) -> list[str]:
    parts = line.split("\t")
    assert len(parts) == count, line
    return [tsv_unescape(part) for part in parts]


def test_caption_lines_escape_tabs_and_line_breaks(project: Path,
                                                   server: FakeGeminiServer) -> None:
    result = loracap("caption", project, "--workers", "1", server=server)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(NAMES)
    printed = dict(fields(line, 2) for line in lines)
    assert sorted(printed) == sorted(NAMES)
    assert "tab\\there.jpg\t" in result.stdout and "line\\nbreak.jpg\t" in result.stdout
    assert "back\\\\slash.jpg\t" in result.stdout
    with Project.open(project, read_only=True) as proj:
        for rec in proj.images():
            assert printed[rec.path] == f"photo of hall {rec.caption.body}"  # type: ignore[union-attr]


def test_caption_json_prints_one_object_per_caption(project: Path,
                                                    server: FakeGeminiServer) -> None:
    result = loracap("caption", project, "--json", server=server)
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(obj["path"] for obj in objects) == sorted(NAMES)
    assert all(set(obj) == {"path", "caption"} and obj["caption"].startswith("photo of hall ")
               for obj in objects)


def test_info_list_escapes_names_and_states(project: Path) -> None:
    with Project.open(project) as proj:
        for rec in proj.images():
            proj.edit_caption(rec.id, "a hall")
    result = loracap("info", project, "--list")
    assert result.returncode == 0, result.stderr
    listed = [line for line in result.stdout.splitlines() if not line.startswith(("hall:", "  "))]
    assert len(listed) == len(NAMES)
    assert sorted(fields(line, 2)[0] for line in listed) == sorted(NAMES)
    data = json.loads(loracap("info", project, "--list", "--json").stdout)
    assert sorted(item["path"] for item in data["files"]) == sorted(NAMES)


def test_check_lines_escape_the_path_and_the_message(project: Path) -> None:
    with Project.open(project) as proj:
        for rec in proj.images():
            proj.edit_caption(rec.id, "the same caption")  # every image: duplicate
    result = loracap("check", project, "--no-near-duplicates")
    assert result.returncode == 0, result.stderr
    rows = [fields(line, 3) for line in result.stdout.splitlines()]
    assert sorted(path for path, kind, _ in rows if kind == "duplicate") == sorted(NAMES)
    data = json.loads(loracap("check", project, "--no-near-duplicates", "--json").stdout)
    assert sorted(f["path"] for f in data if f["kind"] == "duplicate") == sorted(NAMES)


def test_tags_with_a_line_break_keep_tags_txt_one_tag_per_line(project: Path) -> None:
    with Project.open(project) as proj:
        for rec in proj.images():
            proj.edit_caption(rec.id, "wooden\ntable, chair\tleg, chair")
    plain = loracap("tags", project)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "chair\nchair leg\nwooden table\n"
    counts = loracap("tags", project, "--counts")
    assert counts.stdout == "chair\t4\nchair\\tleg\t4\nwooden\\ntable\t4\n"
    assert [fields(line, 2) for line in counts.stdout.splitlines()] == [
        ["chair", "4"], ["chair\tleg", "4"], ["wooden\ntable", "4"]]
    as_json = loracap("tags", project, "--json")
    assert json.loads(as_json.stdout) == [
        {"tag": "chair", "count": 4}, {"tag": "chair\tleg", "count": 4},
        {"tag": "wooden\ntable", "count": 4}]


def test_run_json_prints_the_captions_then_the_export(project: Path,
                                                      server: FakeGeminiServer) -> None:
    result = loracap("run", project.parent, "--trigger", "hall", "--json", server=server)
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(obj["path"] for obj in objects[:-1]) == sorted(NAMES)
    assert objects[-1] == {"export": str(project.parent / "hall_training.zip")}
