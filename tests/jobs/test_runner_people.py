"""Multi-person captions through the runner, with the real google-genai client and the fake
Gemini server: 1 + N + 1 requests per image under the batch's rules, the crop sent for each
person, aliases, the zero-person path, partial failure and reuse of paid parts."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loracap.core.backends.gemini import GeminiCaptioner
from loracap.core.captioning_people import people_options
from loracap.core.errors import AuthenticationError
from loracap.core.people import PersonBox, box_from_gemini, crop_rect
from loracap.core.project import Project
from loracap.core.prompts import Profile, build_instructions
from loracap.core.records import CaptionMode
from loracap.core.scan import scan_folder
from loracap.jobs.runner import BatchOptions, BatchSummary, CaptionRunner
from loracap.selftest.fake_gemini import DEFAULT_PEOPLE
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.photos import make_photo

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


def run(qtbot: Any, project: Project, server: FakeGeminiServer, **options: Any
        ) -> BatchSummary:
    options.setdefault("base_delay_s", 0.01)
    options.setdefault("workers", 1)
    settings = project.settings
    captioner = GeminiCaptioner("test-key", base_url=server.base_url, timeout_s=10)
    runner = CaptionRunner(project, captioner,
                           build_instructions(Profile(settings.profile)),
                           BatchOptions(people=people_options(settings), **options))
    try:
        with qtbot.waitSignal(runner.finished, timeout=60_000) as blocker:
            runner.start()
        runner.wait()
    finally:
        captioner.close()
    return blocker.args[0]


def body(project: Project) -> str:
    [record] = project.images()
    return record.caption.body if record.caption else ""


def test_each_person_is_described_under_an_alias_then_the_scene(
        qtbot: Any, project: Project, server: FakeGeminiServer) -> None:
    summary = run(qtbot, project, server)
    assert (summary.done, summary.failed) == (1, [])
    lines = body(project).splitlines()
    assert [line.split(":")[0] for line in lines] == ["sksA", "sksB", "Scene"]
    assert all(line.endswith(".") for line in lines)
    requests = server.generate_requests
    assert len(requests) == 4  # 1 detection + 2 people + 1 scene
    assert "people" in requests[0].schema_properties
    # Left to right: the woman's box (xmin 80) is sksA.
    [record] = project.images()
    assert project.people_found() == {record.id: 2}
    parts = project.person_parts(record.id)
    assert [(p.kind, p.gender) for p in parts] == [
        ("detection", "unknown"), ("person", "woman"), ("person", "man"), ("scene", "unknown")]
    # Every request was paid for and counted with the caption.
    [usage] = project.token_usage()
    assert (usage.input_tokens, usage.output_tokens) == (4 * 270, 4 * 20)


def test_the_crop_sent_for_each_person_matches_its_box(
        qtbot: Any, project: Project, server: FakeGeminiServer) -> None:
    run(qtbot, project, server)
    person_requests = server.generate_requests[1:3]
    for request, person in zip(person_requests, DEFAULT_PEOPLE, strict=True):
        box = box_from_gemini(person["box_2d"], 640, 480)
        left, top, right, bottom = crop_rect(box, 640, 480)
        with Image.open(io.BytesIO(request.image)) as sent:
            assert sent.size == (right - left, bottom - top)
            # The margin around the box is dimmed to 30 %, the box itself is not.
            inside = sent.getpixel(((box.left - left + box.right - left) // 2,
                                    (box.top - top + box.bottom - top) // 2))
            assert max(inside) > 40
    scene = server.generate_requests[3]
    with Image.open(io.BytesIO(scene.image)) as sent:
        assert sent.size == (640, 480)


def test_boxes_are_scaled_to_the_image_as_it_is_seen_after_exif_orientation(
        qtbot: Any, tmp_path: Path, server: FakeGeminiServer) -> None:
    folder = tmp_path / "sideways"
    # Stored 640 x 480, shown 480 x 640 (EXIF orientation 6: rotate 90° clockwise).
    make_photo(folder / "IMG_0001.jpg", size=(640, 480), orientation=6)
    with Project.create(folder / "s.loraproj", trigger="sideways",
                        profile=Profile.MULTI_PERSON.value) as project:
        project.add_scanned(scan_folder(folder))
        run(qtbot, project, server)
    box = box_from_gemini(DEFAULT_PEOPLE[0]["box_2d"], 480, 640)
    left, top, right, bottom = crop_rect(box, 480, 640)
    with Image.open(io.BytesIO(server.generate_requests[1].image)) as sent:
        assert sent.size == (right - left, bottom - top)


def test_custom_aliases_and_the_order_by_size(qtbot: Any, project: Project,
                                             server: FakeGeminiServer) -> None:
    project.update_settings(aliases=["anna"], people_order="size")
    people = [{"box_2d": [100, 50, 400, 200], "gender": "man"},  # small, left
              {"box_2d": [100, 400, 990, 990], "gender": "woman"},  # large, right
              {"box_2d": [500, 250, 700, 350], "gender": "unknown"}]  # smallest
    server.queue_replies(Reply.json({"people": people}))
    run(qtbot, project, server)
    assert [line.split(":")[0] for line in body(project).splitlines()] == [
        "anna", "sksB", "unidentified person", "Scene"]


def test_an_image_without_people_gets_the_ordinary_caption(
        qtbot: Any, project: Project, server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.json({"people": []}))
    summary = run(qtbot, project, server)
    assert summary.done == 1
    assert "\n" not in body(project) and body(project)
    assert len(server.generate_requests) == 2  # detection, then the ordinary caption
    [record] = project.images()
    assert project.people_found() == {record.id: 0}


def test_a_failed_part_fails_the_image_and_a_retry_pays_only_for_what_is_missing(
        qtbot: Any, project: Project, server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.json({"people": DEFAULT_PEOPLE}),
                         Reply.caption("A young woman with long brown hair in a blue dress."),
                         Reply.blocked())
    summary = run(qtbot, project, server)
    assert summary.done == 0 and len(summary.failed) == 1
    assert summary.failed[0][2].startswith("sksB: Gemini blocked this image")
    [record] = project.images()
    assert project.image(record.id).failed and record.caption is None
    assert [p.kind for p in project.person_parts(record.id)] == ["detection", "person"]
    # The two answers received were paid for, though the image failed.
    [usage] = project.token_usage()
    assert (usage.answers, usage.input_tokens, usage.output_tokens) == (0, 2 * 270, 2 * 20)

    server.reset()
    summary = run(qtbot, project, server)
    assert summary.done == 1
    # Only the second person and the scene were asked for again.
    assert len(server.generate_requests) == 2
    [usage] = project.token_usage()  # 2 paid before, 2 now: nothing paid twice
    assert (usage.answers, usage.input_tokens, usage.output_tokens) == (1, 4 * 270, 4 * 20)
    lines = body(project).splitlines()
    assert lines[0] == "sksA: A young woman with long brown hair in a blue dress."
    assert lines[1].startswith("sksB: ") and lines[2].startswith("Scene: ")


def test_a_changed_image_file_is_detected_again(qtbot: Any, project: Project,
                                                server: FakeGeminiServer) -> None:
    run(qtbot, project, server)
    [record] = project.images()
    make_photo(record.abs_path, size=(640, 480), seed=99)  # the file changed
    server.reset()
    run(qtbot, project, server, mode=CaptionMode.ALL)
    assert len(server.generate_requests) == 4


def test_a_refused_key_stops_the_batch_before_anything_is_stored(
        qtbot: Any, project: Project, server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.invalid_key())
    summary = run(qtbot, project, server)
    assert isinstance(summary.stop_error, AuthenticationError)
    [record] = project.images()
    assert project.person_parts(record.id) == [] and not project.image(record.id).failed


def test_the_detection_answer_is_json_with_boxes(server: FakeGeminiServer) -> None:
    """The fake server's default detection answer parses into two people (left, right)."""
    from loracap.core.people import parse_detection

    boxes = parse_detection(json.dumps({"people": DEFAULT_PEOPLE}), 640, 480)
    assert [b.gender for b in boxes] == ["woman", "man"]
    assert all(isinstance(b, PersonBox) for b in boxes)


# --- LoRA tags mode ------------------------------------------------------------------------------


@pytest.fixture
def tagger_dir(tmp_path: Path) -> Path:
    pytest.importorskip("onnxruntime")
    from tests.fakes.tiny_tagger import write_tagger

    return write_tagger(tmp_path / "tiny-tagger")


def run_tags(qtbot: Any, project: Project, server: FakeGeminiServer, tagger_dir: Path
             ) -> BatchSummary:
    from loracap.core.backends.base import BackendConfig
    from loracap.core.backends.registry import create_captioner, load_captioner

    project.update_settings(profile=Profile.MULTI_PERSON_TAGS.value)
    settings = project.settings
    tagger = BackendConfig("wd14", "", model_dir=tagger_dir,
                           options={"general_threshold": 0.01, "character_threshold": 0.01})
    captioner = create_captioner(BackendConfig("gemini", "gemini-flash-latest",
                                               server.base_url, "test-key", hints=tagger))
    load_captioner(captioner)
    runner = CaptionRunner(project, captioner, build_instructions(Profile(settings.profile)),
                           BatchOptions(people=people_options(settings), workers=1,
                                        base_delay_s=0.01))
    try:
        with qtbot.waitSignal(runner.finished, timeout=60_000) as blocker:
            runner.start()
        runner.wait()
    finally:
        captioner.close()
    return blocker.args[0]


def test_lora_tags_mode_tags_each_person_and_the_scene(
        qtbot: Any, project: Project, server: FakeGeminiServer, tagger_dir: Path) -> None:
    summary = run_tags(qtbot, project, server, tagger_dir)
    assert summary.done == 1
    text = body(project)
    assert "\n" not in text
    pieces = text.split(", ")
    assert pieces[0] == "person1" and "person2" in pieces and "scene" in pieces
    assert pieces.index("person1") < pieces.index("person2") < pieces.index("scene")
    # Between the aliases: the tagger's tags of each crop.
    assert pieces.index("person2") > 1 and len(pieces) > pieces.index("scene") + 1
    assert len(server.generate_requests) == 1  # only the detection goes to the vision model


def test_lora_tags_mode_without_people_tags_the_whole_image(
        qtbot: Any, project: Project, server: FakeGeminiServer, tagger_dir: Path) -> None:
    server.queue_replies(Reply.json({"people": []}))
    summary = run_tags(qtbot, project, server, tagger_dir)
    assert summary.done == 1
    text = body(project)
    assert text and "person1" not in text and "scene" not in text.split(", ")


# --- a local person detector ---------------------------------------------------------------------


def test_a_local_detector_finds_the_people_and_no_whole_image_is_sent_to_find_them(
        qtbot: Any, project: Project, server: FakeGeminiServer, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from tests.fakes.tiny_detector import build_fixed, save

    # Two people in a 64 x 64 input (cx, cy, w, h in input pixels, then the person score): the
    # 640 x 480 photo is letterboxed into it at scale 0.1.
    model = save(build_fixed([[16, 32, 20, 40, 0.9], [48, 32, 20, 40, 0.8]]),
                 tmp_path / "yolo.onnx")
    project.update_settings(detector=str(model))
    summary = run(qtbot, project, server)
    assert summary.done == 1
    assert [line.split(":")[0] for line in body(project).splitlines()] == [
        "sksA", "sksB", "Scene"]
    requests = server.generate_requests
    assert len(requests) == 3  # two people and the scene; no detection request
    assert all("people" not in r.schema_properties for r in requests)
    [record] = project.images()
    assert project.people_found() == {record.id: 2}
