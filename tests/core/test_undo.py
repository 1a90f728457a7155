"""The undo stack stored in the project file: edits, batch edits, review marks, history restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from loracap.core import project as project_mod
from loracap.core.errors import InputError
from loracap.core.project import Project, Provenance
from loracap.core.scan import scan_folder
from loracap.core.schema import Review
from loracap.core.tags import add_tag, apply_batch, find_replace_preview
from tests.fakes.photos import make_photo_folder


@pytest.fixture
def project(tmp_path: Path) -> Project:
    folder = tmp_path / "cafe"
    make_photo_folder(folder, 5)
    (folder / "IMG_0005.txt").write_text("my own words, oak table\n")
    created = Project.create(folder / "cafe.loraproj", trigger="cafe")
    created.add_scanned(scan_folder(folder))
    for rec in created.images():
        if rec.caption is None:
            created.store_generated(rec.id, f"a room, wooden table, {rec.file_name}",
                                    backend="gemini", model="gemini-x", prompt="describe")
    return created


def ids(project: Project) -> dict[str, int]:
    return {rec.file_name: rec.id for rec in project.images()}


def bodies(project: Project) -> dict[int, str]:
    return {rec.id: rec.caption.body if rec.caption else "" for rec in project.images()}


def test_an_edit_is_undone_and_redone_exactly(project: Project) -> None:
    image_id = ids(project)["IMG_0001.jpg"]
    before = project.image(image_id).caption
    project.edit_caption(image_id, "a room, oak table")
    assert project.undo_label() == "Edit caption of IMG_0001.jpg"
    outcome = project.undo()
    assert outcome is not None and outcome.changed == [image_id] and outcome.skipped == []
    caption = project.image(image_id).caption
    assert caption is not None and before is not None
    assert (caption.body, caption.provenance, caption.backend, caption.model, caption.prompt) == (
        before.body, Provenance.GENERATED, "gemini", "gemini-x", "describe")
    assert project.undo_label() is None and project.redo_label() == "Edit caption of IMG_0001.jpg"
    project.redo()
    caption = project.image(image_id).caption
    assert caption is not None and caption.body == "a room, oak table"
    assert caption.provenance is Provenance.EDITED
    assert project.redo() is None


def test_a_batch_edit_is_one_step_and_survives_reopening(project: Project) -> None:
    original = bodies(project)
    changes = find_replace_preview(original, "wooden", "oak")
    assert len(changes) == 4
    changed = project.apply_edits({c.image_id: c.after for c in changes},
                                  'Replace "wooden" with "oak" in 4 captions')
    assert sorted(changed) == sorted(c.image_id for c in changes)
    for image_id in changed:
        caption = project.image(image_id).caption
        assert caption is not None and caption.provenance is Provenance.EDITED
        assert "oak table" in caption.body
    path = project.path
    project.close()

    with Project.open(path) as reopened:
        assert reopened.undo_label() == 'Replace "wooden" with "oak" in 4 captions'
        reopened.undo()
        assert bodies(reopened) == original
        assert reopened.undo_label() is None
    with Project.open(path) as reopened:
        assert reopened.redo_label() == 'Replace "wooden" with "oak" in 4 captions'
        reopened.redo()
        assert all("wooden" not in body for body in bodies(reopened).values())


def test_batch_edit_keeps_manual_captions_manual(project: Project) -> None:
    manual_id = ids(project)["IMG_0005.jpg"]
    project.edit_caption(manual_id, "my own words, oak table, lamp")
    changes = apply_batch(bodies(project), lambda body: add_tag(body, "cafe interior"))
    project.apply_edits({c.image_id: c.after for c in changes}, "Add tag")
    caption = project.image(manual_id).caption
    assert caption is not None and caption.provenance is Provenance.MANUAL
    assert caption.body == "my own words, oak table, lamp, cafe interior"


def test_undo_never_overwrites_a_caption_changed_since(project: Project) -> None:
    first, second = ids(project)["IMG_0001.jpg"], ids(project)["IMG_0002.jpg"]
    project.apply_edits({first: "one", second: "two"}, "Batch")
    # A captioning batch replaces one of them afterwards (with the user's consent).
    project.store_generated(second, "fresh text", backend="gemini", model="m", prompt="p",
                            overwrite_protected=True)
    outcome = project.undo()
    assert outcome is not None
    assert outcome.changed == [first] and outcome.skipped == [second]
    assert project.image(second).caption.body == "fresh text"  # type: ignore[union-attr]
    assert project.image(first).caption.provenance is Provenance.GENERATED  # type: ignore[union-attr]


def test_a_new_edit_discards_the_redo_branch(project: Project) -> None:
    image_id = ids(project)["IMG_0001.jpg"]
    project.edit_caption(image_id, "first")
    project.edit_caption(image_id, "second")
    project.undo()
    assert project.redo_label() is not None
    project.edit_caption(image_id, "third")
    assert project.redo_label() is None
    project.undo()
    assert project.image(image_id).caption.body == "first"  # type: ignore[union-attr]


def test_the_stack_is_bounded(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(project_mod, "MAX_UNDO_STEPS", 5)
    image_id = ids(project)["IMG_0001.jpg"]
    for n in range(12):
        project.edit_caption(image_id, f"text {n}")
    undone = 0
    while project.undo() is not None:
        undone += 1
    assert undone == 5
    assert project.image(image_id).caption.body == "text 6"  # type: ignore[union-attr]
    # Every text is still in the history.
    assert {f"text {n}" for n in range(12)} <= {v.body for v in project.history(image_id)}


def test_the_entry_bound_keeps_the_newest_step_whole(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(project_mod, "MAX_UNDO_ENTRIES", 3)
    all_ids = list(bodies(project))
    project.apply_edits({i: "small" for i in all_ids[:2]}, "two")
    project.apply_edits({i: "big" for i in all_ids}, "five")
    assert project.undo_label() == "five"
    project.undo()
    assert project.undo_label() is None
    assert set(bodies(project).values()) == {"small"} | {
        b for i, b in bodies(project).items() if i not in all_ids[:2]}


def test_review_marks_are_one_undo_step(project: Project) -> None:
    chosen = list(bodies(project))[:3]
    changed = project.set_reviews(chosen, review=Review.APPROVED)
    assert changed == chosen
    assert project.undo_label() == "Approve 3 images"
    project.set_reviews(chosen[:1], rating=4)
    assert project.undo_label() == "Set the rating of 1 image to 4"
    project.undo()
    project.undo()
    assert all(project.image(i).review is Review.UNREVIEWED for i in chosen)
    assert project.image(chosen[0]).rating is None
    project.redo()
    assert all(project.image(i).review is Review.APPROVED for i in chosen)
    # Marking again what is already marked changes nothing and records nothing.
    assert project.set_reviews(chosen, review=Review.APPROVED) == []
    assert project.undo_label() == "Approve 3 images"
    assert project.redo_label() == "Set the rating of 1 image to 4"


def test_restoring_a_version_is_undoable(project: Project) -> None:
    image_id = ids(project)["IMG_0003.jpg"]
    project.edit_caption(image_id, "rewritten")
    generated = [v for v in project.history(image_id) if v.provenance is Provenance.GENERATED]
    restored = project.restore_version(image_id, generated[-1].id)
    assert restored.provenance is Provenance.GENERATED and restored.model == "gemini-x"
    assert project.undo_label() == "Restore an earlier caption of IMG_0003.jpg"
    project.undo()
    caption = project.image(image_id).caption
    assert caption is not None and caption.body == "rewritten"
    with pytest.raises(InputError, match="not part of this image"):
        project.restore_version(ids(project)["IMG_0001.jpg"], generated[-1].id)


def test_undo_of_a_first_caption_leaves_the_image_uncaptioned(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    make_photo_folder(folder, 1)
    with Project.create(folder / "f.loraproj", trigger="f") as project:
        project.add_scanned(scan_folder(folder))
        image_id = project.images()[0].id
        project.apply_edits({image_id: "lamp"}, "Add tag")
        assert project.image(image_id).caption.provenance is Provenance.MANUAL  # type: ignore[union-attr]
        project.undo()
        assert project.image(image_id).caption is None
        assert [v.body for v in project.history(image_id)] == ["lamp"]


def test_batch_edit_refuses_invalid_images_and_stores_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    make_photo_folder(folder, 1)
    (folder / "broken.jpg").write_bytes(b"nope")
    with Project.create(folder / "g.loraproj", trigger="g") as project:
        project.add_scanned(scan_folder(folder))
        by_name = {rec.file_name: rec.id for rec in project.images()}
        with pytest.raises(InputError, match="not a valid image"):
            project.apply_edits({by_name["IMG_0001.jpg"]: "ok", by_name["broken.jpg"]: "x"}, "b")
        assert project.image(by_name["IMG_0001.jpg"]).caption is None
        assert project.undo_label() is None


def test_tag_separator_is_a_project_setting(project: Project) -> None:
    assert project.settings.tag_separator == ", "
    assert project.update_settings(tag_separator="; ").tag_separator == "; "
    with pytest.raises(InputError, match="separator is empty"):
        project.update_settings(tag_separator="")
