"""Batch API jobs in the window (issue 15): Captions > Send to Batch API… and Batch Jobs…, the
window's checks while a project with open jobs is open, and the status bar's "1 batch job
running".

:class:`BatchJobs` is the window's controller (made by :class:`~loracap.ui.main_window.
MainWindow`, like :mod:`~loracap.ui.qa_editing`). Every step that reads or writes the project or
talks to a service runs in the background (:mod:`loracap.jobs.batch_jobs`); the GUI thread only
shows what comes back. The flow is :mod:`loracap.core.batches.flow`'s, the same as
``loracap caption --batch`` and ``loracap batch status|fetch|cancel``, so a job submitted in one
can be followed in the other, across restarts.

Following: once when a project opens and every :data:`POLL_INTERVAL_MS` while it has open jobs,
the services are asked where the jobs are; a job that has ended is fetched at once, one job at a
time, each caption shown in the grid (and the editor) as it is stored. Refresh, Fetch Results
and Cancel Job of the :class:`~loracap.ui.batch_dialogs.BatchJobsDialog` go through the same
queue, so nothing runs twice at once. A backend without an API key is said once in the status
bar (again at a Refresh of the dialog); its jobs are neither asked about nor fetched until a key
is set, which each check looks for on this machine.

The dialogs are in :mod:`loracap.ui.batch_dialogs`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, QTimer, pyqtSignal
from PyQt6.QtGui import QKeySequence
from PyQt6.QtWidgets import QDialog, QMessageBox, QStatusBar, QToolButton, QWidget

from loracap.core.batches.base import BATCH_BACKENDS, BatchJobRecord, ItemState
from loracap.core.errors import InputError
from loracap.core.text import human_duration
from loracap.jobs.batch_jobs import (
    BatchCancelJob,
    BatchChoice,
    BatchFetchJob,
    BatchJobsUpdate,
    BatchPlan,
    BatchPlanJob,
    BatchRefreshJob,
    BatchSubmitJob,
    FetchDone,
    StoredResult,
)
from loracap.ui.batch_dialogs import BatchJobsDialog, BatchSubmitDialog, service_name

if TYPE_CHECKING:
    from loracap.core.backends.base import BackendConfig
    from loracap.core.project import Project
    from loracap.jobs.batch_jobs import _BatchJob
    from loracap.ui.main_window import MainWindow

log = logging.getLogger(__name__)

#: Milliseconds between two checks of the open jobs while their project is open (a job takes
#: minutes to hours; Gemini's own batch examples poll every 30 s). Tests make it shorter.
POLL_INTERVAL_MS = 60_000
#: Milliseconds after a project opens before its jobs are first checked (the grid paints
#: first).
OPEN_DELAY_MS = 300
#: How long a status-bar message of a batch job stays, in milliseconds.
MESSAGE_MS = 15_000

#: Why a backend cannot take a batch job, as the window says it.
NO_BATCH_API = (
    "The {label} has no batch API: batch jobs go to Gemini, Anthropic or OpenAI, at half "
    "their price. Choose one of them in Captions > Caption With (or Captioning Settings), or "
    "caption with Generate Captions.")
HINTS_REFUSED = (
    "Combined captions (tagger hints) run the local WD14 tagger on each image before asking "
    "the model, so they cannot go through a batch API. Turn the hints off in Captions > "
    "Captioning Settings, or caption with Generate Captions.")


def interval_text(milliseconds: int | None = None) -> str:
    """The time between two checks as a user reads it: ``"a minute"``, ``"5 minutes"``."""
    seconds = round((POLL_INTERVAL_MS if milliseconds is None else milliseconds) / 1000)
    if seconds == 60:
        return "a minute"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return human_duration(seconds)


def fetch_message(job: BatchJobRecord, done: FetchDone) -> str:
    """What a fetch stored, for the status bar: ``"Batch job 1: 28 captions stored, 2
    failed, 1 kept (edited meanwhile)"``."""
    summary = done.summary
    if summary.not_ready:
        return f"Batch job {job.id} is {job.state.label}; nothing to fetch yet."
    if not (summary.stored or summary.failed or summary.kept or summary.gone):
        return f"Batch job {job.id}: every result was stored already."
    parts = [f"{summary.stored} caption{'s' if summary.stored != 1 else ''} stored"]
    if summary.failed:
        parts.append(f"{len(summary.failed)} failed")
    if summary.kept:
        parts.append(f"{summary.kept} kept (edited meanwhile)")
    if summary.gone:
        parts.append(f"{summary.gone} got no result ({job.state.label}; Generate takes them "
                     "again)")
    return f"Batch job {job.id}: " + ", ".join(parts) + "."


# ---------------------------------------------------------------------------------- seams
# Looked up at call time, so tests can answer them.


def confirm_submission(parent: QWidget, plan: BatchPlan) -> tuple[BatchChoice, bool] | None:
    """Show the :class:`~loracap.ui.batch_dialogs.BatchSubmitDialog`; the chosen images and
    whether the captions of a person are replaced, or None when the user cancelled."""
    dialog = BatchSubmitDialog(plan, parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.choice(), dialog.replacing()


def confirm_cancel(parent: QWidget, job: BatchJobRecord) -> bool:
    """Ask before cancelling (or forgetting) ``job``."""
    if job.remote_id:
        title, text = "Cancel Batch Job?", f"Cancel job {job.id}? What it finished is kept."
    else:
        title, text = "Cancel Batch Job?", (
            f"Cancel job {job.id}? LoRACap stopped while submitting it. If the service has "
            "it, it is cancelled and what it finished is kept; if not, it is forgotten here "
            "and its images are free for the next run.")
    answer = QMessageBox.question(parent, title, text,
                                  QMessageBox.StandardButton.Yes
                                  | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def show_reason(parent: QWidget, text: str, title: str = "Send to Batch API") -> None:
    """Say why something cannot be done now (the images cannot go to a batch API, ...)."""
    QMessageBox.information(parent, title, text)


# ---------------------------------------------------------------------------------- controller


class BatchJobs(QObject):
    """The window's batch API jobs: the two actions, the polling, the status-bar label and
    the :class:`~loracap.ui.batch_dialogs.BatchJobsDialog`.

    Signals (for the window's tests and anyone who follows): ``jobs_changed()`` after the job
    list was read again; ``submit_ended(object)`` with the submitted
    :class:`~loracap.core.batches.base.BatchJobRecord` or None; ``fetch_ended(FetchDone)``.
    """

    jobs_changed = pyqtSignal()
    submit_ended = pyqtSignal(object)
    fetch_ended = pyqtSignal(object)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.jobs: tuple[BatchJobRecord, ...] = ()
        #: The job of the queue under way (refresh, fetch, cancel) and what waits for it.
        self._follow: _BatchJob | None = None
        self._following = ""  # what it does, for the dialog
        self._fetching: int | None = None  # the job being fetched
        self._fetch_stored = 0
        self._queue: list[tuple[str, Callable[[], None]]] = []
        self._refresh_wanted = False
        #: Jobs whose automatic fetch failed since the last check (tried again at the next).
        self._fetch_failed: set[int] = set()
        self._plan_job: BatchPlanJob | None = None
        self._submit_job: BatchSubmitJob | None = None
        self._project: Project | None = None
        self._dialog: BatchJobsDialog | None = None
        self._checked: datetime | None = None
        self._problem = ""
        #: Backends of open jobs without an API key at the last check, with what was said:
        #: their jobs are not fetched; said once, again when :attr:`_tell_keys`.
        self._no_key: dict[str, str] = {}
        self._tell_keys = False  # the user asked for a check (the dialog's Refresh)

        self.send_action = window.add_action(
            "Send to &Batch API…", self.send_to_batch, None,
            "Caption the images without a caption (or the selected ones) as one batch job: "
            "half the price, results within 24 hours")
        self.jobs_action = window.add_action(
            "Batch &Jobs…", self.show_dialog, [QKeySequence("Ctrl+Shift+B")],
            "The project's batch API jobs: where each is, fetch results, cancel (Ctrl+Shift+B)")
        self.status_button = QToolButton()
        self.status_button.setObjectName("batchJobsStatus")
        self.status_button.setAutoRaise(True)
        self.status_button.setToolTip(
            "This project's batch API jobs. The window checks them every minute and stores "
            "their captions when they end. Click for Captions > Batch Jobs…")
        self.status_button.clicked.connect(self.show_dialog)
        self.status_button.hide()
        self._status_bar().addPermanentWidget(self.status_button)

        self._timer = QTimer(self)
        self._timer.timeout.connect(self._poll)
        window.project_opened.connect(lambda _path: self._on_project_opened())
        window.progress.cancel_button.clicked.connect(self._cancel_submit)

    # ------------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        """True while a batch job is being chosen or submitted: no captioning batch starts
        meanwhile (the same images would be paid twice)."""
        return self._plan_job is not None or self._submit_job is not None

    @property
    def following(self) -> bool:
        """True while jobs are being checked, fetched or cancelled."""
        return self._follow is not None

    @property
    def open_jobs(self) -> list[BatchJobRecord]:
        """The jobs the window follows: results not all fetched yet (a job whose submission
        was interrupted included: it is looked for at the service)."""
        return [job for job in self.jobs if job.open]

    def update_actions(self) -> None:
        """Enable what applies (the window calls it after its own actions): Send to Batch
        API when Generate could start; Batch Jobs with a project."""
        window = self.window
        self.send_action.setEnabled(window.project is not None and not self.busy
                                    and window.generate_action.isEnabled())
        self.jobs_action.setEnabled(window.project is not None)

    def _status_bar(self) -> QStatusBar:
        bar = self.window.statusBar()
        assert bar is not None  # a QMainWindow always makes one
        return bar

    def _update_window(self) -> None:
        self.window._update_enabled()  # calls update_actions

    def _show_state(self) -> None:
        """The status-bar label, the timer and the dialog, for the jobs as known now."""
        count = len(self.open_jobs)
        self.status_button.setText(f"{count} batch job{'s' if count != 1 else ''} running")
        self.status_button.setVisible(count > 0 and self.window.project is not None)
        if count and not self._timer.isActive():
            self._timer.start(POLL_INTERVAL_MS)
        elif not count:
            self._timer.stop()
        if self._dialog is not None:
            self._dialog.show_jobs(self.jobs, self._note(), self._fetching)

    def _note(self) -> str:
        if self._follow is not None:
            queued = ", ".join(what for what, _start in self._queue)
            return f"{self._following} (then: {queued})" if queued else self._following
        if self._problem:
            return self._problem
        if self._checked is not None:
            when = self._checked.astimezone().strftime("%H:%M")
            later = f"; the window checks again in {interval_text()}" if self.open_jobs \
                else ""
            return f"Checked at {when}{later}."
        return ""

    # ------------------------------------------------------------------ project

    def _on_project_opened(self) -> None:
        project = self.window.project
        self._project = project
        self.jobs = ()
        self._checked = None
        self._problem = ""
        self._fetch_failed.clear()
        self._no_key.clear()
        self._tell_keys = False
        self._show_state()
        if project is None or project.read_only:
            return
        QTimer.singleShot(OPEN_DELAY_MS, lambda: self.refresh() if
                          self.window.project is project else None)

    def project_closing(self) -> None:
        """The project is about to close: stop checking, wait for the work under way (a
        fetch stops after the results stored so far; a submission still being prepared
        stops, one being sent is sent) so nothing touches the file after it closes."""
        self._timer.stop()
        self._queue.clear()
        self._refresh_wanted = False
        for job in (self._follow, self._submit_job):
            if job is not None:
                job.stop()
        for waited in (self._plan_job, self._submit_job, self._follow):
            if waited is not None:
                waited.wait()
        self._plan_job = self._submit_job = self._follow = None
        self._fetching = None
        self._project = None
        self.jobs = ()
        self._show_state()
        if self._dialog is not None:
            self._dialog.close()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Wait for the background work under way (tests)."""
        done = True
        for job in (self._plan_job, self._submit_job, self._follow):
            if job is not None:
                done = job.wait(timeout_ms) and done
        return done

    # ------------------------------------------------------------------ the queue

    def _run(self, what: str, start: Callable[[], None]) -> None:
        """Start ``start`` now, or after the job under way."""
        if self._follow is None:
            start()
        else:
            self._queue.append((what, start))
            self._show_state()

    def _begin(self, job: _BatchJob, what: str) -> None:
        self._follow = job
        self._following = what
        job.start()
        self._show_state()

    def _next(self) -> None:
        """The job under way ended: what waits, else an ended job's fetch, else a check
        asked for meanwhile."""
        self._follow = None
        self._fetching = None
        if self.window.project is None or self.window.project is not self._project:
            return
        if self._queue:
            _what, start = self._queue.pop(0)
            start()
            return
        for job in self.open_jobs:
            if job.state.ended and job.id not in self._fetch_failed \
                    and job.backend not in self._no_key:
                self._start_fetch(job.id, user=False)
                return
        if self._refresh_wanted:
            self._refresh_wanted = False
            self.refresh()
            return
        self._show_state()

    def _take(self, update: BatchJobsUpdate, news: Sequence[str] = ()) -> None:
        """Show ``update``; its problems and ``news`` (what to say once) go to the status
        bar, and with a missing key to the dialog's note."""
        self.jobs = update.jobs
        self._checked = datetime.now(UTC)
        self._problem = " ".join((*update.problems, *self._no_key.values()))
        said = " ".join((*update.problems, *news))
        if said:
            self._status_bar().showMessage(said, MESSAGE_MS)
        self.jobs_changed.emit()

    # ------------------------------------------------------------------ checking

    def _poll(self) -> None:
        self._fetch_failed.clear()
        self.refresh()

    def refresh(self, *, manual: bool = False) -> None:
        """Ask the services where the open jobs are (then fetch those that ended).
        ``manual``: the user asked (the dialog's Refresh), so a backend without a key is said
        again."""
        project = self.window.project
        if project is None or project.read_only:
            return
        self._tell_keys = self._tell_keys or manual
        if self._follow is not None:
            self._refresh_wanted = True
            return
        job = BatchRefreshJob(project, None, self)
        job.finished.connect(lambda update: self._on_refreshed(job, update))
        job.failed.connect(lambda message: self._on_follow_failed(job, message))
        job.cancelled.connect(lambda: self._on_follow_cancelled(job))
        self._begin(job, "Checking the jobs…")

    def _on_refreshed(self, job: _BatchJob, update: BatchJobsUpdate) -> None:
        if job is not self._follow:
            return
        news = [text for backend, text in update.missing_keys.items()
                if self._tell_keys or backend not in self._no_key]
        self._no_key = dict(update.missing_keys)
        self._tell_keys = False
        self._take(update, news)
        self._next()

    def _on_follow_failed(self, job: _BatchJob, message: str, *, user: bool = False) -> None:
        if job is not self._follow:
            return
        self._problem = message
        if user:
            self.window.show_error(message)
        else:
            self._status_bar().showMessage(message, MESSAGE_MS)
        self._next()

    def _on_follow_cancelled(self, job: _BatchJob) -> None:
        if job is self._follow:
            self._next()

    # ------------------------------------------------------------------ fetching

    def fetch(self, job_id: int) -> None:
        """Store the results of job ``job_id`` (Fetch Results)."""
        if self.window.project is None:
            return
        self._run(f"fetch job {job_id}", lambda: self._start_fetch(job_id, user=True))

    def _start_fetch(self, job_id: int, *, user: bool) -> None:
        project = self.window.project
        if project is None:
            return
        job = BatchFetchJob(project, job_id, self)
        self._fetching = job_id
        self._fetch_stored = 0
        job.results.connect(lambda results: self._on_results(job, results))
        job.finished.connect(lambda done: self._on_fetched(job, done, user))
        job.failed.connect(lambda message: self._on_fetch_failed(job, job_id, message, user))
        job.cancelled.connect(lambda: self._on_follow_cancelled(job))
        self._begin(job, f"Fetching the results of job {job_id}…")

    def _on_results(self, job: _BatchJob, results: list[StoredResult]) -> None:
        """Show stored results at once: their grid rows, and the editor when one of them
        is the current image."""
        window = self.window
        if job is not self._follow or window.project is None:
            return  # a fetch of a project closed since
        current = window.editor.image_id
        for result in results:
            if result.record is None:
                continue
            window.model.update_record(result.record)
            if result.record.id == current:
                window.refresh_image(current)
        window.checks_panel.mark_outdated()
        self._fetch_stored += sum(1 for result in results
                                  if result.state == ItemState.DONE.value)
        if self._fetching is not None:
            self._following = (f"Fetching the results of job {self._fetching}: "
                               f"{self._fetch_stored} caption(s) stored so far…")
            if self._dialog is not None:
                self._dialog.set_note(self._following)

    def _on_fetched(self, job: _BatchJob, done: FetchDone, user: bool) -> None:
        if job is not self._follow:
            return
        self._take(done.update)
        message = fetch_message(done.job, done)
        if user or not done.summary.not_ready:
            self._status_bar().showMessage(message, MESSAGE_MS)
        if not done.summary.not_ready:
            self.window.update_usage()
        self.fetch_ended.emit(done)
        self._next()

    def _on_fetch_failed(self, job: _BatchJob, job_id: int, message: str, user: bool) -> None:
        if job is not self._follow:
            return
        self._fetch_failed.add(job_id)
        text = f"Could not fetch the results of job {job_id}: {message}"
        if not user:
            text += " The window tries again at its next check; what was stored is kept."
        self._on_follow_failed(job, text, user=user)

    # ------------------------------------------------------------------ cancelling

    def cancel(self, job_id: int) -> None:
        """Cancel Job: ask, then ask the service to stop job ``job_id``; what it finished is
        fetched as usual."""
        job = next((job for job in self.jobs if job.id == job_id), None)
        if job is None or self.window.project is None:
            return
        parent = self._dialog if self._dialog is not None and self._dialog.isVisible() \
            else self.window
        if not job.remote_id and self._submit_job is not None:
            show_reason(parent, f"Job {job.id} is being sent now. Cancel it once it is sent.",
                        "Cancel Batch Job")
            return
        if not confirm_cancel(parent, job):
            return
        self._run(f"cancel job {job_id}", lambda: self._start_cancel(job_id))

    def _start_cancel(self, job_id: int) -> None:
        project = self.window.project
        if project is None:
            return
        job = BatchCancelJob(project, job_id, self)
        job.finished.connect(lambda update: self._on_cancelled(job, job_id, update))
        job.failed.connect(lambda message: self._on_follow_failed(
            job, f"Could not cancel job {job_id}: {message}", user=True))
        job.cancelled.connect(lambda: self._on_follow_cancelled(job))
        self._begin(job, f"Cancelling job {job_id}…")

    def _on_cancelled(self, job: _BatchJob, job_id: int, update: BatchJobsUpdate) -> None:
        if job is not self._follow:
            return
        self._take(update)
        record = next((item for item in update.jobs if item.id == job_id), None)
        if record is not None:
            self._status_bar().showMessage(
                f"Batch job {job_id} is {record.state.label}. What it finished is kept.",
                MESSAGE_MS)
        self._next()

    # ------------------------------------------------------------------ submitting

    def send_to_batch(self) -> None:
        """Captions > Send to Batch API…: check that the images can go to a batch API, choose
        them and estimate the cost in the background, ask, then submit."""
        window = self.window
        project = window.project
        if project is None or self.busy or not window.generate_action.isEnabled():
            return
        window.editor.flush()
        backend = window.batch_backend or project.settings.backend
        if backend not in BATCH_BACKENDS:
            from loracap.core.backends.registry import BACKENDS

            info = BACKENDS.get(backend)
            show_reason(window, NO_BATCH_API.format(
                label=info.label if info is not None else backend))
            return
        if project.read_only:
            show_reason(window, f"{project.path.name} is open read-only: a batch job cannot "
                        "be stored in it.")
            return
        from loracap.core.batches.flow import check_batchable

        try:
            check_batchable(project)
        except InputError as exc:
            show_reason(window, str(exc).replace("without --batch",
                                                 "with Generate Captions instead"))
            return
        config = window.batch_config_or_ask()
        if config is None:
            return
        if config.hints is not None:
            show_reason(window, HINTS_REFUSED)
            return
        job = BatchPlanJob(project, config, window.selected_image_ids(),
                           max_side=window.settings.max_side, parent=self)
        job.finished.connect(lambda plan: self._on_planned(job, project, config, plan))
        job.failed.connect(lambda message: self._on_plan_failed(job, message))
        self._plan_job = job
        self._status_bar().showMessage("Choosing the images and estimating the cost…")
        job.start()
        self._update_window()

    def _on_plan_failed(self, job: BatchPlanJob, message: str) -> None:
        if job is not self._plan_job:
            return
        self._plan_job = None
        self._status_bar().clearMessage()
        self._update_window()
        self.window.show_error(message)

    def _on_planned(self, job: BatchPlanJob, project: Project, config: BackendConfig,
                    plan: BatchPlan) -> None:
        if job is not self._plan_job:
            return
        self._plan_job = None
        window = self.window
        self._status_bar().clearMessage()
        self._update_window()
        if window.project is not project:
            return
        answer = confirm_submission(window, plan)
        if answer is None or window.project is not project or self.busy:
            return
        choice, replacing = answer
        if not choice.image_ids:
            return
        self._start_submit(project, config, choice.image_ids, plan.max_side, replacing)

    def _start_submit(self, project: Project, config: BackendConfig, image_ids: Sequence[int],
                      max_side: int, replacing: bool) -> None:
        window = self.window
        job = BatchSubmitJob(project, config, image_ids, max_side=max_side,
                             overwrite_protected=replacing, parent=self)
        name = service_name(config.backend)
        progress = window.progress

        def on_progress(done: int, total: int) -> None:
            if done >= total:
                progress.show_activity(f"Sending the batch job of {total} image(s) to "
                                       f"{name}…", 0, 0)
            else:
                progress.show_activity(f"Preparing image {done} of {total} for the batch "
                                       "job", done, total)

        job.progress.connect(on_progress)
        job.finished.connect(lambda record: self._on_submitted(job, record))
        job.failed.connect(lambda message: self._on_submit_ended(job, message))
        job.cancelled.connect(lambda: self._on_submit_ended(job, ""))
        self._submit_job = job
        progress.cancel_button.setText("Cancel")
        progress.cancel_button.setToolTip("Stop preparing the images; nothing is sent")
        progress.cancel_button.setEnabled(True)
        progress.show_activity(f"Preparing {len(image_ids)} image(s) for the batch job…", 0, 0)
        job.start()
        self._update_window()

    def _cancel_submit(self) -> None:
        """The progress strip's Cancel while a job is being prepared."""
        job = self._submit_job
        if job is None:
            return
        job.stop()
        self.window.progress.cancel_button.setEnabled(False)
        self.window.progress.label.setText(
            "Cancelling… (a job already on its way to the service is still sent)")

    def _end_submission(self, job: BatchSubmitJob) -> bool:
        """Forget the submission ``job`` and hide its progress; False when it is not the
        current one (a late signal)."""
        if job is not self._submit_job:
            return False
        self._submit_job = None
        self.window.progress.hide()
        self._update_window()
        return True

    def _on_submitted(self, job: BatchSubmitJob, record: BatchJobRecord) -> None:
        if not self._end_submission(job):
            return
        unread = record.counts.get(ItemState.FAILED.value, 0)
        sent = record.requests - unread
        text = (f"Sent {sent} image(s) to the {service_name(record.backend)} Batch API as job "
                f"{record.id}, at half the price. Results arrive within 24 hours; the window "
                "checks every minute while the project is open (Captions > Batch Jobs…).")
        if unread:
            text += f" {unread} image(s) could not be read and were left out."
        self._status_bar().showMessage(text, MESSAGE_MS * 2)
        self._add_job(record)
        self.submit_ended.emit(record)

    def _on_submit_ended(self, job: BatchSubmitJob, message: str) -> None:
        if not self._end_submission(job):
            return
        if message:
            self.window.show_error(f"The batch job was not sent: {message}")
        else:
            self._status_bar().showMessage("Cancelled before the batch job was sent; nothing "
                                           "was sent.", MESSAGE_MS)
        # A job refused once stored (too large, ...) is stored as "not submitted": the list
        # shows it. (A refused key is found before a job is stored.)
        self._run("check the jobs", self.refresh)
        self.submit_ended.emit(None)

    def _add_job(self, record: BatchJobRecord) -> None:
        self.jobs = tuple(job for job in self.jobs if job.id != record.id) + (record,)
        self.jobs = tuple(sorted(self.jobs, key=lambda job: job.id))
        self._checked = datetime.now(UTC)
        self.jobs_changed.emit()
        self._show_state()

    # ------------------------------------------------------------------ the dialog

    def show_dialog(self) -> None:
        """Captions > Batch Jobs…: the dialog (not modal), and a fresh check."""
        if self.window.project is None:
            return
        if self._dialog is None:
            dialog = BatchJobsDialog(self.window)
            dialog.refresh_requested.connect(
                lambda: self._run("check the jobs", lambda: self.refresh(manual=True)))
            dialog.fetch_requested.connect(self.fetch)
            dialog.cancel_requested.connect(self.cancel)
            self._dialog = dialog
        self._dialog.show_jobs(self.jobs, self._note(), self._fetching)
        if self._dialog.isVisible():  # behind the window: bring it forward
            self._dialog.raise_()
            self._dialog.activateWindow()
        self._dialog.show()
        if self._follow is None:
            self.refresh()

    @property
    def dialog(self) -> BatchJobsDialog | None:
        """The Batch Jobs dialog once it has been opened."""
        return self._dialog
