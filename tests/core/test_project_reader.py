"""Reading a project without SQLAlchemy (``ProjectReader``, what ``loracap info`` uses): the same
checks as ``Project.open`` with the same errors, and the same settings, counts, token usage and
images as ``Project`` -- for a current file and for older formats opened as they are."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from loracap.core.backends.base import TokenUsage
from loracap.core.errors import ProjectError, ProjectVersionError
from loracap.core.project import Project
from loracap.core.project_reader import ProjectReader
from loracap.core.records import PersonPart, Review
from tests.core.test_project import (
    _make_version_1,
    _make_version_2,
    ids_by_path,
    make_dataset,
    make_version_4,
    make_version_7,
    new_project,
)


def _varied_project(tmp_path: Path) -> Path:
    """The test dataset's project with captions of every kind, failed attempts (one that paid
    tokens), token usage of three models, a review mark, a multi-person detection, settings
    changed from the defaults and one image file gone."""
    dataset = make_dataset(tmp_path)
    with new_project(dataset) as project:
        ids = ids_by_path(project)
        project.store_generated(ids["IMG_0001.jpg"], "a hall, oak doors", backend="gemini",
                                model="gemini-flash-latest", prompt="Describe.",
                                usage=TokenUsage(1234, 56))
        project.store_generated(ids["IMG_0003.jpg"], "a hall", backend="openai",
                                model="gpt-4o-mini", prompt="Describe.",
                                usage=TokenUsage(2000, 70))
        project.store_generated(ids["sub/IMG_0009.png"], "x", backend="openai",
                                model="local-model", prompt="D", usage=TokenUsage(10, 3))
        project.edit_caption(ids["sub/IMG_0009.png"], "edited text")
        project.record_failure(ids["IMG_0004.jpg"], "500 INTERNAL", kind="server",
                               backend="gemini", model="gemini-flash-latest",
                               usage=TokenUsage(100, 0))
        project.record_failure(ids["IMG_0003.jpg"], "later failure", backend="gemini",
                               model="gemini-flash-latest")
        project.set_reviews([ids["IMG_0001.jpg"]], review=Review.APPROVED)
        project.store_person_part(ids["IMG_0001.jpg"], PersonPart(
            kind="detection", backend="gemini", model="gemini-flash-latest", file_size=1,
            mtime=1.0, text='[{"box": [1, 2, 30, 40], "gender": "woman"}]'))
        project.update_settings(language="de", base_url="http://localhost:11434/v1",
                                backend="openai", model="llava", aliases=["anna"])
    (dataset / "IMG_0002.jpg").unlink()
    return dataset / "hall.loraproj"


def _assert_reads_alike(path: Path) -> None:
    with Project.open(path, read_only=True) as project, \
            ProjectReader.open(path, count=True) as reader:
        assert reader.format_version == project.format_version
        assert reader.settings == project.settings
        assert reader.stats() == project.stats()  # counted while the file was checked
        assert reader.stats() == project.stats()  # counted again
        assert reader.token_usage() == project.token_usage()
        assert list(reader.images()) == project.images()
        assert reader.missing_images() == project.missing_images()


def test_a_project_reads_as_the_project_reads_it(tmp_path: Path) -> None:
    path = _varied_project(tmp_path)
    _assert_reads_alike(path)
    with ProjectReader.open(path) as reader:
        stats = reader.stats()
        assert (stats.images, stats.invalid, stats.captioned, stats.failed,
                stats.missing_files, stats.approved) == (5, 1, 4, 1, 1, 1)
        assert [(u.backend, u.model, u.answers, u.input_tokens) for u in reader.token_usage()] \
            == [("gemini", "gemini-flash-latest", 1, 1334), ("openai", "gpt-4o-mini", 1, 2000),
                ("openai", "local-model", 1, 10)]
        assert [rec.path for rec in reader.missing_images()] == ["IMG_0002.jpg"]
        assert {rec.path: rec.people for rec in reader.images()}["IMG_0001.jpg"] == 1
        assert reader.settings.aliases == ("anna",) and reader.settings.language == "de"


@pytest.mark.parametrize("make_older", [make_version_7, make_version_4, _make_version_2,
                                        _make_version_1])
def test_an_older_format_reads_as_it_is(tmp_path: Path,
                                        make_older: Callable[[Path], None]) -> None:
    path = _varied_project(tmp_path)
    make_older(path)
    with ProjectReader.open(path) as reader:
        version = reader.format_version
        stats = reader.stats()
        assert (stats.images, stats.captioned, stats.failed) == (5, 4, 1)
        if version < 5:  # no token counts then: nothing to show
            assert reader.token_usage() == []
        if version < 2:  # no review marks then: every image unreviewed
            assert (stats.reviewed, stats.approved) == (0, 0)
        else:
            assert len(reader.images()) == 6
    assert version < 8
    if version >= 2:
        _assert_reads_alike(path)
    else:  # Project's records need the review columns; its counts do not
        with Project.open(path, read_only=True) as project, \
                ProjectReader.open(path) as reader:
            assert reader.stats() == project.stats()
            assert reader.settings == project.settings
    with Project.open(path, read_only=True) as project:
        assert project.format_version == version  # read as it is, not migrated


def _refusal(opener: Callable[[], object]) -> tuple[type[BaseException], str]:
    with pytest.raises(ProjectError) as caught:
        opener()
    return type(caught.value), str(caught.value)


@pytest.mark.parametrize(("name", "damage"), [
    ("newer", "PRAGMA user_version = 99"),
    ("no version", "PRAGMA user_version = 0"),
    ("trigger", "UPDATE project SET trigger = 'Not A Word'"),
    ("review", "UPDATE images SET review = 'maybe'"),
    ("provenance", "UPDATE captions SET provenance = 'robot'"),
    ("time", "UPDATE captions SET created_at = 'yesterday'"),
    ("table", "DROP TABLE exports"),
    ("presets", "UPDATE project SET prompt_presets = '[1'"),
    ("aliases", "UPDATE project SET aliases = '[\"a:b\"]'"),
    ("base url", "UPDATE project SET base_url = 'localhost:11434'"),
])
def test_a_file_the_project_refuses_is_refused_alike(tmp_path: Path, name: str,
                                                    damage: str) -> None:
    path = _varied_project(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute(damage)
    conn.commit()
    conn.close()
    expected = _refusal(lambda: Project.open(path, read_only=True))
    assert _refusal(lambda: ProjectReader.open(path)) == expected
    # Counting while the file is checked: the checks' error, never the count's.
    assert _refusal(lambda: ProjectReader.open(path, count=True)) == expected
    assert expected[0] is (ProjectVersionError if name == "newer" else ProjectError)


def test_no_file_and_not_a_project_are_refused_alike(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.loraproj"
    assert _refusal(lambda: ProjectReader.open(missing)) == _refusal(
        lambda: Project.open(missing, read_only=True))
    junk = tmp_path / "junk.loraproj"
    junk.write_bytes(b"not a database at all" * 20)
    assert _refusal(lambda: ProjectReader.open(junk)) == _refusal(
        lambda: Project.open(junk, read_only=True))
