"""Storing many generated captions at once (issue 15): ``store_generated_many`` keeps every rule
of ``store_generated`` in one transaction, and a :class:`CaptionGroup` reports a caption only
once its group is committed -- a process killed at any moment loses no caption it reported."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from loracap.core.backends.base import TokenUsage
from loracap.core.captioning import CaptionGroup, ImageOutcome, PendingCaption
from loracap.core.errors import InputError, LoraCapError, StorageError
from loracap.core.project import Project, Provenance
from loracap.core.project_captions import CaptionToStore
from tests.core.test_project_reads import _Info, _Scanned

REPO = Path(__file__).resolve().parents[2]


def _project(folder: Path, count: int) -> Project:
    folder.mkdir(parents=True)
    project = Project.create(folder / "hall.loraproj", trigger="hall")
    project.add_scanned([_Scanned(folder / f"IMG_{n:04d}.jpg", _Info(valid=True))
                         for n in range(count)])
    return project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with _project(tmp_path / "hall", 300) as proj:
        yield proj


def _ids(project: Project) -> list[int]:
    return [rec.id for rec in project.images()]


def _state(project: Project) -> list[object]:
    """What a person sees of every image: its caption, history and last error (not times)."""
    seen: list[object] = []
    for rec in project.images():
        caption = rec.caption
        seen.append((rec.path, caption and (caption.body, caption.provenance, caption.backend,
                                            caption.model, caption.prompt), rec.last_error))
        seen.append([(v.body, v.provenance, v.backend, v.model, v.prompt, v.input_tokens,
                      v.output_tokens) for v in project.history(rec.id)])
    seen.append(project.token_usage())
    return seen


def _prepare(project: Project) -> list[int]:
    """Captions of every kind on the first images: a person's, an imported-like blank one,
    a generated one and a failure."""
    ids = _ids(project)
    project.edit_caption(ids[0], "a person wrote this")
    project.edit_caption(ids[1], "   ")  # blank: a model's caption replaces it
    project.store_generated(ids[2], "an earlier caption", backend="gemini", model="m",
                            prompt="p")
    project.record_failure(ids[3], "500 internal", kind="server")
    return ids


def _captions(ids: list[int]) -> list[CaptionToStore]:
    usage = TokenUsage(input_tokens=300, output_tokens=40)
    return [CaptionToStore(ids[0], "kept in the history", "wd14", "wd-v3", "", usage),
            CaptionToStore(ids[1], "replaces a blank one", "wd14", "wd-v3", "", None),
            CaptionToStore(ids[2], "replaces a generated one", "openai", "qwen", "Describe.",
                           usage),
            CaptionToStore(ids[3], "after a failure", "wd14", "wd-v3", "", usage),
            CaptionToStore(ids[4], "first of two", "wd14", "wd-v3", "", usage),
            CaptionToStore(ids[4], "second of two", "wd14", "wd-v3", "", usage),
            CaptionToStore(ids[5], "a new one", "wd14", "wd-v3", "", usage)]


@pytest.mark.parametrize("overwrite", [False, True])
def test_many_at_once_store_what_one_by_one_store(tmp_path: Path, overwrite: bool) -> None:
    with _project(tmp_path / "one", 8) as one, _project(tmp_path / "many", 8) as many:
        captions = _captions(_prepare(one))
        assert _captions(_prepare(many)) == captions
        singly = [one.store_generated(c.image_id, c.body, backend=c.backend, model=c.model,
                                      prompt=c.prompt, usage=c.usage,
                                      overwrite_protected=overwrite) for c in captions]
        together = many.store_generated_many(captions, overwrite_protected=overwrite)
        assert together == singly == [overwrite, True, True, True, True, True, True]
        assert _state(many) == _state(one)
        record = many.image(captions[5].image_id)
        assert record.caption is not None and record.caption.body == "second of two"
        assert record.caption.provenance is Provenance.GENERATED


def test_an_unknown_image_stores_nothing(project: Project) -> None:
    ids = _ids(project)
    before = _state(project)
    with pytest.raises(InputError, match="No image with id 99999"):
        project.store_generated_many([CaptionToStore(ids[0], "a", "wd14", "m", ""),
                                      CaptionToStore(99999, "b", "wd14", "m", "")])
    with pytest.raises(InputError, match="No image with id 99999"):
        project.store_generated(99999, "b", backend="wd14", model="m", prompt="")
    assert _state(project) == before
    assert project.store_generated_many([]) == []


def test_a_group_takes_a_few_statements_and_one_commit(project: Project) -> None:
    ids = _ids(project)
    statements: list[str] = []
    commits: list[int] = []
    event.listen(project._engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    event.listen(project._engine, "commit", lambda *args: commits.append(1))
    project.store_generated_many([CaptionToStore(i, f"caption {i}", "wd14", "m", "")
                                  for i in ids[:200]])
    project.store_generated_many([CaptionToStore(i, f"again {i}", "wd14", "m", "")
                                  for i in ids[:200]])
    assert len(commits) == 2
    # per group: the current captions (500 ids a query), attempts, versions, captions
    assert len(statements) <= 2 * 4, statements
    assert all(rec.caption is not None and rec.caption.body == f"again {rec.id}"
               for rec in project.images_by_id(ids[:200]))


def _pending(project: Project, image_id: int, body: str) -> ImageOutcome:
    caption = CaptionToStore(image_id, body, "wd14", "wd-v3", "")
    return ImageOutcome(image_id, ok=True, body=body,
                        pending=PendingCaption(caption, f"IMG_{image_id}.jpg"))


def _committed(path: Path, image_id: int) -> str | None:
    """The caption of the image as another connection reads it from the file."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT body FROM captions WHERE image_id = ?",
                           (image_id,)).fetchone()
    finally:
        conn.close()
    return None if row is None else str(row[0])


def test_a_caption_is_reported_only_once_committed(project: Project) -> None:
    ids = _ids(project)
    reported: list[tuple[int, bool, str | None]] = []
    commits: list[int] = []
    event.listen(project._engine, "commit", lambda *args: commits.append(1))
    group = CaptionGroup(project, size=50, wait_s=0.05)

    def report(outcome: ImageOutcome) -> None:
        assert outcome.pending is None
        reported.append((outcome.image_id, outcome.stored,
                         _committed(project.path, outcome.image_id)))

    for image_id in ids[:200]:
        group.submit(_pending(project, image_id, f"tags of {image_id}"), report,
                     lambda error: pytest.fail(str(error)))
    group.flush()
    assert [image_id for image_id, *_ in reported] == ids[:200]
    assert all(stored and body == f"tags of {image_id}" for image_id, stored, body in reported)
    assert 4 <= len(commits) <= 10  # in groups of at most 50
    group.close()
    with pytest.raises(RuntimeError):
        group.submit(_pending(project, ids[0], "late"), report, lambda error: None)


def test_a_lone_caption_waits_no_longer_than_the_group_allows(project: Project) -> None:
    done = threading.Event()
    group = CaptionGroup(project, wait_s=0.05)
    started = time.monotonic()
    group.submit(_pending(project, _ids(project)[0], "alone"), lambda outcome: done.set(),
                 lambda error: None)
    assert done.wait(5)
    assert time.monotonic() - started < 2.0
    group.close()


def test_a_person_caption_is_kept_and_said_so(project: Project) -> None:
    ids = _ids(project)
    project.edit_caption(ids[0], "mine")
    outcomes: list[ImageOutcome] = []
    group = CaptionGroup(project)
    for image_id in ids[:2]:
        group.submit(_pending(project, image_id, "generated"), outcomes.append,
                     lambda error: None)
    group.close()
    assert [(o.image_id, o.stored) for o in outcomes] == [(ids[0], False), (ids[1], True)]
    assert project.image(ids[0]).caption.body == "mine"  # type: ignore[union-attr]


def test_a_failed_commit_reports_nothing_and_stops(project: Project, monkeypatch) -> None:
    ids = _ids(project)
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]

    def no_room(*args: object, **kwargs: object) -> list[bool]:
        raise full

    monkeypatch.setattr(Project, "store_generated_many", no_room)
    reported: list[ImageOutcome] = []
    errors: list[LoraCapError] = []
    group = CaptionGroup(project)
    for image_id in ids[:3]:
        group.submit(_pending(project, image_id, "lost"), reported.append, errors.append)
    group.close()
    assert reported == []
    assert len(errors) == 3 and all(isinstance(e, StorageError) for e in errors)
    assert "The disk is full: the caption of IMG_" in str(errors[0])
    monkeypatch.undo()
    assert all(project.image(i).caption is None for i in ids[:3])


#: Stores captions through a CaptionGroup as fast as it can and prints each image id once its
#: caption is reported (argv: project file, image ids).
WRITER = """
import sys
import time
from pathlib import Path
from loracap.core.captioning import CaptionGroup, ImageOutcome, PendingCaption
from loracap.core.project import Project
from loracap.core.project_captions import CaptionToStore

project = Project.open(Path(sys.argv[1]))
group = CaptionGroup(project, size=20, wait_s=0.01)

def report(outcome):
    sys.stdout.write(f"{outcome.image_id}\\n")
    sys.stdout.flush()

print("ready", flush=True)
for image_id in (int(i) for i in sys.argv[2:]):
    time.sleep(0.001)  # a fast backend: a caption a millisecond
    caption = CaptionToStore(image_id, f"caption {image_id}", "wd14", "wd-v3", "")
    group.submit(ImageOutcome(image_id, ok=True, body=caption.body,
                              pending=PendingCaption(caption, str(image_id))),
                 report, lambda error: None)
group.close()
"""


@pytest.mark.skipif(os.name == "nt", reason="kill -9 is POSIX")
def test_a_killed_process_loses_no_caption_it_reported(tmp_path: Path) -> None:
    with _project(tmp_path / "hall", 3000) as project:
        ids = _ids(project)
        path = project.path
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), *map(str, ids)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    printed: list[int] = []
    while len(printed) < 500:
        line = proc.stdout.readline()
        assert line, "the writer ended early"
        printed.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    printed.extend(int(line) for line in proc.stdout.read().split())  # already in the pipe
    with Project.open(path) as project:  # the dead writer's lock is taken over
        stored = {rec.id: rec.caption.body for rec in project.images() if rec.caption}
    assert all(stored.get(image_id) == f"caption {image_id}" for image_id in printed)
    assert len(stored) < len(ids)  # it was killed before the end
