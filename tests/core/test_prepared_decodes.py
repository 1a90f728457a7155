"""What captioning records of the images it prepared (:mod:`loracap.core.prepared_decodes`):
only whole decodes, only by captioners that say they make them, never in a project open
read-only; a real project file and real JPEGs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from loracap.core.backends.base import BackendConfig, prepare_decodes_whole, prepare_jpeg
from loracap.core.backends.registry import BACKENDS, create_captioner
from loracap.core.errors import InputError, UndecodableImageError
from loracap.core.prepared_decodes import PreparedDecodes
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from tests.core.test_export_undecodable import make_garbage_jpeg
from tests.core.test_project import make_version_7
from tests.fakes.photos import make_photo

NAMES = ["IMG_1.jpg", "IMG_2.jpg"]


def _config(name: str, tmp_path: Path) -> BackendConfig:
    if name == "wd14":
        pytest.importorskip("onnxruntime")
        from tests.fakes.tiny_tagger import write_tagger

        return BackendConfig("wd14", "", model_dir=write_tagger(tmp_path / "tiny-tagger"))
    # No request is sent: building a captioner does not reach its server.
    model = BACKENDS[name].default_model or "a-model"
    return BackendConfig(name, model, "http://127.0.0.1:9/v1", "test-key")


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_registered_backend_says_its_preparation_decodes_whole(
        name: str, tmp_path: Path) -> None:
    captioner = create_captioner(_config(name, tmp_path))
    try:
        assert prepare_decodes_whole(captioner)
    finally:
        captioner.close()


def test_combined_captions_prepare_by_a_whole_decode(tmp_path: Path) -> None:
    hints = _config("wd14", tmp_path)
    config = BackendConfig("openai", "gpt-4o-mini", "http://127.0.0.1:9/v1", hints=hints)
    captioner = create_captioner(config)
    try:
        assert type(captioner).__name__ == "HintedCaptioner"
        assert prepare_decodes_whole(captioner)
    finally:
        captioner.close()


class Unknown:
    backend, model = "mine", "mine"

    def prepare(self, path: Path, max_side: int) -> bytes:
        return prepare_jpeg(path, max_side)


def test_a_captioner_that_does_not_say_so_is_not_taken_to_decode_whole() -> None:
    assert not prepare_decodes_whole(Unknown())
    assert not prepare_decodes_whole(object())
    odd = Unknown()
    odd.prepare_decodes_whole = "yes"  # type: ignore[attr-defined]
    assert not prepare_decodes_whole(odd)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    hall = tmp_path / "hall"
    for seed, name in enumerate(NAMES, start=1):
        make_photo(hall / name, size=(640, 480), seed=seed)
    return hall


def state(path: Path) -> tuple[int, float]:
    info = os.lstat(path)
    return info.st_size, info.st_mtime


def files(project: Project) -> dict[int, Path]:
    return {record.id: record.abs_path for record in project.images()}


def test_a_preparation_records_the_state_before_it_and_a_damaged_one_clears_it(
        folder: Path) -> None:
    with Project.create(folder / "hall.loraproj", trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
        paths = files(project)
        first, second = sorted(paths)
        decodes = PreparedDecodes(project, paths)
        for image_id in (first, second):
            decodes.prepare(prepare_jpeg, paths[image_id], 512)
        assert decodes.save() == 2
        assert project.decoded_states() == {first: state(paths[first]),
                                            second: state(paths[second])}
        assert decodes.save() == 0  # nothing new

        shutil.copyfile(make_garbage_jpeg(folder / "garbage.jpg"), paths[first])
        os.remove(paths[second])
        decodes = PreparedDecodes(project, paths)
        with pytest.raises(UndecodableImageError):
            decodes.prepare(prepare_jpeg, paths[first], 512)
        with pytest.raises(InputError):  # gone: no fault of its pixels, its record stays
            decodes.prepare(prepare_jpeg, paths[second], 512)
        assert decodes.save() == 1
        assert set(project.decoded_states()) == {second}


def test_a_project_open_read_only_records_nothing(folder: Path) -> None:
    path = folder / "hall.loraproj"
    with Project.create(path, trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
    with Project.open(path, read_only=True) as project:
        decodes = PreparedDecodes(project, files(project))
        for image_path in files(project).values():
            assert decodes.prepare(prepare_jpeg, image_path, 512).startswith(b"\xff\xd8")
        assert decodes.save() == 0
    with Project.open(path) as project:
        assert project.decoded_states() == {}
    make_version_7(path)  # no such columns: opened read-only, nothing read or written
    with Project.open(path, read_only=True) as project:
        decodes = PreparedDecodes(project, files(project))
        for image_path in files(project).values():
            decodes.prepare(prepare_jpeg, image_path, 512)
        assert decodes.save() == 0 and project.decoded_states() == {}
