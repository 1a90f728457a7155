"""Batch API jobs from the command line (issue 15): ``loracap caption PROJECT --batch`` submits,
``loracap batch status|fetch|cancel PROJECT`` follows a job across restarts.

A job is stored in the project, so any later ``loracap batch`` (or the window) picks it up; the
results are stored as they are fetched, each caption printed as ``caption`` prints it. The work
is :mod:`loracap.core.batches.flow`'s; this module parses, prints and waits.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from loracap.core.errors import InputError
from loracap.core.text import human_duration, json_text, tsv_field

if TYPE_CHECKING:
    from loracap.core.batches.base import BatchJobRecord, BatchService
    from loracap.core.batches.flow import FetchSummary
    from loracap.core.project import Project

EXIT_OK = 0
EXIT_INTERRUPTED = 130

#: Seconds between two looks at a job while ``batch fetch --wait`` waits (Gemini's own batch
#: examples poll every 30 s; a job takes minutes to hours).
DEFAULT_POLL_S = 60.0


def add_batch_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                     ) -> None:
    """The ``batch`` command and its actions."""
    batch = sub.add_parser(
        "batch", help="follow the project's batch API jobs: status, fetch, cancel",
        description="Batch API jobs (submitted with `loracap caption PROJECT --batch`: half "
        "the price, results within 24 hours). Each job is stored in the project, so these "
        "commands work after a restart, on any machine with the project and the key.")
    actions = batch.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="where each job is (asks the service)",
                                description="List the project's batch jobs; the state of "
                                "each job not fetched yet is asked of its service first.")
    status.add_argument("project", type=Path)
    status.add_argument("--json", action="store_true", help="one JSON object per job")
    fetch = actions.add_parser(
        "fetch", help="store the captions of the jobs that have ended",
        description="Store the results of every job that has ended (or of --job N): each "
        "caption is printed as path<TAB>caption as it is stored (--json: a JSON line). Failed "
        "images keep their reason; a person's caption is never replaced.")
    fetch.add_argument("project", type=Path)
    fetch.add_argument("--job", type=int, default=None, metavar="N", help="only job N")
    fetch.add_argument("--wait", action="store_true",
                       help="wait until the jobs end, then fetch (Ctrl+C stops waiting; the "
                       "jobs go on)")
    fetch.add_argument("--poll", type=float, default=DEFAULT_POLL_S, help=argparse.SUPPRESS)
    fetch.add_argument("--json", action="store_true", help="each caption as a JSON line")
    cancel = actions.add_parser(
        "cancel", help="ask the service to stop a job (what it finished is kept)",
        description="Ask the service to stop the project's open jobs (or --job N). Results it "
        "finished before stopping are stored by the next `loracap batch fetch`.")
    cancel.add_argument("project", type=Path)
    cancel.add_argument("--job", type=int, default=None, metavar="N", help="only job N")


def cmd_batch(args: argparse.Namespace) -> int:
    from loracap.core.project import Project

    with Project.open(args.project.expanduser()) as project:
        if args.batch_command == "status":
            return _status(project, args)
        if args.batch_command == "fetch":
            return _fetch(project, args)
        return _cancel(project, args)


def submit_from_cli(project: Project, args: argparse.Namespace, mode: object,
                    ids: tuple[int, ...]) -> int:
    """``loracap caption PROJECT --batch``: choose the images, prepare and submit them."""
    from loracap.cli import _Progress
    from loracap.cli_backend import batch_config
    from loracap.core.batches.flow import (
        batch_service,
        batch_settings,
        check_batchable,
        choose_images,
        submit_batch,
    )
    from loracap.core.project import CaptionMode

    assert isinstance(mode, CaptionMode)
    check_batchable(project)
    config = batch_config(project, args)
    if config.hints is not None:
        raise InputError("Combined captions (tagger hints) run a local tagger on each image "
                         "first, so they cannot go through a batch API. Turn the hints off or "
                         "caption without --batch.")
    chosen, protected, busy = choose_images(project, mode, ids,
                                            overwrite_protected=args.overwrite_edited)
    err = sys.stderr
    if protected:
        err.write(f"{protected} image(s) with edited, manual or imported captions were left "
                  "alone; add --overwrite-edited to replace them (old text stays in the "
                  "history).\n")
    if busy:
        err.write(f"{busy} image(s) already wait in an open batch job and were left out "
                  "(see `loracap batch status`).\n")
    if not chosen:
        err.write(f"Nothing to caption (--only {args.only}).\n")
        return EXIT_OK
    settings = batch_settings(project, max_side=args.max_side,
                              overwrite_protected=args.overwrite_edited)
    progress = _Progress(err)
    cancel = threading.Event()
    total_images = len(chosen)

    step = max(1, total_images // 10)

    def on_prepared(done: int, total: int) -> None:
        if progress.interactive or done % step == 0 or done == total:  # a log: every 10 %
            progress.show(f"Preparing {done} of {total} image(s)", done / total)

    service = batch_service(config)
    try:
        with _cancel_on_ctrl_c(cancel):
            job = submit_batch(project, service, chosen, settings, base_url=config.base_url,
                               on_prepared=on_prepared, cancel=cancel)
    finally:
        progress.clear()
        service.close()
    left = job.counts.get("failed", 0)
    err.write(f"Submitted {job.requests - left} image(s) to the {_service_name(job.backend)} "
              f"batch API as {job.name}, at half the price; results usually arrive within "
              "24 hours.\n")
    if left:
        err.write(f"{left} image(s) could not be read and were left out "
                  f"(see `loracap info {args.project} --list`).\n")
    err.write(f"Follow it with `loracap batch status {args.project}`; store the captions with "
              f"`loracap batch fetch {args.project}` (add --wait to wait for them).\n")
    if args.json:
        sys.stdout.write(json_text(_job_json(job)) + "\n")
    return EXIT_OK


@contextmanager
def _cancel_on_ctrl_c(cancel: threading.Event) -> Iterator[None]:
    """The first Ctrl+C sets ``cancel`` (the preparation stops before anything is sent); a
    second one interrupts at once."""
    previous = signal.getsignal(signal.SIGINT)

    def interrupt(_signum: int, _frame: object) -> None:
        cancel.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is interrupt:
            signal.signal(signal.SIGINT, previous)


def _service_for(project: Project, job: BatchJobRecord) -> BatchService:
    """The batch service a job was submitted to, with today's key for its backend."""
    from loracap.core.backends.registry import resolve_config
    from loracap.core.batches.flow import batch_service

    config = resolve_config(project.settings, backend=job.backend, model=job.model,
                            base_url=job.base_url or None)
    return batch_service(config)


def _jobs(project: Project, args: argparse.Namespace, *, open_only: bool
          ) -> list[BatchJobRecord]:
    if getattr(args, "job", None) is not None:
        return [project.batch_job(args.job)]
    return project.batch_jobs(open_only=open_only)


def _status(project: Project, args: argparse.Namespace) -> int:
    from loracap.core.batches.flow import refresh_job

    jobs = []
    for job in project.batch_jobs():
        if job.open and not job.state.ended:
            with closing(_service_for(project, job)) as service:
                job = refresh_job(project, service, job)
        jobs.append(job)
    out = sys.stdout
    if args.json:
        for job in jobs:
            out.write(json_text(_job_json(job)) + "\n")
        return EXIT_OK
    if not jobs:
        out.write("No batch jobs (submit one with `loracap caption PROJECT --batch`).\n")
        return EXIT_OK
    for job in jobs:
        out.write(job_line(job) + "\n")
    if any(job.open and job.state.ended for job in jobs):
        out.write(f"Store the results with `loracap batch fetch {args.project}`.\n")
    return EXIT_OK


def job_line(job: BatchJobRecord, now: datetime | None = None) -> str:
    """One line on a job: ``"job 2 (batches/abc) gemini gemini-2.5-flash: running, 120
    image(s), submitted 2 h ago"`` and what became of its images."""
    now = now or datetime.now(UTC)
    age = human_duration(max(0.0, (now - job.created_at).total_seconds()))
    state = job.state.label
    if job.state.ended and job.open:
        state += ", results not fetched yet"
    parts = [f"{job.name} {job.backend} {job.model}: {state}, {job.requests} image(s), "
             f"submitted {age} ago"]
    done = {name: count for name, count in job.counts.items() if name != "waiting" and count}
    if done:
        parts.append(", ".join(f"{count} {name}" for name, count in sorted(done.items())))
    if job.error:
        parts.append(job.error)
    if not job.remote_id and job.state.value == "submitting":
        parts.append("LoRACap stopped while submitting it: it may or may not have reached "
                     "the service (`loracap batch cancel --job "
                     f"{job.id}` forgets it here)")
    return "; ".join(parts)


def _job_json(job: BatchJobRecord) -> dict[str, object]:
    return {"job": job.id, "remote_id": job.remote_id, "backend": job.backend,
            "model": job.model, "state": job.state.value, "remote_state": job.remote_state,
            "images": job.requests, "counts": job.counts, "fetched": job.fetched,
            "error": job.error, "created_at": job.created_at.isoformat(),
            "ended_at": job.ended_at.isoformat() if job.ended_at else None}


def _fetch(project: Project, args: argparse.Namespace) -> int:
    from loracap.core.batches.flow import refresh_job

    jobs = [job for job in _jobs(project, args, open_only=True) if job.open]
    err = sys.stderr
    if not jobs:
        err.write("No batch job waits for its results (see `loracap batch status`).\n")
        return EXIT_OK
    try:
        while True:
            waiting = []
            for job in jobs:
                with closing(_service_for(project, job)) as service:
                    if not job.remote_id:  # an interrupted submission: look for it
                        job = refresh_job(project, service, job)
                        if not job.remote_id:
                            err.write(job_line(job) + "\n")
                            continue
                    summary = _fetch_one(project, service, job, args, err)
                if summary.not_ready:
                    waiting.append(project.batch_job(job.id))
            if not waiting or not args.wait:
                for job in waiting:
                    err.write(f"{job.name} is {job.state.label}; nothing to fetch yet"
                              f"{'' if args.wait else ' (add --wait to wait for it)'}.\n")
                return EXIT_OK
            err.write(f"Waiting for {len(waiting)} job(s); looking again in "
                      f"{human_duration(args.poll)} (Ctrl+C stops waiting, the jobs go on).\n")
            time.sleep(max(0.05, args.poll))
            jobs = waiting
    except KeyboardInterrupt:
        err.write("Stopped waiting. The jobs go on; fetch them later with "
                  f"`loracap batch fetch {args.project}`. Everything fetched is stored.\n")
        return EXIT_INTERRUPTED


def _fetch_one(project: Project, service: BatchService, job: BatchJobRecord,
               args: argparse.Namespace, err: TextIO) -> FetchSummary:
    from loracap.core.batches.flow import fetch_results
    from loracap.core.trigger import full_caption

    settings = project.settings
    paths = {rec.id: rec.path for rec in project.images()}

    def on_result(image_id: int, state: str, text: str) -> None:
        path = str(paths.get(image_id, image_id))
        if state in ("done", "kept"):
            caption = full_caption(settings.prefix_template, settings.trigger, text)
            line = json_text({"path": path, "caption": caption}) if args.json else \
                f"{tsv_field(path)}\t{tsv_field(caption)}"
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    summary = fetch_results(project, service, job, on_result=on_result)
    if summary.not_ready:
        return summary
    line = f"{job.name}: stored {summary.stored} caption(s)"
    if summary.failed:
        line += f"; {len(summary.failed)} failed"
    err.write(line + ".\n")
    for image_id, reason in summary.failed:
        err.write(f"  failed: {paths.get(image_id, image_id)}: {reason}\n")
    if summary.kept:
        err.write(f"{summary.kept} caption(s) edited meanwhile were kept (the batch's text "
                  "is in their history).\n")
    if summary.gone:
        err.write(f"{summary.gone} image(s) got no result ({job.state.label}); the next "
                  f"`loracap caption {args.project}` takes them again.\n")
    if summary.failed:
        err.write(f"Retry the failed ones with `loracap caption {args.project} --only "
                  "failed` (add --batch for another batch job).\n")
    return summary


def _cancel(project: Project, args: argparse.Namespace) -> int:
    from loracap.core.batches.base import JobState
    from loracap.core.batches.flow import cancel_job, refresh_job

    jobs = [job for job in _jobs(project, args, open_only=True)
            if job.open and not job.state.ended]
    err = sys.stderr
    if not jobs:
        err.write("No batch job is running (see `loracap batch status`).\n")
        return EXIT_OK
    for job in jobs:
        if not job.remote_id:  # an interrupted submission: look for it first
            with closing(_service_for(project, job)) as service:
                job = refresh_job(project, service, job)
        if not job.remote_id:
            project.update_batch_job(job.id, state=JobState.FAILED,
                                     error="forgotten: LoRACap stopped while submitting it")
            project.close_batch_job(job.id, "the batch job was not submitted")
            err.write(f"{job.name} was forgotten here; its images are free for the next "
                      "run.\n")
            continue
        with closing(_service_for(project, job)) as service:
            job = cancel_job(project, service, job)
        err.write(f"{job.name} is {job.state.label}. What it finished is stored by "
                  f"`loracap batch fetch {args.project}`.\n")
    return EXIT_OK


def _service_name(backend: str) -> str:
    return {"gemini": "Gemini", "anthropic": "Anthropic", "openai": "OpenAI"}.get(backend,
                                                                                  backend)
