"""Captioning through Gemini's Batch API: the real google-genai client against the fake Batch
and File API on 127.0.0.1, a real project file, real photos."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loracap.core.backends.base import TokenUsage, prepare_jpeg
from loracap.core.batches.base import BatchRequest, ItemState, JobState
from loracap.core.batches.flow import (
    batch_settings,
    cancel_job,
    choose_images,
    display_name,
    fetch_results,
    image_key,
    refresh_job,
    submit_batch,
)
from loracap.core.batches.gemini import GeminiBatchService
from loracap.core.errors import AuthenticationError, InputError
from loracap.core.project import CaptionMode, Project
from loracap.core.records import Provenance
from loracap.core.scan import scan_folder
from loracap.selftest.fake_gemini import Reply
from tests.core.test_export_undecodable import make_garbage_jpeg
from tests.fakes.fixtures import TEST_API_KEY
from tests.fakes.gemini_batch_server import FakeGeminiBatchServer
from tests.fakes.photos import make_photo


@pytest.fixture
def fake() -> Iterator[FakeGeminiBatchServer]:
    with FakeGeminiBatchServer(TEST_API_KEY) as server:
        yield server


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "hall"
    for number in range(1, 6):
        make_photo(folder / f"IMG_{number:04d}.jpg", size=(320, 240), seed=number)
    return folder


def new_project(folder: Path) -> Project:
    project = Project.create(folder / "hall.loraproj", trigger="hall")
    project.add_scanned(scan_folder(folder))
    return project


def service(fake: FakeGeminiBatchServer, inline_limit: int = 19_000_000) -> GeminiBatchService:
    return GeminiBatchService(TEST_API_KEY, "gemini-2.5-flash", base_url=fake.base_url,
                              timeout_s=10, inline_limit=inline_limit)


def ids(project: Project) -> dict[str, int]:
    return {record.path: record.id for record in project.images()}


def submit(project: Project, gemini: GeminiBatchService, **kwargs: object) -> int:
    chosen, _, _ = choose_images(project, CaptionMode.MISSING)
    settings = batch_settings(project, max_side=512, overwrite_protected=False)
    return submit_batch(project, gemini, chosen, settings, **kwargs).id  # type: ignore[arg-type]


@pytest.mark.parametrize("inline_limit", [19_000_000, 1000], ids=["inline", "file"])
def test_results_out_of_order_land_on_their_images_across_a_restart(
        fake: FakeGeminiBatchServer, folder: Path, inline_limit: int) -> None:
    prepared: list[tuple[int, int]] = []
    with new_project(folder) as project, service(fake, inline_limit) as gemini:
        job_id = submit(project, gemini, on_prepared=lambda d, t: prepared.append((d, t)))
        job = project.batch_job(job_id)
        assert job.state is JobState.PENDING and job.remote_id.startswith("batches/")
        assert job.waiting == 5 and prepared[-1] == (5, 5)
        assert bool(job.input_file) == (inline_limit == 1000)
        summary = fetch_results(project, gemini, job)  # not ended yet: nothing fetched
        assert summary.not_ready and project.stats().captioned == 0
    fake.finish()  # results in reversed order
    # A new process: the job is found in the project and followed from there.
    with Project.open(folder / "hall.loraproj") as project, service(fake, inline_limit) as gemini:
        (job,) = project.batch_jobs(open_only=True)
        seen: list[tuple[int, str]] = []
        summary = fetch_results(project, gemini, job,
                                on_result=lambda i, s, _: seen.append((i, s)))
        assert (summary.stored, summary.failed, summary.gone) == (5, [], 0)
        # Each image got the answer to its own request: the fake derives the caption from
        # the image bytes it was sent with, so a mix-up by position would show here.
        fake_job = fake.jobs[job.remote_id]
        sent = {key: request for key, request in fake_job.requests}
        for path, image_id in ids(project).items():
            record = project.image(image_id)
            assert record.caption is not None, path
            assert record.caption.provenance is Provenance.GENERATED
            assert record.caption.backend == "gemini"
            assert record.caption.body.startswith("fake caption") or "," in record.caption.body
            assert f"image-{image_id}" in sent
            assert project.batch_of_versions(image_id) == [job.remote_id]
        assert sorted(i for i, _ in seen) == sorted(ids(project).values())
        assert project.batch_jobs(open_only=True) == []
        assert project.batch_job(job.id).counts == {ItemState.DONE.value: 5}
        usage = {u.model: u for u in project.token_usage()}["gemini-2.5-flash"]
        assert usage.answers == 5
        # A second fetch stores nothing twice.
        assert fetch_results(project, gemini, project.batch_job(job.id)).stored == 0
        assert all(len(project.history(i)) == 1 for i in ids(project).values())
    if inline_limit == 1000:  # the request file was a JSONL of {"key", "request"} lines
        lines = fake.files[fake_job.input_file].decode().splitlines()
        assert {json.loads(line)["key"] for line in lines} == set(sent)
        assert fake.deleted == [fake_job.input_file]


def test_failed_items_keep_their_reason_and_stay_uncaptioned(
        fake: FakeGeminiBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as gemini:
        by_path = ids(project)
        job_id = submit(project, gemini)
        refused = f"image-{by_path['IMG_0002.jpg']}"
        blocked = f"image-{by_path['IMG_0003.jpg']}"

        def answer(key: str, request: object) -> Reply | dict[str, object]:
            if key == refused:
                return {"code": 400, "message": "Unable to process input image."}
            if key == blocked:
                return Reply.blocked("SAFETY")
            return Reply.caption("a marble hall, tall windows")

        fake.finish(answer=answer)
        summary = fetch_results(project, gemini, project.batch_job(job_id))
        assert summary.stored == 3 and len(summary.failed) == 2
        two = project.image(by_path["IMG_0002.jpg"])
        assert two.caption is None and "Unable to process input image" in two.last_error
        three = project.image(by_path["IMG_0003.jpg"])
        assert three.caption is None and "SAFETY" in three.last_error
        assert project.image(by_path["IMG_0001.jpg"]).caption.body == \
            "a marble hall, tall windows"  # type: ignore[union-attr]
        # The failed images are taken again by the next run ("failed" mode), not "missing"
        # images waiting in an open job.
        chosen, _, busy = choose_images(project, CaptionMode.FAILED)
        assert sorted(chosen) == sorted([by_path["IMG_0002.jpg"], by_path["IMG_0003.jpg"]])
        assert busy == 0


def test_a_person_s_caption_written_meanwhile_is_kept(fake: FakeGeminiBatchServer,
                                                      folder: Path) -> None:
    with new_project(folder) as project, service(fake) as gemini:
        by_path = ids(project)
        job_id = submit(project, gemini)
        project.edit_caption(by_path["IMG_0001.jpg"], "my own words")
        fake.finish()
        summary = fetch_results(project, gemini, project.batch_job(job_id))
        assert (summary.stored, summary.kept) == (4, 1)
        record = project.image(by_path["IMG_0001.jpg"])
        assert record.caption is not None and record.caption.body == "my own words"
        history = project.history(by_path["IMG_0001.jpg"])
        assert [v.provenance for v in history] == [Provenance.MANUAL, Provenance.GENERATED]


def test_expiry_and_cancel_keep_what_was_fetched(fake: FakeGeminiBatchServer,
                                                 folder: Path) -> None:
    with new_project(folder) as project, service(fake) as gemini:
        first = submit(project, gemini)
        # Images waiting in an open job are not sent again.
        assert choose_images(project, CaptionMode.MISSING)[0] == []
        fake.expire(done=2)
        summary = fetch_results(project, gemini, project.batch_job(first))
        assert (summary.stored, summary.gone) == (2, 3)
        job = project.batch_job(first)
        assert job.state is JobState.EXPIRED and job.fetched
        assert job.counts == {"done": 2, "gone": 3}
        # The three left are free again; the next job takes them, and is cancelled.
        second = submit(project, gemini)
        assert project.batch_job(second).requests == 3
        fake.start_running()
        assert refresh_job(project, gemini, project.batch_job(second)).state is JobState.RUNNING
        job = cancel_job(project, gemini, project.batch_job(second))
        assert job.state is JobState.CANCELLED
        summary = fetch_results(project, gemini, job)
        assert (summary.stored, summary.gone) == (0, 3)
        assert project.stats().captioned == 2
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 3


def test_a_refused_key_stores_the_job_as_not_submitted(fake: FakeGeminiBatchServer,
                                                       folder: Path) -> None:
    with new_project(folder) as project, GeminiBatchService(
            "wrong-key", base_url=fake.base_url, timeout_s=10) as gemini:
        with pytest.raises(AuthenticationError):
            submit(project, gemini)
        (job,) = project.batch_jobs()
        assert job.state is JobState.FAILED and job.fetched and "not submitted" in job.error
        # Its images are free for the next job.
        assert len(choose_images(project, CaptionMode.MISSING)[0]) == 5


def test_an_undecodable_image_is_marked_invalid_and_left_out(fake: FakeGeminiBatchServer,
                                                            folder: Path) -> None:
    make_garbage_jpeg(folder / "IMG_0004.jpg")  # passes the scan's structure checks
    with new_project(folder) as project, service(fake) as gemini:
        by_path = ids(project)
        assert project.image(by_path["IMG_0004.jpg"]).valid
        job_id = submit(project, gemini)
        job = project.batch_job(job_id)
        assert len(fake.jobs[job.remote_id].requests) == 4
        assert job.counts == {"waiting": 4, "failed": 1}
        record = project.image(by_path["IMG_0004.jpg"])
        assert not record.valid and record.invalid_reason


def test_no_images_is_an_input_error(fake: FakeGeminiBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as gemini:
        settings = batch_settings(project, max_side=512, overwrite_protected=False)
        with pytest.raises(InputError, match="No images"):
            submit_batch(project, gemini, [], settings)
        assert project.batch_jobs() == []


def test_usage_of_a_result_is_counted(fake: FakeGeminiBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as gemini:
        job_id = submit(project, gemini)
        fake.finish()
        fetch_results(project, gemini, project.batch_job(job_id))
        (usage,) = [u for u in project.token_usage() if u.backend == "gemini"]
        assert TokenUsage(usage.input_tokens, usage.output_tokens) == TokenUsage(270 * 5, 20 * 5)


def test_a_submission_interrupted_before_its_name_was_stored_is_found_again(
        fake: FakeGeminiBatchServer, folder: Path) -> None:
    with new_project(folder) as project, service(fake) as gemini:
        chosen, _, _ = choose_images(project, CaptionMode.MISSING)
        settings = batch_settings(project, max_side=512, overwrite_protected=False)
        # What a crash right after Gemini accepted the job leaves: the job stored as
        # "submitting", without the service's name for it.
        job_id = project.add_batch_job(
            backend="gemini", model=gemini.model, base_url="", settings=settings.to_json(),
            items=[(image_id, image_key(image_id)) for image_id in chosen])
        job = project.batch_job(job_id)
        requests = [BatchRequest(image_key(i), prepare_jpeg(project.image(i).abs_path, 512),
                                 settings.prompt, settings.json_schema) for i in chosen]
        gemini.submit(requests, display_name="LoRACap hall job 99 other project")
        accepted = gemini.submit(requests, display_name=display_name(project, job))
        assert project.batch_job(job_id).state is JobState.SUBMITTING
        assert choose_images(project, CaptionMode.MISSING)[0] == []  # not sent twice
        fake.finish(accepted.remote_id)
        summary = fetch_results(project, gemini, project.batch_job(job_id))
        assert project.batch_job(job_id).remote_id == accepted.remote_id
        assert summary.stored == 5 and project.stats().captioned == 5
