"""The progress strip shows the runner's waits with a countdown."""

from __future__ import annotations

from loracap.ui.progress_strip import ProgressStrip


def test_the_strip_shows_a_wait_and_clears_it(qtbot) -> None:
    strip = ProgressStrip()
    qtbot.addWidget(strip)
    strip.show_progress(10, 0, 30, 118.0)
    assert strip.label.text() == "Captioning 10 of 30 · about 1 min 58 s left"
    strip.show_waiting(41.2, "rate_limit")
    assert strip.label.text() == (
        "Captioning 10 of 30 · waiting for the rate limit · next request in 42 s · "
        "about 1 min 58 s left")
    strip.show_progress(10, 0, 30, 117.0)  # the runner's tick: the wait stays shown
    assert "next request in 42 s · about 1 min 57 s left" in strip.label.text()
    strip.show_waiting(11.5, "server")
    assert strip.label.text() == (
        "Captioning 10 of 30 · retrying in 12 s after a server error · about 1 min 57 s left")
    strip.show_waiting(0.0, "")
    assert strip.label.text() == "Captioning 10 of 30 · about 1 min 57 s left"
    assert strip.bar.value() == 10 and strip.bar.maximum() == 30


def test_a_new_batch_starts_without_an_old_wait(qtbot) -> None:
    strip = ProgressStrip()
    qtbot.addWidget(strip)
    strip.show_progress(1, 0, 6, 20.0)
    strip.show_waiting(5.0, "rate_limit")
    strip.hide()
    strip.show_progress(0, 0, 4, -1.0)  # the next batch's first progress
    assert strip.label.text() == "Captioning 0 of 4"
    assert strip.isVisible()


def test_a_wait_does_not_show_a_hidden_strip(qtbot) -> None:
    strip = ProgressStrip()
    qtbot.addWidget(strip)
    strip.show_waiting(3.0, "rate_limit")
    assert not strip.isVisible()
