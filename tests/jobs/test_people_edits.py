"""A person's edits of the people of an image (issue 13, "In the window"), on a project the
real runner captioned through the real google-genai client and the fake Gemini server: box
edits and reordering rebuild the caption as one undoable step in the history, "Describe this
person again" re-runs one part, and the next run keeps the person's boxes and order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loracap.core.backends.gemini import GeminiCaptioner
from loracap.core.captioning_people import describe_person_again
from loracap.core.errors import InputError
from loracap.core.project import Project
from loracap.core.prompts import Profile
from loracap.core.records import CaptionMode, Provenance
from loracap.core.scan import scan_folder
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.photos import make_photo
from tests.jobs.test_runner_people import body, run

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    folder = tmp_path / "team"
    make_photo(folder / "IMG_0001.jpg", size=(640, 480), seed=1)
    proj = Project.create(folder / "team.loraproj", trigger="team",
                          profile=Profile.MULTI_PERSON.value)
    proj.add_scanned(scan_folder(folder))
    yield proj
    proj.close()


@pytest.fixture
def captioned(qtbot: Any, project: Project, server: FakeGeminiServer) -> int:
    assert run(qtbot, project, server).done == 1
    [record] = project.images()
    server.reset()
    return record.id


def test_reordering_people_swaps_aliases_in_one_undoable_step(
        project: Project, captioned: int) -> None:
    before = body(project)
    first, second, scene = before.splitlines()
    layout = project.people_layout(captioned)
    assert layout is not None and layout.aliases() == ["sksA", "sksB"]
    assert project.edit_people(captioned, layout.moved(1, 0), "Make sksB sksA")
    swapped = body(project)
    assert swapped.splitlines() == ["sksA" + second[4:], "sksB" + first[4:], scene]
    [record] = project.images()
    assert record.caption is not None and record.caption.provenance is Provenance.EDITED
    # Both texts are in the caption history, the edit as "edited".
    history = project.history(captioned)
    assert [(v.body, v.provenance) for v in history[-2:]] == [
        (before, Provenance.GENERATED), (swapped, Provenance.EDITED)]
    assert project.undo_label() == "Make sksB sksA"
    outcome = project.undo()
    assert outcome is not None and outcome.changed == [captioned]
    assert body(project) == before
    assert project.people_layout(captioned).people == layout.people  # type: ignore[union-attr]
    project.redo()
    assert body(project) == swapped
    assert not project.edit_people(captioned, project.people_layout(captioned),  # type: ignore[arg-type]
                                   "Nothing")  # an edit that changes nothing is no step


def test_a_line_the_user_edited_moves_with_its_person(project: Project,
                                                       captioned: int) -> None:
    lines = body(project).splitlines()
    project.edit_caption(captioned, "\n".join(["sksA: My own words about her.", *lines[1:]]))
    layout = project.people_layout(captioned)
    assert layout is not None
    project.edit_people(captioned, layout.moved(0, 1), "Move sksA later")
    assert body(project).splitlines()[1] == "sksB: My own words about her."


def test_a_dragged_box_is_kept_by_the_next_run_whatever_the_backend_model(
        qtbot: Any, project: Project, server: FakeGeminiServer, captioned: int) -> None:
    layout = project.people_layout(captioned)
    assert layout is not None
    new_box = (300, 40, 420, 400)
    project.edit_people(captioned, layout.with_box(1, new_box, (640, 480)), "Move sksB's box")
    assert project.people_layout(captioned).people[1].box == new_box  # type: ignore[union-attr]
    # The next run does not find the people again: it keeps the person's boxes and order and
    # pays only for the description of the moved box.
    summary = run(qtbot, project, server, mode=CaptionMode.ALL, overwrite_protected=True)
    assert summary.done == 1
    assert len(server.generate_requests) == 1
    assert not server.generate_requests[0].schema_properties
    after = project.people_layout(captioned)
    assert after is not None and after.people[1].box == new_box
    # Another backend keeps the person's boxes too, but has no description of its own.
    [record] = project.images()
    stat = record.abs_path.stat()
    reuse = project.reusable_parts(captioned, backend="openai", model="qwen2.5-vl",
                                   file_size=stat.st_size, mtime=stat.st_mtime)
    assert [part.kind for part in reuse] == ["detection"]


def test_deleting_and_drawing_people(project: Project, captioned: int) -> None:
    layout = project.people_layout(captioned)
    assert layout is not None
    project.edit_people(captioned, layout.without(0), "Delete sksA")
    lines = body(project).splitlines()
    assert [line.split(":")[0] for line in lines] == ["sksA", "Scene"]
    assert project.people_found() == {captioned: 1}
    drawn = project.people_layout(captioned).with_person(  # type: ignore[union-attr]
        (400, 50, 500, 400), (640, 480), "woman")
    project.edit_people(captioned, drawn, "Draw a box")
    assert project.people_found() == {captioned: 2}
    assert body(project).splitlines() == lines  # not described yet: no line
    with pytest.raises(InputError):
        drawn.with_person((0, 0, 3, 3), (640, 480))


def test_describe_this_person_again_asks_for_one_part_only(
        project: Project, server: FakeGeminiServer, captioned: int) -> None:
    lines = body(project).splitlines()
    server.queue_replies(Reply.caption("The person is a tall man in a green raincoat holding an "
                                       "umbrella, looking to the left."))
    captioner = GeminiCaptioner("test-key", base_url=server.base_url, timeout_s=10)
    try:
        text = describe_person_again(project, captioned, 1, captioner)
    finally:
        captioner.close()
    assert len(server.generate_requests) == 1
    assert text == "A tall man in a green raincoat holding an umbrella, looking to the left."
    assert body(project).splitlines() == [lines[0], f"sksB: {text}", lines[2]]
    assert project.undo_label() == "Describe sksB again"
    # The answer was paid for: a stored part with its tokens.
    assert project.person_parts(captioned)[-1].text == text
    project.undo()
    assert body(project).splitlines() == lines
    with pytest.raises(InputError):
        describe_person_again(project, captioned, 5, captioner)


def test_people_edits_need_a_multi_person_project_with_people(
        project: Project, captioned: int) -> None:
    layout = project.people_layout(captioned)
    assert layout is not None
    project.update_settings(profile=Profile.SHORT.value)
    assert project.people_layout(captioned) is None
    with pytest.raises(InputError):
        project.edit_people(captioned, layout, "Nope")
