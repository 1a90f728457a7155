"""An image whose header and markers are sound but whose pixels do not decode passes the scan
(issue 15: the scan reads structure, not pixels); the first batch that needs its pixels marks it
invalid with the reason -- as the scan would have -- instead of recording a failed caption or a
failed question-answer image, and the batch goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loracap.core.backends.gemini import GeminiCaptioner
from loracap.core.project import Project
from loracap.core.prompts import Profile, build_instructions
from loracap.core.qa.generate import QAOptions
from loracap.core.scan import scan_folder
from loracap.jobs.runner import BatchOptions, CaptionRunner
from tests.core.test_export_undecodable import make_garbage_jpeg
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.photos import make_photo

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("qa", [False, True])
def test_pixels_that_do_not_decode_make_the_image_invalid(
        qtbot: Any, tmp_path: Path, server: FakeGeminiServer, qa: bool) -> None:
    folder = tmp_path / "hall"
    make_photo(folder / "IMG_0001.jpg", size=(320, 240), seed=1)
    make_garbage_jpeg(folder / "IMG_0002.jpg")
    with Project.create(folder / "hall.loraproj", trigger="hall") as project:
        project.add_scanned(scan_folder(folder))
        assert all(record.valid for record in project.images())  # the scan cannot tell
        captioner = GeminiCaptioner("test-key", base_url=server.base_url, timeout_s=10)
        options = BatchOptions(workers=1, base_delay_s=0.01,
                               qa=QAOptions(questions=1).checked() if qa else None)
        runner = CaptionRunner(project, captioner, build_instructions(Profile.SHORT), options)
        try:
            with qtbot.waitSignal(runner.finished, timeout=60_000) as blocker:
                runner.start()
            runner.wait()
        finally:
            captioner.close()
        summary = blocker.args[0]
        assert summary.done == 1 and len(summary.failed) == 1
        good, broken = project.images()
        assert good.valid and not broken.valid
        assert broken.invalid_reason and not broken.failed
        assert len(server.generate_requests) == 1  # nothing was sent for the broken image
