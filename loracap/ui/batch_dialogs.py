"""The dialogs of the window's batch API jobs (issue 15): Captions > Batch Jobs… (a table of
the project's jobs) and Send to Batch API… (the confirmation with the images, the backend and
the estimate at the batch discount).

They show what :class:`~loracap.ui.batch_jobs.BatchJobs` gives them and ask for nothing in the
background: the controller runs the work (:mod:`loracap.jobs.batch_jobs`) and answers the
:class:`BatchJobsDialog`'s requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from loracap.core.batches.base import BatchJobRecord, ItemState
from loracap.core.pricing import format_cost
from loracap.jobs.batch_jobs import BatchChoice, BatchPlan
from loracap.ui.widgets import ElidedLabel

#: The services' names as a user knows them.
SERVICE_NAMES = {"gemini": "Gemini", "anthropic": "Anthropic", "openai": "OpenAI"}


def service_name(backend: str) -> str:
    """``"Gemini"`` for ``"gemini"``; a backend without a known service as it is."""
    return SERVICE_NAMES.get(backend, backend)


def relative_time(then: datetime, now: datetime | None = None) -> str:
    """``"just now"``, ``"5 min ago"``, ``"2 h ago"``, ``"3 days ago"``."""
    seconds = max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def job_details(job: BatchJobRecord) -> str:
    """The selected job in a sentence or two, its whole note included (the table cuts it)."""
    created = job.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    text = (f"Job {job.id}{f' ({job.remote_id})' if job.remote_id else ''}: "
            f"{service_name(job.backend)} {job.model}, {job.requests} image(s), submitted "
            f"{created}, {job.state.label}")
    if job.state.ended and job.open and job.remote_id:
        text += ", results not fetched yet"
    note = job_note(job)
    return f"{text}. {note[:1].upper()}{note[1:]}" if note else f"{text}."


def job_note(job: BatchJobRecord) -> str:
    """The Note column: the service's reason, images left without a result, a job LoRACap
    stopped while submitting."""
    parts = []
    if job.error:
        parts.append(job.error.rstrip("."))
    gone = job.counts.get(ItemState.GONE.value, 0)
    if gone and job.remote_id:  # a job never sent says so in its error already
        parts.append(f"{gone} got no result; Generate takes them again")
    if not job.remote_id and job.open:
        parts.append("not named by the service yet: if LoRACap stopped while sending it, the "
                     "window looks for it there; Cancel Job forgets it if it is not found")
    return "; ".join(parts)


class BatchJobsDialog(QDialog):
    """Captions > Batch Jobs…: a table of the project's jobs with Refresh, Fetch Results,
    Cancel Job and Close. Not modal: the window goes on working while it is open."""

    refresh_requested = pyqtSignal()
    fetch_requested = pyqtSignal(int)
    cancel_requested = pyqtSignal(int)

    COLUMNS = ("Job", "Service", "Model", "State", "Images", "Done", "Failed", "Kept",
               "Waiting", "Submitted", "Note")
    #: Columns of numbers, right-aligned.
    NUMERIC = frozenset({0, 4, 5, 6, 7, 8})
    NOTE = 10

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch Jobs")
        self.setModal(False)
        self._jobs: tuple[BatchJobRecord, ...] = ()
        intro = QLabel(
            "Jobs sent to a batch API cost half the price and finish within 24 hours. While "
            "the project is open, the window checks them every minute and stores the captions "
            "as soon as a job ends; closing it loses nothing.")
        intro.setWordWrap(True)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)  # type: ignore[union-attr]
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(self.NOTE, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self._fetch())
        self.details = QLabel()
        self.details.setObjectName("batchJobDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.empty = QLabel("No batch jobs yet. Captions > Send to Batch API… sends the images "
                            "without a caption as one job, at half the price.")
        self.empty.setWordWrap(True)
        self.note = ElidedLabel(min_chars=30)
        self.note.setObjectName("batchJobsNote")
        self.refresh_button = QPushButton("&Refresh")
        self.refresh_button.setToolTip("Ask the services where the open jobs are now")
        self.fetch_button = QPushButton("&Fetch Results")
        self.fetch_button.setToolTip("Store the results of the selected job if it has ended "
                                     "(the window does it by itself too)")
        self.cancel_button = QPushButton("&Cancel Job")
        self.cancel_button.setToolTip("Ask the service to stop the selected job; what it "
                                      "finished is kept")
        close_button = QPushButton("Close")
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.fetch_button.clicked.connect(self._fetch)
        self.cancel_button.clicked.connect(self._cancel)
        close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.fetch_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addWidget(self.details)
        layout.addWidget(self.note)
        layout.addLayout(buttons)
        self._fit()
        self._update_buttons()

    def _fit(self) -> None:
        """A size that shows every column on a 13-inch laptop (1366 x 768), within the
        screen it is on."""
        metrics = self.fontMetrics()
        width = metrics.horizontalAdvance("x") * 150
        height = metrics.height() * 26
        screen = self.screen()
        if screen is not None:
            room = screen.availableGeometry()
            width = min(width, int(room.width() * 0.9))
            height = min(height, int(room.height() * 0.8))
        self.resize(width, height)

    def set_note(self, text: str) -> None:
        """The line under the table (a check or fetch under way, the last check)."""
        self.note.setText(text)

    def selected_job(self) -> BatchJobRecord | None:
        """The job of the selected row."""
        rows = self.table.selectionModel().selectedRows()  # type: ignore[union-attr]
        if not rows:
            return None
        row = rows[0].row()
        return self._jobs[row] if 0 <= row < len(self._jobs) else None

    def show_jobs(self, jobs: Sequence[BatchJobRecord], note: str = "",
                  fetching: int | None = None) -> None:
        """Show ``jobs`` (the selection stays on the same job); ``fetching``: the job whose
        results are being stored."""
        selected = self.selected_job()
        keep = selected.id if selected is not None else None
        self._jobs = tuple(jobs)
        now = datetime.now(UTC)
        table = self.table
        table.setRowCount(len(self._jobs))
        for row, job in enumerate(self._jobs):
            state = job.state.label
            if job.id == fetching:
                state = "fetching results…"
            elif job.state.ended and job.open and job.remote_id:
                state += ", not fetched yet"
            counts = job.counts
            created = job.created_at.astimezone()
            cells = [
                (str(job.id), job.name),
                (service_name(job.backend), ""),
                (job.model, job.base_url),
                (state, job.remote_state),
                (str(job.requests), ""),
                (str(counts.get(ItemState.DONE.value, 0)), ""),
                (str(counts.get(ItemState.FAILED.value, 0)), ""),
                (str(counts.get(ItemState.KEPT.value, 0)), ""),
                (str(counts.get(ItemState.WAITING.value, 0)), ""),
                (relative_time(job.created_at, now), created.strftime("%Y-%m-%d %H:%M")),
                (job_note(job), ""),
            ]
            for column, (text, tip) in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip or text)
                if column in self.NUMERIC:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(row, column, item)
        target = next((row for row, job in enumerate(self._jobs) if job.id == keep), None)
        if target is None and self._jobs:
            # The newest job that still needs the window, else the newest.
            open_rows = [row for row, job in enumerate(self._jobs) if job.open]
            target = open_rows[-1] if open_rows else len(self._jobs) - 1
        if target is not None:
            table.selectRow(target)
        self.table.setVisible(bool(self._jobs))
        self.empty.setVisible(not self._jobs)
        self.set_note(note)
        self._update_buttons()

    def _update_buttons(self) -> None:
        job = self.selected_job()
        self.details.setText(job_details(job) if job is not None else "")
        self.details.setVisible(job is not None)
        self.fetch_button.setEnabled(job is not None and job.open)
        self.cancel_button.setEnabled(job is not None and job.open and not job.state.ended)
        self.refresh_button.setEnabled(any(job.open for job in self._jobs))

    def _fetch(self) -> None:
        job = self.selected_job()
        if job is not None and job.open:
            self.fetch_requested.emit(job.id)

    def _cancel(self) -> None:
        job = self.selected_job()
        if job is not None and job.open and not job.state.ended:
            self.cancel_requested.emit(job.id)


class BatchSubmitDialog(QDialog):
    """Send to Batch API: which images (those without a caption, or the selected ones), the
    backend and model, the estimate at the batch discount, and when results come."""

    def __init__(self, plan: BatchPlan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send to Batch API")
        self.plan = plan
        name = service_name(plan.backend)
        heading = QLabel(f"<b>Send images to the {name} Batch API</b>")
        self.missing_radio = QRadioButton(
            f"Images without a caption ({len(plan.missing.image_ids)})")
        self.selected_radio = QRadioButton()
        self.replace_check = QCheckBox()
        group = QButtonGroup(self)
        group.addButton(self.missing_radio)
        group.addButton(self.selected_radio)
        selected = plan.selected
        if selected is not None:
            total = len(selected.image_ids) + selected.protected + selected.busy
            self.selected_radio.setText(f"The {total} selected image"
                                        f"{'s' if total != 1 else ''}")
            if selected.protected:
                self.replace_check.setText(
                    f"Also replace {selected.protected} caption(s) you edited, wrote or "
                    "imported (the old text stays in the history)")
        self.selected_radio.setVisible(selected is not None)
        self.replace_check.setVisible(selected is not None and selected.protected > 0)
        if plan.missing.image_ids or selected is None:
            self.missing_radio.setChecked(True)
        else:
            self.selected_radio.setChecked(True)
        backend = QLabel(f"Backend: {name}, model {plan.model or '(default)'}")
        self.count_label = QLabel()
        self.estimate_label = QLabel()
        self.estimate_label.setWordWrap(True)
        self.tokens_label = QLabel()
        self.tokens_label.setWordWrap(True)
        self.left_out_label = QLabel()
        self.left_out_label.setWordWrap(True)
        when = QLabel(
            "Results arrive within 24 hours, often much sooner. While this project is open, "
            "the window checks every minute and stores each caption as it comes. You can close "
            "LoRACap meanwhile: the job is kept in the project and followed when you open it "
            "again.")
        when.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.send_button = QPushButton("Send")
        self.buttons.addButton(self.send_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.send_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.missing_radio)
        layout.addWidget(self.selected_radio)
        indented = QHBoxLayout()
        indented.addSpacing(self.fontMetrics().horizontalAdvance("xxxx"))
        indented.addWidget(self.replace_check, 1)
        layout.addLayout(indented)
        layout.addSpacing(self.fontMetrics().height() // 2)
        layout.addWidget(backend)
        layout.addWidget(self.count_label)
        layout.addWidget(self.estimate_label)
        layout.addWidget(self.tokens_label)
        layout.addWidget(self.left_out_label)
        layout.addSpacing(self.fontMetrics().height() // 2)
        layout.addWidget(when)
        layout.addWidget(self.buttons)
        for button in (self.missing_radio, self.selected_radio, self.replace_check):
            button.toggled.connect(lambda _on: self._update())
        # Wide enough for the estimate on one or two lines; the labels wrap below it.
        self.setMinimumWidth(min(self.fontMetrics().horizontalAdvance("x") * 80,
                                 self._screen_width()))
        self._update()
        self.send_button.setFocus()

    def _screen_width(self) -> int:
        screen = self.screen()
        return int(screen.availableGeometry().width() * 0.9) if screen is not None else 10_000

    def choice(self) -> BatchChoice:
        """The images chosen now."""
        plan = self.plan
        if self.selected_radio.isChecked() and plan.selected is not None:
            if self.replacing() and plan.selected_replacing is not None:
                return plan.selected_replacing
            return plan.selected
        return plan.missing

    def replacing(self) -> bool:
        """Whether captions a person wrote, edited or imported are replaced."""
        return (self.selected_radio.isChecked() and self.replace_check.isVisibleTo(self)
                and self.replace_check.isChecked())

    def _update(self) -> None:
        choice = self.choice()
        count = len(choice.image_ids)
        self.replace_check.setEnabled(self.selected_radio.isChecked())
        self.count_label.setText(f"Images to send: {count}")
        self.estimate_label.setText(estimate_text(choice) if count else
                                    "Nothing to send with this choice.")
        self.tokens_label.setText(tokens_text(choice))
        self.tokens_label.setVisible(bool(count))
        left_out = []
        if choice.protected and not self.replacing():
            left_out.append(f"{choice.protected} image(s) with captions you edited, wrote or "
                            "imported are left out.")
        if choice.busy:
            left_out.append(f"{choice.busy} image(s) already wait in another batch job and "
                            "are left out.")
        self.left_out_label.setText(" ".join(left_out))
        self.left_out_label.setVisible(bool(left_out))
        self.send_button.setText(f"Send {count} Image{'s' if count != 1 else ''}")
        self.send_button.setEnabled(count > 0)


def estimate_text(choice: BatchChoice) -> str:
    """``"Estimated cost: $0.06 as a batch job, half of $0.12 one by one."``"""
    estimate = choice.estimate
    if estimate is None:
        return ""
    if estimate.cost is None or choice.cost is None:
        return (f"Estimated cost: unknown (prices.json has no price for {estimate.backend} "
                f"{estimate.model or 'this model'}).")
    return (f"Estimated cost: {format_cost(choice.cost)} as a batch job, half of "
            f"{format_cost(estimate.cost)} one by one.")


def tokens_text(choice: BatchChoice) -> str:
    """What the estimate rests on: tokens, and the date of the prices."""
    estimate = choice.estimate
    if estimate is None:
        return ""
    output = f"{estimate.output_tokens:,} output tokens"
    if estimate.output_assumed:
        output += " (guessed: no earlier captions from this model)"
    return (f"About {estimate.input_tokens:,} input and {output}; prices of "
            f"{estimate.prices_as_of}.")
