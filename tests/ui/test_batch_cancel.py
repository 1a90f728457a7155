"""Cancelling a batch in the window: Cancel stops new requests and waits for the answers on
their way; a second press, Stop Now, drops them at once and leaves their images as they were."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loracap.core.project import CaptionMode, Project
from loracap.core.scan import scan_folder
from loracap.ui.main_window import MainWindow
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.photos import make_photo_folder
from tests.ui.test_window_people import window  # noqa: F401 - the window fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$",
                              extend=True),
]


def test_cancel_then_stop_now_drops_the_answers_on_their_way(
        qtbot, window: MainWindow, tmp_path: Path,  # noqa: F811
        gemini_server: FakeGeminiServer) -> None:
    folder = tmp_path / "slow"
    make_photo_folder(folder, 3, size=(320, 240))
    path = folder / "slow.loraproj"
    with Project.create(path, trigger="slow") as project:
        project.add_scanned(scan_folder(folder))
    assert window.open_project(path)
    gemini_server.queue_replies(*(Reply.hang(20) for _ in range(6)))
    window.generate(CaptionMode.MISSING)
    qtbot.waitUntil(lambda: len(gemini_server.generate_requests) >= 1, timeout=10_000)
    button = window.progress.cancel_button
    button.click()  # no new requests; the ones on their way are still awaited
    assert button.text() == "Stop Now" and button.isEnabled()
    assert window.runner is not None and window.runner.is_running
    started = time.monotonic()
    with qtbot.waitSignal(window.batch_finished, timeout=10_000) as blocker:
        button.click()  # drop them
    assert time.monotonic() - started < 5
    summary = blocker.args[0]
    assert summary.cancelled and summary.done == 0 and summary.failed == []
    assert all(record.caption is None and not record.failed
               for record in window.project.images())
