"""The captioning runner with a fast backend (issue 15): captions committed in groups, each
reported only once it is in the project file; a commit that fails stops the batch and
reports none of its captions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from loracap.core.backends.base import GeneratedCaption
from loracap.core.errors import StorageError
from loracap.core.project import CaptionMode, Project
from loracap.core.prompts import Instructions, Profile, build_instructions
from loracap.jobs.runner import BatchOptions, BatchSummary, CaptionRunner
from tests.core.test_grouped_commits import _committed
from tests.core.test_project_reads import _Info, _Scanned

COUNT = 120


class FastTagger:
    """A captioner as fast as a local tagger can be: answers at once, from several threads."""

    backend = "wd14"
    model = "fake-tagger"

    def prepare(self, path: Path, max_side: int) -> Path:
        return path

    def caption(self, image: Path, instructions: Instructions, *, trigger: str,
                prefix: str) -> GeneratedCaption:
        body = f"tags of {image.stem}"
        return GeneratedCaption(body=body, raw=body, backend=self.backend, model=self.model,
                                prompt="")

    def close(self) -> None:
        pass


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    folder = tmp_path / "hall"
    folder.mkdir()
    scanned = []
    for number in range(COUNT):
        path = folder / f"IMG_{number:04d}.jpg"
        path.write_bytes(b"")
        scanned.append(_Scanned(path, _Info(valid=True)))
    with Project.create(folder / "hall.loraproj", trigger="hall") as proj:
        proj.add_scanned(scanned)
        yield proj


def run(qtbot: Any, project: Project, **options: Any
        ) -> tuple[BatchSummary, list[tuple[int, str, str | None]], int]:
    """Run a batch with :class:`FastTagger`; the summary, each ``captioned`` signal with the
    caption the file held when it came, and the transactions committed."""
    runner = CaptionRunner(project, FastTagger(), build_instructions(Profile.SPACE),
                           BatchOptions(base_delay_s=0.01, **options))
    seen: list[tuple[int, str, str | None]] = []
    runner.captioned.connect(
        lambda image_id, body: seen.append((image_id, body, _committed(project.path, image_id))))
    commits: list[int] = []

    def count(*args: object) -> None:
        commits.append(1)

    event.listen(project._engine, "commit", count)
    try:
        with qtbot.waitSignal(runner.finished, timeout=60_000) as blocker:
            runner.start()
        runner.wait()
    finally:
        event.remove(project._engine, "commit", count)
    return blocker.args[0], seen, len(commits)


@pytest.mark.parametrize("workers", [1, 3])
def test_a_fast_backend_commits_in_groups_and_reports_only_what_is_stored(
        qtbot: Any, project: Project, workers: int) -> None:
    summary, seen, commits = run(qtbot, project, workers=workers, rpm=0)
    assert (summary.total, summary.done, summary.failed, summary.stop_error) == (
        COUNT, COUNT, [], None)
    assert len(seen) == COUNT and len({image_id for image_id, *_ in seen}) == COUNT
    assert all(body == on_disk for _, body, on_disk in seen)  # committed when reported
    assert commits < COUNT / 2
    assert all(rec.caption is not None and rec.caption.body == f"tags of {Path(rec.path).stem}"
               for rec in project.images())


def test_grouping_can_be_turned_off(qtbot: Any, project: Project) -> None:
    summary, seen, commits = run(qtbot, project, workers=2, rpm=0, group_commits=False)
    assert summary.done == COUNT and all(body == on_disk for _, body, on_disk in seen)
    assert commits >= COUNT  # a transaction per caption


def test_batches_without_a_rate_limit_are_grouped() -> None:
    assert BatchOptions(rpm=0).grouped and not BatchOptions(rpm=1000).grouped
    assert BatchOptions(rpm=10, group_commits=True).grouped
    assert not BatchOptions(rpm=0, group_commits=False).grouped


def test_a_person_caption_is_kept_in_a_group(qtbot: Any, project: Project) -> None:
    first = project.images()[0]
    project.edit_caption(first.id, "a person wrote this")
    summary, seen, _ = run(qtbot, project, workers=2, rpm=0, overwrite_protected=False,
                           mode=CaptionMode.ALL)
    assert summary.skipped_protected == 1 and summary.done == COUNT - 1
    project.edit_caption(first.id, "a person wrote this too")
    summary, seen, _ = run(qtbot, project, workers=2, rpm=0, overwrite_protected=True,
                           mode=CaptionMode.ALL)
    assert summary.done == COUNT and summary.kept == []
    assert project.image(first.id).caption.body == "tags of IMG_0000"  # type: ignore[union-attr]


def test_a_failed_commit_stops_the_batch_and_reports_none_of_its_captions(
        qtbot: Any, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Project.store_generated_many
    calls: list[int] = []

    def fills_up(self: Project, *args: Any, **kwargs: Any) -> list[bool]:
        calls.append(1)
        if len(calls) > 1:  # the first group (100 captions at most) is stored
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = 13  # type: ignore[attr-defined]
            raise error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Project, "store_generated_many", fills_up)
    summary, seen, _ = run(qtbot, project, workers=2, rpm=0)
    assert isinstance(summary.stop_error, StorageError)
    assert "The disk is full" in str(summary.stop_error)
    assert summary.failed == [] and 0 < summary.done < COUNT
    assert len(seen) == summary.done and all(body == on_disk for _, body, on_disk in seen)
    stored = {rec.id for rec in project.images() if rec.caption is not None}
    assert stored == {image_id for image_id, *_ in seen}  # nothing stored went unreported
