"""Question-answer pairs in the project file (format 7): a model's pairs asked once per image,
a person's questions and edits as undo steps, answers a person checked never replaced unless
asked, history with provenance, counts, streaming for the exports, migration and the checks on
open."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loracap.core import project_qa
from loracap.core.backends.base import TokenUsage
from loracap.core.errors import (
    InputError,
    ProjectError,
    ProjectReadOnlyError,
    ProjectVersionError,
)
from loracap.core.project import Project
from loracap.core.project_integrity import _check_header
from loracap.core.qa.exports import export_qa
from loracap.core.qa.records import AnswerType, QAEntry
from loracap.core.records import Provenance, Review
from tests.core.test_project import ids_by_path, make_dataset, make_version_6, new_project
from tests.core.test_project_integrity import _execute as execute


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path)


@pytest.fixture
def project(dataset: Path) -> Iterator[Project]:
    opened = new_project(dataset)
    yield opened
    opened.close()


def pair(question: str, answer: str = "yes", **fields: Any) -> QAEntry:
    return QAEntry(question=question, answer=answer, backend="gemini", model="flash", **fields)


def model_answer(project: Project, entry_id: int, answer: str, **options: Any) -> bool:
    """``set_answer`` as a run of OpenAI's gpt-x would call it."""
    return project.set_answer(entry_id, answer, backend="openai", model="gpt-x", **options)


# ---------------------------------------------------------------------- a model's pairs


def test_a_models_pairs_are_stored_once_per_question(project: Project) -> None:
    image = ids_by_path(project)["IMG_0001.jpg"]
    stored = project.add_qa(image, [
        pair("What colour is the floor?", "grey"),
        pair("  what   COLOUR is the floor?  ", "white"),  # the same question again
        pair("   ", "nothing"),  # no question at all
        pair("How many windows?", "three", answer_type=AnswerType.LABEL, valid=False,
             invalid_reason="three is not a label"),
    ], usage=TokenUsage(1200, 80))
    assert [(e.question, e.answer) for e in stored] == [
        ("What colour is the floor?", "grey"), ("How many windows?", "three")]
    floor, windows = stored
    assert floor.id > 0 and floor.image_id == image
    assert (floor.provenance, floor.backend, floor.model) == (Provenance.GENERATED, "gemini",
                                                              "flash")
    assert floor.created_at is not None and floor.created_at.utcoffset() is not None
    assert (windows.valid, windows.invalid_reason, windows.answer_type) == (
        False, "three is not a label", AnswerType.LABEL)
    # Read back from the file, oldest first.
    assert project.qa_entries(image) == stored
    # The answer's tokens are on the first version stored, so they add up to what was paid.
    assert [(v.input_tokens, v.output_tokens) for v in project.qa_history(floor.id)] == [
        (1200, 80)]
    assert [(v.input_tokens, v.provenance) for v in project.qa_history(windows.id)] == [
        (0, Provenance.GENERATED)]
    # A second run asks nothing already asked; a generated pair is no undo step.
    assert project.add_qa(image, [pair("how many windows?"), pair("Is it day?")]) == [
        project.qa_entries(image)[-1]]
    assert [e.question for e in project.qa_entries(image)][-1] == "Is it day?"
    assert project.undo_label() is None
    with pytest.raises(InputError, match="No image"):
        project.add_qa(99_999, [pair("Any?")])
    with pytest.raises(InputError, match="not a valid image"):
        project.add_qa(ids_by_path(project)["broken.jpg"], [pair("Any?")])
    with pytest.raises(InputError, match="score"):
        project.add_qa(image, [pair("Scored?", score=9)])
    assert len(project.qa_entries(image)) == 3  # nothing of a refused batch was stored


def test_a_persons_question_is_one_undo_step(project: Project) -> None:
    image = ids_by_path(project)["IMG_0002.jpg"]
    entry = project.add_question(image, "  Is the door open? ", label="Add a question")
    assert (entry.question, entry.answer, entry.provenance) == (
        "Is the door open?", "", Provenance.MANUAL)
    assert (entry.backend, entry.model) == ("", "")
    assert project.undo_label() == "Add a question"
    assert project.unanswered_qa() == {image: [entry]}
    with pytest.raises(InputError, match="already has the question"):
        project.add_question(image, "is the DOOR open?")
    with pytest.raises(InputError, match="empty"):
        project.add_question(image, "  \n ")
    outcome = project.undo()
    assert outcome is not None and outcome.changed == [image]
    assert project.qa_entries(image) == [] and project.unanswered_qa() == {}
    project.redo()
    back = project.qa_entries(image)
    assert [(e.id, e.question, e.provenance) for e in back] == [
        (entry.id, "Is the door open?", Provenance.MANUAL)]
    assert [(v.question, v.provenance) for v in project.qa_history(entry.id)] == [
        ("Is the door open?", Provenance.MANUAL)]


def test_set_answer_never_replaces_what_a_person_checked_unless_asked(project: Project) -> None:
    image = ids_by_path(project)["IMG_0001.jpg"]
    model, person = project.add_qa(image, [pair("Floor?", "grey"), pair("Walls?", "white")])
    question = project.add_question(image, "Ceiling?")
    # A person's question without an answer is answered; an untouched model answer replaced.
    assert model_answer(project, question.id, "high", usage=TokenUsage(10, 2))
    assert model_answer(project, model.id, "marble")
    assert project.qa_entry(model.id).answer == "marble"
    # Confirmed, or edited by a person: left alone (the refused answer stays in the history).
    project.edit_qa(model.id, confirmed=True, score=5, label="Confirm")
    project.edit_qa(person.id, answer="off-white", label="Edit answer")
    for entry_id, kept in ((model.id, "marble"), (person.id, "off-white")):
        assert not model_answer(project, entry_id, "plastic")
        assert project.qa_entry(entry_id).answer == kept
        assert project.qa_history(entry_id)[-1].answer == "plastic"
    assert project.qa_entry(model.id).confirmed
    # Asked to: replaced, and a new answer is no longer confirmed or scored.
    assert model_answer(project, model.id, "stone", overwrite_confirmed=True, valid=False,
                        invalid_reason="not JSON")
    replaced = project.qa_entry(model.id)
    assert (replaced.answer, replaced.confirmed, replaced.score, replaced.valid) == (
        "stone", False, None, False)
    assert (replaced.provenance, replaced.backend, replaced.model) == (
        Provenance.GENERATED, "openai", "gpt-x")
    answered = project.qa_entry(question.id)
    assert (answered.answer, answered.provenance) == ("high", Provenance.GENERATED)
    assert project.qa_history(question.id)[-1].input_tokens == 10
    with pytest.raises(InputError, match="No question-answer pair"):
        model_answer(project, 99_999, "x")


def test_a_persons_edit_is_versioned_with_its_provenance(project: Project) -> None:
    image = ids_by_path(project)["IMG_0003.jpg"]
    (generated,) = project.add_qa(image, [pair("Lamp?", "on")])
    manual = project.add_question(image, "Rug?", "red")
    edited = project.edit_qa(generated.id, question="Is the lamp on?", answer="off",
                             tags=["light", " light ", "room"], note="checked twice",
                             label="Edit pair")
    assert (edited.question, edited.answer, edited.provenance) == (
        "Is the lamp on?", "off", Provenance.EDITED)
    assert (edited.backend, edited.model) == ("gemini", "flash")  # where the text came from
    assert edited.tags == ("light", "room") and edited.note == "checked twice"
    assert edited.updated_at is not None and generated.updated_at is not None
    assert edited.updated_at > generated.updated_at
    assert [(v.question, v.answer, v.provenance) for v in project.qa_history(generated.id)] == [
        ("Lamp?", "on", Provenance.GENERATED), ("Is the lamp on?", "off", Provenance.EDITED)]
    assert project.edit_qa(manual.id, answer="dark red", label="x").provenance is \
        Provenance.MANUAL
    # A score is 0-5 or None; confirming or scoring adds no version.
    assert project.edit_qa(manual.id, score=0, confirmed=True, label="Score").score == 0
    assert project.edit_qa(manual.id, score=None, label="Clear score").score is None
    assert len(project.qa_history(manual.id)) == 2
    for bad in ({"score": 6}, {"score": True}, {"score": -1}, {"question": " "},
                {"question": "rug?"}, {"answer_type": "essay"}, {"tags": "a, b"}):
        with pytest.raises(InputError):
            project.edit_qa(generated.id, label="bad", **bad)
    with pytest.raises(InputError, match="Unknown field"):
        project.edit_qa_many({generated.id: {"model": "me"}}, "bad")
    # Nothing changed: no step.
    label = project.undo_label()
    project.edit_qa(manual.id, note="", label="Nothing")
    assert project.undo_label() == label
    # Undo of the edit puts the model's text back, as a new version.
    while project.undo_label() != "Edit pair":
        project.undo()
    project.undo()
    back = project.qa_entry(generated.id)
    assert (back.question, back.answer, back.provenance, back.tags) == (
        "Lamp?", "on", Provenance.GENERATED, ())
    assert project.qa_history(generated.id)[-1].answer == "on"


def test_a_batch_confirm_is_one_undo_step(project: Project) -> None:
    ids = ids_by_path(project)
    one, two = ids["IMG_0001.jpg"], ids["IMG_0002.jpg"]
    entries = [*project.add_qa(one, [pair("A?"), pair("B?")]), *project.add_qa(two, [pair("C?")])]
    changed = project.edit_qa_many(
        {e.id: {"confirmed": True, "score": 4} for e in entries}, "Confirm 3 pairs")
    assert changed == [e.id for e in entries]
    assert project.qa_stats().confirmed == 3
    assert project.undo_label() == "Confirm 3 pairs"
    # Unchanged pairs are no part of a step; an unknown pair refuses the whole batch.
    assert project.edit_qa_many({entries[0].id: {"confirmed": True}}, "again") == []
    with pytest.raises(InputError, match="No question-answer pair"):
        project.edit_qa_many({entries[0].id: {"score": 1}, 99_999: {"score": 1}}, "bad")
    assert project.qa_entry(entries[0].id).score == 4
    outcome = project.undo()
    assert outcome is not None and sorted(outcome.changed) == sorted([one, two])
    assert all(not e.confirmed and e.score is None
               for e in [*project.qa_entries(one), *project.qa_entries(two)])
    assert project.undo_label() is None
    project.redo()
    assert project.qa_stats().confirmed == 3


def test_deleted_pairs_come_back_with_their_ids_and_history(project: Project) -> None:
    image = ids_by_path(project)["IMG_0004.jpg"]
    first, second, third = project.add_qa(image, [pair("A?", "a"), pair("B?", "b"),
                                                  pair("C?", "c")])
    project.edit_qa(second.id, answer="bee", label="Edit")
    assert project.delete_qa([first.id, second.id], "Delete 2 pairs") == 2
    assert [e.id for e in project.qa_entries(image)] == [third.id]
    (new,) = project.add_qa(image, [pair("D?")])
    assert new.id > third.id  # ids are never reused
    project.undo()
    back = project.qa_entries(image)
    assert [e.id for e in back] == [first.id, second.id, third.id, new.id]
    assert back[1].answer == "bee" and back[1].provenance is Provenance.EDITED
    assert back[0].created_at == first.created_at
    assert [v.answer for v in project.qa_history(second.id)] == ["b", "bee"]
    project.redo()
    assert [e.id for e in project.qa_entries(image)] == [third.id, new.id]
    with pytest.raises(InputError, match="No question-answer pair"):
        project.delete_qa([first.id], "again")


def test_undo_and_redo_survive_closing_and_reopening(dataset: Path) -> None:
    with new_project(dataset) as project:
        image = ids_by_path(project)["IMG_0001.jpg"]
        (entry,) = project.add_qa(image, [pair("Floor?", "grey")])
        project.edit_qa(entry.id, answer="marble", confirmed=True, label="Edit answer")
    with Project.open(dataset / "hall.loraproj") as project:
        assert project.undo_label() == "Edit answer"
        project.undo()
        assert (project.qa_entry(entry.id).answer, project.qa_entry(entry.id).confirmed) == (
            "grey", False)
    with Project.open(dataset / "hall.loraproj") as project:
        assert project.redo_label() == "Edit answer"
        project.redo()
        assert project.qa_entry(entry.id).answer == "marble"


def test_undo_leaves_alone_a_pair_a_model_answered_since(project: Project) -> None:
    ids = ids_by_path(project)
    image, other = ids["IMG_0001.jpg"], ids["IMG_0002.jpg"]
    question = project.add_question(image, "Sky?")
    (kept,) = project.add_qa(other, [pair("Tree?", "oak")])
    project.edit_qa_many({kept.id: {"score": 3}}, "Score")
    project.undo()  # takes the score back
    project.redo()
    assert project.set_answer(question.id, "blue", backend="gemini", model="flash")
    # The step that added the question: the image changed since (a model answered it).
    while project.undo_label() != "Add question":
        outcome = project.undo()
        assert outcome is not None
    outcome = project.undo()
    assert outcome is not None and outcome.skipped == [image] and outcome.changed == []
    assert project.qa_entry(question.id).answer == "blue"
    # An edit undone after a model re-answered on request: the model's answer stays.
    project.edit_qa(kept.id, answer="pine", label="Edit answer")
    project.set_answer(kept.id, "birch", backend="gemini", model="pro",
                       overwrite_confirmed=True)
    outcome = project.undo()
    assert outcome is not None and outcome.skipped == [other]
    assert project.qa_entry(kept.id).answer == "birch"


# ---------------------------------------------------------------------- counts and streaming


def test_counts_and_stats_of_a_project_file(dataset: Path) -> None:
    with new_project(dataset) as project:
        ids = ids_by_path(project)
        one, two = ids["IMG_0001.jpg"], ids["sub/IMG_0009.png"]
        project.add_qa(one, [pair("A?", score=2, tags=("floor",)),
                             pair("B?", score=5, confirmed=True, tags=("floor", "light")),
                             pair("C?", answer_type=AnswerType.LABEL, valid=False)])
        project.add_qa(two, [pair("D?", answer_type=AnswerType.CUSTOM_FORMAT, score=3)])
        project.add_question(two, "E?")
    with Project.open(dataset / "hall.loraproj", read_only=True) as project:
        counts = project.qa_counts()
        assert set(counts) == {one, two}
        assert (counts[one].total, counts[one].confirmed, counts[one].invalid,
                counts[one].best_score, counts[one].tags) == (
            3, 1, 1, 5, frozenset({"floor", "light"}))
        assert (counts[two].total, counts[two].best_score, counts[two].tags) == (
            2, 3, frozenset())
        assert project.qa_counts([two, ids["IMG_0003.jpg"]]) == {two: counts[two]}
        stats = project.qa_stats()
        assert (stats.entries, stats.confirmed, stats.invalid, stats.images_with_qa) == (
            5, 1, 1, 2)
        assert stats.average_score == pytest.approx((2 + 5 + 3) / 3)
        assert stats.by_answer_type == {"text": 3, "label": 1, "custom_format": 1}
        with pytest.raises(ProjectReadOnlyError):
            project.add_question(one, "F?")
        with pytest.raises(ProjectReadOnlyError):
            project.add_qa(one, [pair("F?")])


def test_an_empty_project_has_no_counts(project: Project) -> None:
    stats = project.qa_stats()
    assert (stats.entries, stats.confirmed, stats.average_score, stats.by_answer_type,
            stats.images_with_qa, stats.invalid) == (0, 0, None, {}, 0, 0)
    assert project.qa_counts() == {} and list(project.qa_images()) == []


def test_qa_images_are_streamed_in_path_order(project: Project, dataset: Path,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(project_qa, "STREAM_CHUNK", 2)
    ids = ids_by_path(project)
    for name in ("sub/IMG_0009.png", "IMG_0003.jpg", "IMG_0001.jpg"):
        project.add_qa(ids[name], [pair(f"Which file is {name}?", name), pair("Second?")])
    stream = project.qa_images()
    first = next(stream)
    assert (first.image_id, first.rel_path, first.path) == (
        ids["IMG_0001.jpg"], "IMG_0001.jpg", dataset / "IMG_0001.jpg")
    assert [e.question for e in first.entries] == ["Which file is IMG_0001.jpg?", "Second?"]
    # The next chunk is read only when it is reached: a pair added now is in it.
    project.add_question(ids["sub/IMG_0009.png"], "Added while streaming?")
    rest = list(stream)
    assert [(i.rel_path, len(i.entries)) for i in rest] == [
        ("IMG_0003.jpg", 2), ("sub/IMG_0009.png", 3)]
    assert rest[1].path == dataset / "sub" / "IMG_0009.png"
    assert [i.image_id for i in project.qa_images(image_ids=[ids["IMG_0003.jpg"]])] == [
        ids["IMG_0003.jpg"]]
    # What the exports read: the pairs, in this order, with the image files.
    project.delete_qa([rest[1].entries[-1].id], "Delete the question")
    (tmp_path / "out").mkdir()
    result = export_qa(project.qa_images(), tmp_path / "out" / "qa.jsonl", style="vqa",
                       jsonl=True)
    records = [json.loads(line) for line in
               (tmp_path / "out" / "qa.jsonl").read_text(encoding="utf-8").splitlines()]
    assert result.pairs == 6 and result.images == 3
    assert [r["answer"] for r in records if r["question"] != "Second?"] == [
        "IMG_0001.jpg", "IMG_0003.jpg", "sub/IMG_0009.png"]


def test_select_for_qa_and_unanswered(project: Project, dataset: Path) -> None:
    ids = ids_by_path(project)
    project.add_qa(ids["IMG_0002.jpg"], [pair("Done?")])
    asked = project.add_question(ids["IMG_0004.jpg"], "Open?")
    valid = [ids[name] for name in ("IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg",
                                    "IMG_0004.jpg", "sub/IMG_0009.png")]
    assert project.select_for_qa("all") == valid
    assert project.select_for_qa("missing") == [ids["IMG_0001.jpg"], ids["IMG_0003.jpg"],
                                                ids["sub/IMG_0009.png"]]
    assert project.select_for_qa("selected", [ids["IMG_0004.jpg"], ids["broken.jpg"],
                                              ids["IMG_0001.jpg"]]) == [ids["IMG_0001.jpg"],
                                                                        ids["IMG_0004.jpg"]]
    (dataset / "IMG_0003.jpg").unlink()  # a file gone is never taken, as for captioning
    assert ids["IMG_0003.jpg"] not in project.select_for_qa("all")
    with pytest.raises(InputError, match="Unknown question-answer batch"):
        project.select_for_qa("failed")
    assert project.unanswered_qa() == {ids["IMG_0004.jpg"]: [asked]}
    assert project.unanswered_qa([ids["IMG_0002.jpg"]]) == {}


# ---------------------------------------------------------------------- settings


def test_labels_and_schema_are_checked_settings(dataset: Path) -> None:
    with new_project(dataset) as project:
        assert (project.settings.qa_labels, project.settings.qa_schema) == ((), "")
        project.update_settings(qa_labels=[" indoor ", "outdoor"],
                                qa_schema='{"type": "object"}')
        assert project.settings.qa_labels == ("indoor", "outdoor")
        project.update_settings(qa_schema={"type": "array"})
        assert json.loads(project.settings.qa_schema) == {"type": "array"}
        for bad, message in (({"qa_labels": ["a", "A"]}, "twice"),
                             ({"qa_labels": [""]}, "empty"),
                             ({"qa_labels": ["a\nb"]}, "line break"),
                             ({"qa_labels": ["x" * 201]}, "longer than 200"),
                             ({"qa_schema": "[1, 2]"}, "JSON object"),
                             ({"qa_schema": "{type: x}"}, "not valid JSON")):
            with pytest.raises(InputError, match=message):
                project.update_settings(**bad)
        project.update_settings(qa_schema="")
    with Project.open(dataset / "hall.loraproj", read_only=True) as project:
        assert project.settings.qa_labels == ("indoor", "outdoor")
        assert project.settings.qa_schema == ""


# ---------------------------------------------------------------------- the file


def test_a_version_6_project_is_backed_up_and_gains_the_pairs(dataset: Path) -> None:
    with new_project(dataset) as project:
        ids = ids_by_path(project)
        project.edit_caption(ids["IMG_0001.jpg"], "a hall, oak doors")
        project.set_review(ids["IMG_0001.jpg"], review=Review.APPROVED, rating=4)
    path = dataset / "hall.loraproj"
    make_version_6(path)
    with Project.open(path, read_only=True) as project:  # read-only: not migrated, no pairs
        assert project.qa_entries(ids["IMG_0001.jpg"]) == [] and project.qa_counts() == {}
        assert list(project.qa_images()) == [] and project.qa_stats().entries == 0
        assert (project.settings.trigger, project.settings.qa_labels) == ("hall", ())
    assert not (dataset / "hall.v6-backup.loraproj").exists()
    with Project.open(path) as project:
        record = project.image(ids["IMG_0001.jpg"])
        assert record.caption is not None and record.caption.body == "a hall, oak doors"
        assert (record.review, record.rating) == (Review.APPROVED, 4)
        assert project.settings.qa_labels == () and project.qa_stats().entries == 0
        assert project.undo_label() == "Approve 1 image"  # the stored undo stack too
        (entry,) = project.add_qa(ids["IMG_0001.jpg"], [pair("Doors?", "oak")])
    # The backup is the format-6 file as it was: it opens (read-only, unmigrated) as one.
    backup = dataset / "hall.v6-backup.loraproj"
    assert (_check_header(backup), _check_header(path)) == (6, 8)
    with Project.open(backup, read_only=True) as old:
        assert old.image(ids["IMG_0001.jpg"]).caption == record.caption
        assert old.qa_counts() == {}
    with Project.open(path, read_only=True) as project:
        assert project.qa_entry(entry.id).answer == "oak"


def test_a_deleted_image_takes_its_pairs_with_it(project: Project, dataset: Path) -> None:
    image = ids_by_path(project)["IMG_0001.jpg"]
    project.add_qa(image, [pair("A?"), pair("B?")])
    project.close()
    conn = sqlite3.connect(dataset / "hall.loraproj")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("DELETE FROM images WHERE id = ?", (image,))
    conn.commit()
    counts = [conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
              for table in ("qa_entries", "qa_versions")]
    conn.close()
    assert counts == [0, 0]


@pytest.mark.parametrize(("statement", "problem"), [
    ("UPDATE qa_entries SET answer_type = 'essay'", "has the answer type \"essay\""),
    ("UPDATE qa_entries SET score = 9", "has the score \"9\", not 0 to 5"),
    ("UPDATE qa_entries SET tags = 'floor'", "tags that are not a JSON list"),
    ("UPDATE qa_entries SET confirmed = 2", "confirmed or valid"),
    ("UPDATE qa_entries SET provenance = 'imported'", "has the provenance \"imported\""),
    ("UPDATE qa_entries SET question = x'00ff'", "not text"),
    ("UPDATE qa_entries SET created_at = 'yesterday'", "qa_entries.created_at is not a time"),
    ("UPDATE qa_versions SET input_tokens = -1", "token count below 0"),
    ("UPDATE qa_versions SET provenance = 'alien'", "provenance \"alien\""),
    ("UPDATE project SET qa_labels = '[\"a\", \"A\"]'", "question-answer settings"),
    ("UPDATE project SET qa_schema = '[1]'", "question-answer settings"),
    ("DROP TABLE qa_versions", "the table qa_versions is missing"),
])
def test_a_damaged_pair_is_refused_on_open(project: Project, dataset: Path, statement: str,
                                           problem: str) -> None:
    project.add_qa(ids_by_path(project)["IMG_0001.jpg"], [pair("A?", tags=("x",))])
    project.close()
    path = dataset / "hall.loraproj"
    execute(path, statement)
    for read_only in (True, False):
        with pytest.raises(ProjectError) as caught:
            Project.open(path, read_only=read_only)
        assert str(caught.value).startswith("hall.loraproj is damaged: ")
        assert problem in str(caught.value)


def test_a_damaged_undo_state_of_pairs_is_refused(project: Project, dataset: Path) -> None:
    image = ids_by_path(project)["IMG_0001.jpg"]
    entry = project.add_question(image, "A?")
    project.close()
    path = dataset / "hall.loraproj"
    payload = json.dumps([{"image": image, "before": {"qa": [[entry.id, None]]},
                           "after": {"qa": [[entry.id, ["A?", "", "text", False, 9, [], "",
                                                        True, "", "manual", "", "",
                                                        "2024-01-01T00:00:00+00:00"]]]}}])
    execute(path, f"UPDATE undo_steps SET payload = '{payload}'")
    with Project.open(path) as opened, pytest.raises(
            ProjectError, match="is damaged: a stored undo step cannot be read"):
        opened.undo()


def test_a_format_9_project_is_refused(project: Project, dataset: Path) -> None:
    project.close()
    path = dataset / "hall.loraproj"
    execute(path, "PRAGMA user_version = 9")
    before = path.read_bytes()
    with pytest.raises(ProjectVersionError, match=r"project format 9; this version reads up "
                                                  r"to 8"):
        Project.open(path)
    assert path.read_bytes() == before
