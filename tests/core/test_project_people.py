"""The stored parts of multi-person captions (format 6): kept the moment they are paid for,
reused only for the same image file, backend and model, checked on open, migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from loracap.core.errors import InputError, ProjectError
from loracap.core.project import Project
from loracap.core.project_people import detected_people, detection_text
from loracap.core.records import PersonPart
from tests.core.test_project import ids_by_path, make_dataset, make_version_5, new_project


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path)


def part(kind: str, *, model: str = "flash", size: int = 100, mtime: float = 5.0,
         **fields: object) -> PersonPart:
    return PersonPart(kind=kind, backend="gemini", model=model, file_size=size, mtime=mtime,
                      **fields)  # type: ignore[arg-type]


def test_parts_are_kept_and_the_latest_detection_is_reused(dataset: Path) -> None:
    with new_project(dataset) as project:
        image = ids_by_path(project)["IMG_0001.jpg"]
        three = detection_text([((0, 0, 5, 5), "man")] * 3)
        two = detection_text([((10, 20, 110, 220), "woman"), ((120, 20, 220, 220), "man")])
        project.store_person_part(image, part("detection", text=three))  # an older run
        project.store_person_part(image, part("person", position=0, text="old"))
        project.store_person_part(image, part("detection", text=two, input_tokens=300))
        first = project.store_person_part(image, part(
            "person", position=0, box=(10, 20, 110, 220), gender="woman", text="A woman."))
        project.store_person_part(image, part("person", position=1, box=(120, 20, 220, 220),
                                              gender="man", text="A man."))
        project.store_person_part(image, part("person", position=0, box=(10, 20, 110, 220),
                                              gender="woman", text="A woman, again."))
        assert first.id > 0 and first.box == (10, 20, 110, 220)
        reuse = project.reusable_parts(image, backend="gemini", model="flash", file_size=100,
                                       mtime=5.0)
        assert [(p.kind, p.position, p.text) for p in reuse] == [
            ("detection", 0, two), ("person", 0, "A woman, again."), ("person", 1, "A man.")]
        assert detected_people(reuse[0].text) == [((10, 20, 110, 220), "woman"),
                                                  ((120, 20, 220, 220), "man")]
        assert detected_people("not json") == [] and detected_people('{"box": 1}') == []
        # Another model, another file state: nothing to reuse.
        assert project.reusable_parts(image, backend="gemini", model="pro", file_size=100,
                                      mtime=5.0) == []
        assert project.reusable_parts(image, backend="gemini", model="flash", file_size=100,
                                      mtime=6.0) == []
        assert project.people_found() == {image: 2}
        assert len(project.person_parts(image)) == 6
        assert project.clear_person_parts(image) == 6
        assert project.person_parts(image) == [] and project.people_found() == {}
        with pytest.raises(InputError):
            project.store_person_part(image, part("crowd"))
        with pytest.raises(InputError):
            project.store_person_part(99_999, part("scene"))


def test_aliases_and_the_order_of_people_are_settings(dataset: Path) -> None:
    with new_project(dataset) as project:
        assert (project.settings.aliases, project.settings.people_order) == ((), "left")
        project.update_settings(aliases=["Anna", "ohwx_ben"], people_order="size",
                                detector="/models/yolo11n.onnx")
        assert project.settings.aliases == ("Anna", "ohwx_ben")
        assert project.settings.detector == "/models/yolo11n.onnx"
        for bad in ({"aliases": ["anna", "ANNA"]}, {"aliases": ["a: b"]},
                    {"people_order": "height"}, {"detector": "a.onnx\nb"}):
            with pytest.raises(InputError):
                project.update_settings(**bad)
    with Project.open(dataset / "hall.loraproj", read_only=True) as project:
        assert project.settings.people_order == "size"


@pytest.mark.parametrize(("statement", "problem"), [
    ("UPDATE person_parts SET kind = 'crowd'", "has the kind"),
    ("UPDATE person_parts SET box = '[5, 5, 1, 1]'", "has the box"),
    ("UPDATE person_parts SET gender = 'robot'", "has the gender"),
    ("UPDATE person_parts SET position = -1", "has the position"),
    ("UPDATE person_parts SET input_tokens = -5", "below 0"),
    ("UPDATE project SET aliases = '[\"a\", \"A\"]'", "multi-person settings"),
    ("UPDATE project SET people_order = 'height'", "multi-person settings"),
])
def test_a_damaged_part_or_setting_is_refused_on_open(dataset: Path, statement: str,
                                                      problem: str) -> None:
    with new_project(dataset) as project:
        image = ids_by_path(project)["IMG_0001.jpg"]
        project.store_person_part(image, part("person", box=(1, 1, 5, 5), text="A person."))
    path = dataset / "hall.loraproj"
    conn = sqlite3.connect(path)
    conn.execute(statement)
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError, match=f"damaged: .*{problem}"):
        Project.open(path, read_only=True)


def test_a_version_5_project_gains_the_parts_table(dataset: Path) -> None:
    with new_project(dataset):
        pass
    path = dataset / "hall.loraproj"
    make_version_5(path)
    with Project.open(path) as project:
        image = project.images()[0].id
        assert project.settings.aliases == () and project.person_parts(image) == []
        project.store_person_part(image, part("scene", text="An office."))
    assert (dataset / "hall.v5-backup.loraproj").is_file()
