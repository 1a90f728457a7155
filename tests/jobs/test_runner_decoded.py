"""Captioning records the images it decoded whole, so the first export after it decodes none of
them again (issue 15): the real google-genai client against the fake Gemini server, real
JPEGs, a real project file, a real export."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from loracap.core.backends.base import CaptionResult
from loracap.core.backends.gemini import GeminiCaptioner
from loracap.core.captioning_people import people_options
from loracap.core.exports import ExportFormat, export_project, get_format
from loracap.core.project import Project
from loracap.core.prompts import Instructions, Profile, build_instructions
from loracap.core.scan import scan_folder
from loracap.jobs.runner import BatchOptions, BatchSummary, CaptionRunner
from tests.core.test_export_undecodable import make_garbage_jpeg
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.photos import make_photo

pytestmark = pytest.mark.slow

GOOD = ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg", "IMG_4.jpg"]
BROKEN = "IMG_5.jpg"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    hall = tmp_path / "hall"
    for seed, name in enumerate(GOOD, start=1):
        make_photo(hall / name, size=(640, 480), seed=seed)
    make_garbage_jpeg(hall / BROKEN)  # its structure is whole: the scan cannot tell
    return hall


def state(path: Path) -> tuple[int, float]:
    info = os.lstat(path)
    return info.st_size, info.st_mtime


def caption_all(qtbot: Any, project: Project, captioner: Any, profile: Profile = Profile.SHORT,
                **options: Any) -> BatchSummary:
    runner = CaptionRunner(project, captioner, build_instructions(profile),
                           BatchOptions(workers=2, rpm=0, base_delay_s=0.01, **options))
    with qtbot.waitSignal(runner.finished, timeout=60_000) as blocker:
        runner.start()
    runner.wait()
    summary: BatchSummary = blocker.args[0]
    return summary


def test_an_export_after_captioning_decodes_only_what_changed(
        qtbot: Any, tmp_path: Path, folder: Path, server: FakeGeminiServer,
        decodes: list[str]) -> None:
    with Project.create(folder / "hall.loraproj", trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
        by_name = {record.file_name: record.id for record in project.images()}
        captioner = GeminiCaptioner("test-key", base_url=server.base_url, timeout_s=10)
        try:
            summary = caption_all(qtbot, project, captioner)
        finally:
            captioner.close()
        assert summary.done == len(GOOD) and len(summary.failed) == 1
        # Each captioned image's file state, as an export's decode would have recorded it;
        # nothing for the image whose pixels did not decode (marked invalid instead).
        assert project.decoded_states() == {by_name[name]: state(folder / name)
                                            for name in GOOD}
        assert not project.image(by_name[BROKEN]).valid

        size, mtime = state(folder / "IMG_3.jpg")
        os.utime(folder / "IMG_3.jpg", (mtime + 60, mtime + 60))  # same bytes, new mtime
        result = export_project(project, get_format(ExportFormat.REPLICATE),
                                tmp_path / "hall.zip")
        assert result.images == len(GOOD)
        assert decodes == ["IMG_3.jpg"]  # the one changed since it was captioned
        assert project.decoded_states()[by_name["IMG_3.jpg"]] == (size, mtime + 60)


class UnknownCaptioner:
    """A captioner that does not say whether its ``prepare`` decodes whole (it does: it is
    Gemini's, but nobody may assume so)."""

    def __init__(self, inner: GeminiCaptioner) -> None:
        self.backend, self.model, self._inner = inner.backend, inner.model, inner

    def prepare(self, path: Path, max_side: int) -> bytes:
        return self._inner.prepare(path, max_side)

    def caption(self, image: bytes, instructions: Instructions, *, trigger: str,
                prefix: str) -> CaptionResult:
        return self._inner.caption(image, instructions, trigger=trigger, prefix=prefix)

    def close(self) -> None:
        self._inner.close()


def test_a_captioner_that_does_not_say_it_decodes_whole_records_nothing(
        qtbot: Any, folder: Path, server: FakeGeminiServer) -> None:
    with Project.create(folder / "hall.loraproj", trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
        captioner = UnknownCaptioner(
            GeminiCaptioner("test-key", base_url=server.base_url, timeout_s=10))
        try:
            summary = caption_all(qtbot, project, captioner)
        finally:
            captioner.close()
        assert summary.done == len(GOOD)
        assert project.decoded_states() == {}


def test_multi_person_captions_record_their_decodes_too(
        qtbot: Any, tmp_path: Path, folder: Path, server: FakeGeminiServer,
        decodes: list[str]) -> None:
    """Multi-person captions decode each photo themselves (to crop each person): that decode
    is recorded as well, and the export after them decodes nothing."""
    with Project.create(folder / "team.loraproj", trigger="team",
                        profile=Profile.MULTI_PERSON.value) as project:
        project.add_scanned(scan_folder(folder))
        by_name = {record.file_name: record.id for record in project.images()}
        captioner = GeminiCaptioner("test-key", base_url=server.base_url, timeout_s=10)
        try:
            summary = caption_all(qtbot, project, captioner, Profile.MULTI_PERSON,
                                  people=people_options(project.settings))
        finally:
            captioner.close()
        assert summary.done == len(GOOD) and len(summary.failed) == 1
        assert project.decoded_states() == {by_name[name]: state(folder / name)
                                            for name in GOOD}
        result = export_project(project, get_format(ExportFormat.REPLICATE),
                                tmp_path / "team.zip")
        assert result.images == len(GOOD)
        assert decodes == []
