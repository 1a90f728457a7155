"""One request to the model from the window, outside a batch: "Describe This Person Again"
(:mod:`loracap.ui.people_editing`) and "New Answer" (:mod:`loracap.ui.qa_editing`).

:class:`OneRequest` runs the work with a ready captioner in the background
(:class:`~loracap.jobs.backend_jobs.CaptionerWorkJob`), shows it in the progress strip (it is
one request: no Cancel), and when it ends refreshes the image, the usage and says how it went.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject

if TYPE_CHECKING:
    from loracap.core.backends.base import BackendConfig, Captioner
    from loracap.jobs.backend_jobs import CaptionerWorkJob
    from loracap.ui.main_window import MainWindow


class OneRequest(QObject):
    """At most one such request at a time; ``ended`` (an optional callable) runs after each."""

    def __init__(self, window: MainWindow, ended: Callable[[], None] | None = None) -> None:
        super().__init__(window)
        self.window = window
        self._ended = ended
        self._job: CaptionerWorkJob | None = None

    @property
    def busy(self) -> bool:
        """Whether a request is under way."""
        return self._job is not None and self._job.is_running

    def start(self, config: BackendConfig, work: Callable[[Captioner], object], *, what: str,
              activity: str, image_id: int, done: str, failed: str) -> None:
        """Run ``work(captioner)`` for image ``image_id``: ``activity`` in the progress strip
        meanwhile, then ``done`` in the status bar, or an error ``failed: <reason>``."""
        from loracap.jobs.backend_jobs import CaptionerWorkJob

        window = self.window
        job = CaptionerWorkJob(config, work, what, factory=window.captioner_factory,
                               parent=self)
        job.finished.connect(lambda _result: self._end(job, image_id, done, ""))
        job.failed.connect(lambda message: self._end(job, image_id, "",
                                                     f"{failed}: {message}"))
        self._job = job
        window.progress.show_activity(activity, 0, 0)
        window.progress.cancel_button.setEnabled(False)
        job.start()

    def _end(self, job: CaptionerWorkJob, image_id: int, done: str, error: str) -> None:
        if job is not self._job:
            return
        self._job = None
        window = self.window
        window.progress.hide()
        if window.project is not None:
            window.refresh_image(image_id)
            window.update_usage()
        if error:
            window.show_error(error)
        else:
            window.statusBar().showMessage(done, 8000)
        if self._ended is not None:
            self._ended()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Wait for the request under way (the window is closing; tests)."""
        return self._job.wait(timeout_ms) if self._job is not None else True
