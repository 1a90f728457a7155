r"""The headless command line: ``loracap run | new | caption | export | info | check | tags | key``.

Results go to standard output, progress and messages to standard error. Exit codes:
0 done (a ``caption`` batch that ran to its end with some failed images is done), 2 bad usage or
input (also a project, folder or output that cannot be written: read-only or not permitted),
3 authentication failure (also an API key that cannot be one), 4 quota exhausted, 130
interrupted, 141 standard output closed early (``| head``: quiet, as a Unix tool killed by
SIGPIPE), 1 anything else (e.g. ``run`` ending with failed images, so nothing was exported).
Errors are one clear line, never a traceback (``--debug`` shows one).

Machine-readable output: every ``<TAB>``-separated line escapes its fields with
:func:`loracap.core.text.tsv_field` (``\\`` ``\t`` ``\n`` ``\r``, ``\xHH`` for other control
characters), so a line is always one record; ``--json`` prints the same lists as JSON (one
object per line as captions arrive for ``caption`` and ``run``).
"""

from __future__ import annotations

import argparse
import codecs
import errno
import getpass
import io
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from loracap import __version__
from loracap.cli_backend import add_backend_arguments, cmd_models, cmd_prices
from loracap.core.errors import InputError, LoraCapError, stop_advice
from loracap.core.logs import configure_logging, redact
from loracap.core.profiles import Profile
from loracap.core.text import (
    CAPTION_VERBS,
    QA_VERBS,
    human_duration,
    json_text,
    no_usable_images_message,
    progress_text,
    tsv_field,
)
from loracap.core.userdirs import user_dirs

if TYPE_CHECKING:
    from loracap.core.backends.base import BackendConfig
    from loracap.core.captioning import Captioner
    from loracap.core.exports import ReviewFilter
    from loracap.core.project import AddResult, CaptionMode, Project
    from loracap.core.qa.generate import QAOptions
    from loracap.core.records import ProjectSettings
    from loracap.core.scan import ScannedFile
    from loracap.jobs.runner import BatchOptions, BatchSummary

log = logging.getLogger("loracap.cli")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: Standard output was closed early (``loracap info --list | head``): 128 + SIGPIPE, the status
#: a shell reports for a Unix tool that SIGPIPE ended.
EXIT_BROKEN_PIPE = 141

#: Longest ``--timeout`` in seconds: an hour (a request that long is not coming back).
MAX_TIMEOUT_S = 3600.0

#: What :func:`build_parser` adds each subcommand to.
_Subparsers = argparse._SubParsersAction  # type: ignore[type-arg]

#: The caption profiles ``--profile`` takes.
_PROFILE_CHOICES = [profile.value for profile in Profile]

#: What ``--help`` says of the tab-separated lines (see :func:`loracap.core.text.tsv_field`).
_TSV_HELP = ("tab-separated lines; backslash, tab, line feed and carriage return in a field are "
             r"written \\, \t, \n, \r (other control characters \xHH)")

#: The backup copy a migration writes (``name.v3-backup.loraproj``, ``name.v3-backup-2.…``).
_BACKUP_NAME = re.compile(r"\.v\d+-backup(-\d+)?\.loraproj$")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line on stderr, pointing to ``--help`` (not argparse's usage block); exit 2."""
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _seconds(text: str) -> float:
    """A request timeout: a finite number of seconds above 0, at most :data:`MAX_TIMEOUT_S`
    (``nan``, ``inf`` and ``1e308`` would break the HTTP client's timer)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT_S:  # False for nan too
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}")
    return value


def _add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=_positive, default=None,
                        help="requests at once (default: the backend's: 4; 1-2 for a local "
                        "server or tagger)")
    parser.add_argument("--rpm", type=_non_negative, default=None,
                        help="requests per minute at most, 0 for no limit (default: the "
                        "backend's: 10 for Gemini, the free tier's order; none for a local "
                        "server or tagger)")
    parser.add_argument("--attempts", type=_positive, default=5,
                        help="tries per image on transient errors (default 5)")
    parser.add_argument("--timeout", type=_seconds, default=60.0,
                        help=f"seconds per request, above 0 and at most {MAX_TIMEOUT_S:g} "
                        "(default 60)")
    parser.add_argument("--max-side", type=_positive, default=1536,
                        help="long side in pixels of the image sent (default 1536)")


def _add_export_arguments(parser: argparse.ArgumentParser) -> None:
    from loracap.core.exports import FORMATS

    names = [fmt.value for fmt in FORMATS]
    parser.add_argument("--format", choices=names, default="replicate", metavar="FORMAT",
                        help=f"what to write: {', '.join(names)} (default: replicate)")
    parser.add_argument("--out", type=Path,
                        help="output file or folder (default: beside the project); a folder "
                        "format writes a zip when it ends in .zip (ai-toolkit)")
    parser.add_argument("--skip-untrainable", action="store_true",
                        help="leave out images the trainer cannot train on (too small) "
                        "instead of stopping")
    parser.add_argument("--trigger-placeholder", action="store_true",
                        help="write [trigger] instead of the trigger word (ai-toolkit, fal)")
    parser.add_argument("--repeats", type=_positive, default=10,
                        help="kohya: how often each image is seen per epoch (default 10)")
    parser.add_argument("--caption-ext", default=None,
                        help="kohya: the caption file extension, .caption (default) or .txt")
    parser.add_argument("--rename", default="", metavar="PREFIX",
                        help="name the images PREFIX_0001.jpg … in file-name order "
                        "(renames.csv lists the old paths)")
    parser.add_argument("--allow-outside", action="store_true",
                        help="also export images the project file names outside its folder "
                        "(each is checked to be an image); without it they stop the export")
    _add_review_arguments(parser)


def _add_review_arguments(parser: argparse.ArgumentParser) -> None:
    review = parser.add_mutually_exclusive_group()
    review.add_argument("--only-approved", action="store_true",
                        help="export only the images marked approved")
    review.add_argument("--skip-rejected", action="store_true",
                        help="leave out the images marked rejected (the default once any "
                        "image is rejected)")
    review.add_argument("--include-rejected", action="store_true",
                        help="export the images marked rejected too")


def _add_run_parser(sub: _Subparsers) -> None:
    run = sub.add_parser(
        "run", help="the whole job: create or reopen the project, caption what is missing, export",
        description="Create FOLDER/TRIGGER.loraproj (or reopen it and add new images), caption "
        "the images without a caption, then export, replacing the previous export this project "
        "wrote. Run it again after a stop: it continues where it stopped.",
    )
    run.add_argument("folder", type=Path, help="folder of images (scanned recursively)")
    run.add_argument("--trigger", required=True, help="trigger word, e.g. ide_main_hall")
    run.add_argument("--profile", choices=_PROFILE_CHOICES, default=None,
                     help="caption profile of a new project (default: space)")
    run.add_argument("--prompt", default=None, help="the prompt of the custom profile")
    run.add_argument("--force", action="store_true",
                     help="replace an output file that this project's exports did not write")
    add_backend_arguments(run, saved=False)
    run.add_argument("--json", action="store_true",
                     help='each caption as a JSON line {"path", "caption"} as it arrives, then '
                     '{"export": PATH}, instead of path<TAB>caption lines and the path')
    _add_batch_arguments(run)
    _add_export_arguments(run)


def _add_new_parser(sub: _Subparsers) -> None:
    new = sub.add_parser("new", help="create a project from a folder of images")
    new.add_argument("folder", type=Path, help="folder of images (scanned recursively)")
    new.add_argument("--trigger", required=True, help="trigger word, e.g. ide_main_hall")
    new.add_argument("--profile", choices=_PROFILE_CHOICES, default="space",
                     help="caption profile (default: space)")
    new.add_argument("--prompt", default="", help="the prompt of the custom profile")
    new.add_argument("--project", type=Path, help="project file (default: FOLDER/TRIGGER.loraproj)")
    new.add_argument("--prefix", default=None,
                     help='caption prefix template (default: "photo of {trigger} ")')
    add_backend_arguments(new, saved=True)
    new.add_argument("--aliases", default="", metavar="NAMES",
                     help='multi-person profile: the first people\'s aliases, comma-separated, '
                     'e.g. "anna,ben" (default: sksA, sksB, then unidentified woman/man/person)')
    new.add_argument("--detector", type=Path, default=None, metavar="MODEL.onnx",
                     help="multi-person profiles: a YOLO person detector exported to ONNX that "
                     "finds the people on this computer instead of the vision model")
    new.add_argument("--language", default="en",
                     help="caption language code: en (default), zh-Hans, tr, de, nl, fr, es, ja, "
                     "... (the trigger prefix stays as it is)")


def _add_caption_parser(sub: _Subparsers) -> None:
    cap = sub.add_parser(
        "caption", help="caption the project's images (Gemini, an OpenAI-compatible server, "
        "Claude or a WD14 tagger)",
        description="Caption the project's images; each caption is printed on standard output "
        f"as it arrives, as path<TAB>caption ({_TSV_HELP}), or with --json as one JSON object "
        'per line: {"path": ..., "caption": ...}.')
    cap.add_argument("project", type=Path)
    cap.add_argument("--only", choices=["missing", "all", "failed"], default="missing",
                     help="which images: without a caption (default), all, or only failed")
    cap.add_argument("--image", action="append", default=[], metavar="PATH",
                     help="caption just this image (repeatable; path as `info --list` shows it)")
    add_backend_arguments(cap, saved=False)
    cap.add_argument("--estimate", action="store_true",
                     help="print the requests, tokens and cost the batch should take, and send "
                     "nothing")
    _add_batch_arguments(cap)
    cap.add_argument("--overwrite-edited", action="store_true",
                     help="also replace edited, manual and imported captions (kept in history)")
    cap.add_argument("--batch", action="store_true",
                     help="send the images as one batch API job (Gemini, Anthropic or OpenAI: "
                     "half the price, results within 24 hours; follow it with `loracap "
                     "batch`)")
    cap.add_argument("--json", action="store_true",
                     help='each caption as a JSON line {"path", "caption"} as it arrives')


def _add_export_parser(sub: _Subparsers) -> None:
    exp = sub.add_parser("export", help="write what a trainer reads (zip, folder or file)")
    exp.add_argument("project", type=Path)
    exp.add_argument("--force", action="store_true",
                     help="replace an existing export (never a file or folder that is not one)")
    exp.add_argument("--allow-uncaptioned", action="store_true",
                     help="export images without a caption (Replicate then captions them)")
    _add_export_arguments(exp)


def _add_info_parser(sub: _Subparsers) -> None:
    info = sub.add_parser(
        "info", help="show a project's counts",
        description=f"Show a project's counts; --list adds path<TAB>state lines ({_TSV_HELP}).")
    info.add_argument("project", type=Path)
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--list", action="store_true", help="list every image with its state")


def _add_check_parser(sub: _Subparsers) -> None:
    check = sub.add_parser(
        "check", help="list caption and image problems of a project",
        description=f"List what may weaken the LoRA as path<TAB>kind<TAB>message lines "
        f"({_TSV_HELP}); a summary on standard error.")
    check.add_argument("project", type=Path)
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--no-near-duplicates", action="store_true",
                       help="skip the look-alike image search (opens no image file)")


def _add_tags_parser(sub: _Subparsers) -> None:
    tags = sub.add_parser(
        "tags", help="print the project's tags, most used first (tags.txt)",
        description="Print the project's tags, most used first, as tags.txt: one tag per line, "
        "whitespace and line breaks inside a tag written as one space (as exports write "
        "captions), a tag with a comma quoted as in CSV.")
    tags.add_argument("project", type=Path)
    output = tags.add_mutually_exclusive_group()
    output.add_argument("--counts", action="store_true",
                        help=f"tag<TAB>count lines, the tag as it is in the captions ({_TSV_HELP})")
    output.add_argument("--json", action="store_true",
                        help='a JSON list of {"tag", "count"}, most used first')


def _add_models_parser(sub: _Subparsers) -> None:
    from loracap.core.backends.registry import backend_names

    models = sub.add_parser(
        "models", help="list the models a backend offers",
        description="List the models of the project's backend, or of --backend: the server's "
        "list (Gemini, an OpenAI-compatible server's /v1/models, Claude) or the known WD14 "
        "taggers.")
    models.add_argument("project", type=Path, nargs="?", default=None)
    models.add_argument("--backend", choices=backend_names(), default=None)
    models.add_argument("--base-url", default=None, metavar="URL")
    models.add_argument("--timeout", type=_seconds, default=30.0, help=argparse.SUPPRESS)
    models.add_argument("--json", action="store_true", help="a JSON list")


def _add_prices_parser(sub: _Subparsers) -> None:
    prices = sub.add_parser(
        "prices", help="show the price table used for costs and where to edit it")
    prices.add_argument("--json", action="store_true", help="machine-readable output")


def _add_key_parser(sub: _Subparsers) -> None:
    key = sub.add_parser(
        "key", help="store, check or remove an API key (Gemini, OpenAI-compatible, Claude)",
        description="set: save a key in the OS keychain, asked for with hidden input in a "
        "terminal, or read from standard input otherwise (`loracap key set < key.txt`); "
        "surrounding whitespace is removed, and a key must be printable ASCII without spaces "
        "or line breaks (exit 3 otherwise). status: which key is in use. clear: remove it.")
    key.add_argument("action", choices=["set", "status", "clear"])
    key.add_argument("--backend", choices=["gemini", "openai", "anthropic"], default="gemini",
                     help="whose key (default: gemini)")


def _add_qa_parser(sub: _Subparsers) -> None:
    from loracap.cli_qa import add_qa_parser

    add_qa_parser(sub)


def _add_batch_parser(sub: _Subparsers) -> None:
    from loracap.cli_batch import add_batch_parser

    add_batch_parser(sub)


#: The subparsers, in the order ``loracap --help`` lists them.
_SUBPARSERS: dict[str, Callable[[_Subparsers], None]] = {
    "run": _add_run_parser, "new": _add_new_parser, "caption": _add_caption_parser,
    "export": _add_export_parser, "info": _add_info_parser, "check": _add_check_parser,
    "tags": _add_tags_parser, "models": _add_models_parser, "prices": _add_prices_parser,
    "key": _add_key_parser, "qa": _add_qa_parser, "batch": _add_batch_parser,
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of every subcommand, or, given ``command`` (a name of
    :data:`COMMANDS`), with only that subcommand: the others' arguments import modules (the
    export formats, the question-answer prompts) that it need not wait for (``loracap info``
    answers in about a tenth of a second; issue 15)."""
    parser = _ArgumentParser(
        prog="loracap",
        description="Turn a folder of photos into a captioned, trainer-ready LoRA dataset. "
        "Without a command, `loracap` opens the window (`loracap FOLDER` starts a new project "
        "from FOLDER, `loracap PROJECT.loraproj` opens one).",
    )
    parser.add_argument("--version", action="version", version=f"LoRACap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for name, add in _SUBPARSERS.items():
        if command is None or command == name:
            add(sub)
    return parser


# ---------------------------------------------------------------------- progress


class _Progress:
    """A progress line on stderr: redrawn in place on a terminal, one line per step otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._drawn = False

    @property
    def interactive(self) -> bool:
        """True when the stream is a terminal (the line is redrawn in place)."""
        return self._tty

    def show(self, text: str, fraction: float | None = None) -> None:
        if not self._tty:
            self._stream.write(text + "\n")
            self._stream.flush()
            return
        bar = ""
        if fraction is not None:
            filled = int(24 * max(0.0, min(1.0, fraction)))
            bar = "[" + "#" * filled + "-" * (24 - filled) + "] "
        self._stream.write("\r\x1b[2K" + bar + text)
        self._stream.flush()
        self._drawn = True

    def message(self, text: str) -> None:
        """A line of its own that does not clobber the progress line."""
        self.clear()
        self._stream.write(text + "\n")
        self._stream.flush()

    def clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False


# ---------------------------------------------------------------------- commands


def _scan(folder: Path) -> list[ScannedFile]:
    """Scan ``folder`` with a progress line on stderr."""
    from loracap.core.scan import scan_folder

    progress = _Progress(sys.stderr)

    def on_file(count: int, rel_path: str) -> None:
        if progress.interactive or count % 100 == 0:
            progress.show(f"Scanning {count}: {rel_path}")

    try:
        return list(scan_folder(folder, progress=on_file))
    finally:
        progress.clear()


def _require_usable(folder: Path, files: Sequence[ScannedFile]) -> None:
    """Raise :class:`InputError` (exit 2) with the New Project dialog's words when ``files``
    holds no usable image; the unusable files are listed on stderr first."""
    invalid = [f for f in files if not f.info.valid]
    if len(invalid) < len(files):
        return
    for scanned in invalid:
        sys.stderr.write(f"  {scanned.rel_path}: {scanned.info.reason}\n")
    raise InputError(f"{folder}: {no_usable_images_message(len(files), len(invalid))}")


def _write_added(out: TextIO, files: Sequence[ScannedFile], result: AddResult) -> None:
    """List the unusable files among ``files`` (those just added) and unreadable sidecars."""
    invalid = [f for f in files if not f.info.valid]
    if invalid:
        out.write("Invalid files (not part of the dataset):\n")
        for scanned in invalid:
            out.write(f"  {scanned.rel_path}: {scanned.info.reason}\n")
    for rel, reason in result.sidecar_errors:
        out.write(f"  caption file of {rel} not imported: {reason}\n")


def _write_foreign_prefixes(out: TextIO, files: Sequence[ScannedFile], template: str,
                            trigger: str) -> None:
    """Say how many of the sidecar captions imported from ``files`` start with another trigger
    word's prefix (:func:`~loracap.core.trigger.foreign_prefix_note`); nothing is stripped."""
    from loracap.core.trigger import foreign_prefix_note

    note = foreign_prefix_note((f.sidecar_caption for f in files
                                if f.info.valid and f.sidecar_caption), template, trigger)
    if note:
        out.write(f"{note}; `loracap check` lists them, and Review > Check Dataset in the "
                  "window can strip it.\n")


def _detector_path(path: Path) -> Path:
    """The absolute path of ``--detector``; :class:`InputError` (exit 2) unless it is a file."""
    full = path.expanduser().absolute()
    if not full.is_file():
        raise InputError(f"The person detector {full} is not a file; give the .onnx file of a "
                         "YOLO model exported to ONNX.")
    return full


def _aliases(text: str) -> list[str]:
    """The aliases of ``--aliases "anna,ben"`` (:func:`loracap.core.people.parse_aliases`),
    ``[]`` when not given; raises :class:`InputError` (exit 2) for a bad list."""
    if not text.strip():
        return []
    from loracap.core.people import parse_aliases

    return list(parse_aliases(text))


def _backend_kwargs(args: argparse.Namespace) -> dict[str, str]:
    """The backend settings of a new project from ``--backend``, ``--model``, ``--base-url``:
    the backend's default model when ``--model`` is left out."""
    from loracap.core.backends.base import check_base_url
    from loracap.core.backends.registry import backend_info
    from loracap.core.trusted_servers import trust_server

    info = backend_info(args.backend or "gemini")
    kwargs = {"backend": info.name, "model": args.model or info.default_model}
    if args.base_url:
        kwargs["base_url"] = check_base_url(args.base_url, info.name)
        trust_server(info.name, kwargs["base_url"])  # the user named it
    return kwargs


def cmd_new(args: argparse.Namespace) -> int:
    from loracap.core.errors import ProjectError
    from loracap.core.project import Project, default_project_path
    from loracap.core.prompts import Profile, build_instructions
    from loracap.core.trigger import validate_trigger

    trigger = validate_trigger(args.trigger)
    folder: Path = args.folder.expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder.")
    profile = Profile(args.profile)
    build_instructions(profile, args.prompt)  # a custom profile needs a prompt: check early
    path = (args.project or default_project_path(folder, trigger)).expanduser().absolute()
    if path.exists():
        raise ProjectError(
            f"{path} already exists. Caption it with `loracap caption {path}`, or choose "
            "another path with --project (`loracap run` continues an existing project)."
        )
    started = time.monotonic()
    files = _scan(folder)
    _require_usable(folder, files)
    kwargs = {"prefix_template": args.prefix} if args.prefix is not None else {}
    kwargs.update(_backend_kwargs(args))
    kwargs["language"] = args.language
    aliases = _aliases(args.aliases)
    with Project.create(
        path, trigger=trigger, profile=profile.value, custom_prompt=args.prompt,
        name=folder.name, **kwargs,
    ) as project:
        if aliases:
            project.update_settings(aliases=aliases)
        if args.detector is not None:
            project.update_settings(detector=str(_detector_path(args.detector)))
        result = project.add_scanned(files)
        prefix = project.settings.prefix
        template = project.settings.prefix_template
    valid = result.added - result.invalid
    out = sys.stdout
    out.write(f"Created {path}\n")
    out.write(f"  {valid} image(s), {result.invalid} invalid, "
              f"{result.imported_captions} caption(s) imported from .txt files "
              f"({human_duration(time.monotonic() - started)})\n")
    out.write(f"  trigger word: {trigger}   caption prefix: \"{prefix}\"\n")
    _write_added(out, files, result)
    _write_foreign_prefixes(sys.stderr, files, template, trigger)
    return EXIT_OK


def _run_batch(project: Project, captioner: Captioner, options: BatchOptions,
               args: argparse.Namespace) -> BatchSummary:
    """Run one captioning batch under a QCoreApplication, with the progress line on stderr
    (counts, failures, and the countdown while the batch waits) and each caption on stdout as
    ``path<TAB>caption``. Ctrl+C stops at once (:meth:`CaptionRunner.abort`); a second Ctrl+C
    ends the process."""
    from PyQt6.QtCore import QCoreApplication, QTimer

    from loracap.core.prompts import build_instructions
    from loracap.core.trigger import full_caption
    from loracap.jobs.runner import CaptionRunner

    settings = project.settings
    instructions = build_instructions(Profile(settings.profile), settings.custom_prompt,
                                      language=settings.language)
    app = QCoreApplication.instance() or QCoreApplication([sys.argv[0]])
    runner = CaptionRunner(project, captioner, instructions, options)
    progress = _Progress(sys.stderr)
    missing = project.missing_images()
    if missing:
        progress.message(
            f"warning: {len(missing)} image file(s) are missing on disk and are skipped "
            f"(moved or renamed?), e.g. {missing[0].path}"
        )
    paths = {rec.id: rec.path for rec in project.images()}
    results: list[BatchSummary] = []
    # The latest progress and wait, and what was last written when stderr is not a terminal
    # (a log then gets a line per finished image and one when a wait starts, not one a second).
    state: dict[str, Any] = {"counts": (0, 0, 0, -1.0), "wait": (0.0, ""), "logged": None,
                             "pipe_closed": False}

    def draw() -> None:
        done, failed, total, eta = state["counts"]
        seconds, reason = state["wait"]
        if not progress.interactive:
            key = (done, failed, total, reason)
            logged = state["logged"]
            if logged is not None and (key == logged or key[:3] == logged[:3] and not reason):
                return
            state["logged"] = key
        fraction = (done + failed) / total if total else 1.0
        verbs = QA_VERBS if options.qa is not None else CAPTION_VERBS
        progress.show(progress_text(done, failed, total, eta, seconds, reason, verbs), fraction)

    def on_progress(done: int, failed: int, total: int, eta: float) -> None:
        state["counts"] = (done, failed, total, eta)
        draw()

    def on_waiting(seconds: float, reason: str) -> None:
        state["wait"] = (seconds, reason) if reason else (0.0, "")
        if state["counts"][2]:
            draw()

    def on_captioned(image_id: int, body: str) -> None:
        progress.clear()
        # A question-answer batch reports what it stored ("3 pairs"), not a caption.
        caption = body if options.qa is not None else \
            full_caption(settings.prefix_template, settings.trigger, body)
        path = str(paths.get(image_id, image_id))
        if getattr(args, "json", False):
            key = "qa" if options.qa is not None else "caption"
            line = json_text({"path": path, key: caption})
        else:
            line = f"{tsv_field(path)}\t{tsv_field(caption)}"
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # Nobody reads the captions any more (`| head`): no new requests; every caption is
            # saved in the project all the same. main() then exits quietly.
            if not state["pipe_closed"]:
                state["pipe_closed"] = True
                runner.cancel()

    def on_failed(image_id: int, reason: str) -> None:
        progress.message(redact(f"failed: {paths.get(image_id, image_id)}: {reason}"))

    def on_retry(image_id: int, reason: str, delay: float) -> None:
        if args.verbose:
            progress.message(f"retrying {paths.get(image_id, image_id)} in {delay:.0f} s: "
                             f"{reason}")

    def on_finished(summary: BatchSummary) -> None:
        results.append(summary)
        app.quit()

    runner.progress.connect(on_progress)
    runner.waiting.connect(on_waiting)
    runner.captioned.connect(on_captioned)
    runner.failed.connect(on_failed)
    runner.retrying.connect(on_retry)
    runner.finished.connect(on_finished)

    def interrupt(_signum: int, _frame: object) -> None:
        # The first Ctrl+C stops at once: no new requests, requests still waiting for their
        # answer dropped (an answer that arrives before the exit is saved). A second one ends
        # the process at once, whatever it is doing: SIGINT's default action (shells report
        # 130). Every caption reported was committed first, so it loses nothing reported.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        progress.message("Cancelling: no new requests, no more waiting for answers "
                         "(Ctrl+C again quits at once)…")
        runner.abort()

    previous = signal.signal(signal.SIGINT, interrupt)
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)  # lets Python run the signal handler
    ticker.start(200)
    try:
        runner.start()
        if not results:
            app.exec()
    finally:
        ticker.stop()
        if signal.getsignal(signal.SIGINT) is interrupt:  # else a second Ctrl+C quits at once
            signal.signal(signal.SIGINT, previous)
        runner.wait()
    progress.clear()
    if state["pipe_closed"]:
        raise BrokenPipeError("standard output was closed")
    return results[0]


def _batch_options(args: argparse.Namespace, config: BackendConfig, settings: ProjectSettings,
                   mode: CaptionMode, ids: tuple[int, ...] = (), overwrite: bool = False
                   ) -> BatchOptions:
    from loracap.cli_backend import batch_pace
    from loracap.core.captioning_people import people_options
    from loracap.jobs.runner import BatchOptions

    workers, rpm = batch_pace(config, args)
    return BatchOptions(
        mode=mode, image_ids=ids, overwrite_protected=overwrite, workers=workers,
        rpm=rpm, max_attempts=args.attempts, max_side=args.max_side,
        people=people_options(settings),
    )


def _caption_batch(project: Project, args: argparse.Namespace, mode: CaptionMode,
                   ids: tuple[int, ...] = (), overwrite: bool = False,
                   qa: QAOptions | None = None) -> BatchSummary:
    """Build the batch's captioner (key, model download), run the batch -- of captions, or of
    question-answer pairs with ``qa`` (``loracap qa``) -- keep what the captioner learned
    about its server, and close it."""
    from dataclasses import replace

    from loracap.cli_backend import batch_config, make_captioner, save_learned

    config = batch_config(project, args)
    options = _batch_options(args, config, project.settings, mode, ids, overwrite)
    if qa is not None:
        options = replace(options, people=None, qa=qa)
    if options.people is not None and options.people.detector is not None:
        options.people.detector.load()  # a model that cannot be used: one line, before paying
    captioner = make_captioner(config)
    summary: BatchSummary | None = None
    try:
        summary = _run_batch(project, captioner, options, args)
    finally:
        try:
            save_learned(project, config, captioner,
                         answered=summary is not None and summary.done > 0)
        finally:
            captioner.close()
    return summary


def cmd_caption(args: argparse.Namespace) -> int:
    from loracap.cli_backend import write_estimate
    from loracap.core.project import CaptionMode, Project
    from loracap.core.prompts import build_instructions

    with Project.open(args.project.expanduser(), read_only=args.estimate) as project:
        settings = project.settings
        build_instructions(Profile(settings.profile), settings.custom_prompt)
        mode = CaptionMode(args.only)
        ids: tuple[int, ...] = ()
        if args.image:
            mode = CaptionMode.SELECTED
            ids = _resolve_images(project, args.image)
        if args.estimate:
            from loracap.core.backends.registry import resolve_config

            config = resolve_config(settings, backend=args.backend, model=args.model,
                                    base_url=args.base_url, model_dir=args.model_dir,
                                    need_key=False)
            chosen, _ = project.select_for_captioning(
                mode, ids, overwrite_protected=args.overwrite_edited)
            if args.batch:
                busy = project.images_in_open_batches()
                chosen = [image_id for image_id in chosen if image_id not in busy]
            return write_estimate(project, config, chosen, args.max_side, args.json,
                                  batch=args.batch)
        if args.batch:
            from loracap.cli_batch import submit_from_cli

            return submit_from_cli(project, args, mode, ids)
        summary = _caption_batch(project, args, mode, ids, args.overwrite_edited)
        return _report_batch(summary, args)


def _resolve_images(project: Project, wanted: Sequence[str]) -> tuple[int, ...]:
    records = project.images()
    by_path = {rec.path: rec.id for rec in records}
    by_abs = {rec.abs_path.resolve(): rec.id for rec in records}
    ids = []
    for item in wanted:
        if item in by_path:
            ids.append(by_path[item])
            continue
        found = by_abs.get(Path(item).expanduser().resolve())
        if found is None:
            raise InputError(f"{item} is not an image of this project (see `loracap info --list`).")
        ids.append(found)
    return tuple(ids)


def _report_batch(summary: BatchSummary, args: argparse.Namespace) -> int:
    """Write how a batch ended to stderr; returns the exit code.

    A stop (bad key, daily quota, no network) prints its message once, with what to do
    (:func:`loracap.core.errors.stop_advice`). Failed images are listed with the way to retry
    them: ``--only failed`` for ``caption``; running the same command again for ``run``, which
    then exits 1 (nothing is exported while images lack a caption).
    """
    err = sys.stderr
    run = args.command == "run"
    qa = args.command == "qa"
    if summary.skipped_protected:
        err.write(
            f"{summary.skipped_protected} image(s) with edited, manual or imported captions were "
            "left alone; add --overwrite-edited to replace them (old text stays in the history).\n"
        )
    if summary.in_batch_jobs:
        err.write(f"{summary.in_batch_jobs} image(s) wait for the result of an open batch job "
                  "and were left out (see `loracap batch status`; --image or --only all "
                  "captions them anyway).\n")
    if summary.total == 0:
        if qa and args.qa_command == "answer":
            err.write("No question is waiting for an answer.\n")
        else:
            err.write(f"Nothing to {'ask about' if qa else 'caption'} "
                      f"(--only {getattr(args, 'only', 'missing')}).\n")
        return EXIT_OK
    verb = "Asked about" if qa else "Captioned"
    line = (f"{verb} {summary.done} of {summary.total} image(s) in "
            f"{human_duration(summary.elapsed_s)}")
    if summary.failed:
        line += f"; {len(summary.failed)} failed"
    err.write(line + ".\n")
    for _, path, reason in summary.failed:
        err.write(redact(f"  failed: {path}: {reason}") + "\n")
    if summary.kept:
        err.write(f"{len(summary.kept)} caption(s) edited meanwhile were kept.\n")
    if summary.stop_error is not None:
        err.write(redact(f"loracap: stopped: {summary.stop_error}") + "\n")
        left = (f"{summary.not_started} image(s) not "
                f"{'asked about' if qa else 'captioned'} yet. ") if summary.not_started else ""
        if run:
            left += "Nothing was exported. "
        err.write(left + stop_advice(summary.stop_error, for_cli=True) + "\n")
        return summary.stop_error.exit_code
    if summary.cancelled:
        err.write(f"Cancelled; {summary.not_started} image(s) left for the next run.\n")
        return EXIT_INTERRUPTED
    if summary.failed:
        if run:
            err.write(f"loracap: {len(summary.failed)} image(s) could not be captioned, so "
                      "nothing was exported. Run the same command again to retry them (images "
                      "Gemini keeps refusing need a caption written by hand, e.g. in the "
                      "window).\n")
            return EXIT_FAILURE
        if qa:
            err.write(f"Retry them with `loracap qa {args.qa_command} {args.project}` (images "
                      "without pairs or answers are taken again).\n")
        else:
            err.write(f"Retry them with `loracap caption {args.project} --only failed`.\n")
    return EXIT_OK


def _review_filter(args: argparse.Namespace, project: Project) -> tuple[ReviewFilter, bool]:
    """The export's review filter from the options, else the project's default (rejected
    images left out once any is rejected); the flag is True when the default was taken."""
    from loracap.core.exports import ReviewFilter, default_review_filter

    if args.only_approved:
        return ReviewFilter.APPROVED, False
    if args.skip_rejected:
        return ReviewFilter.NOT_REJECTED, False
    if args.include_rejected:
        return ReviewFilter.ALL, False
    return default_review_filter(project.stats()), True


def _export(project: Project, args: argparse.Namespace, *, allow_uncaptioned: bool,
            replace_own: bool) -> int:
    """Export with the options of ``export``/``run``; the path on stdout, a summary on stderr."""
    from loracap.core.exports import ExportOptions, ReviewFilter, export_project, get_format

    review, by_default = _review_filter(args, project)
    options = ExportOptions(
        review=review, allow_uncaptioned=allow_uncaptioned,
        skip_untrainable=args.skip_untrainable, trigger_placeholder=args.trigger_placeholder,
        repeats=args.repeats, caption_ext=args.caption_ext, rename_prefix=args.rename,
        allow_outside=args.allow_outside)
    progress = _Progress(sys.stderr)

    def on_progress(done: int, total: int) -> None:
        if progress.interactive:  # a log gets the summary only, not a line per image
            progress.show(f"Exporting {done} of {total}", done / total)
    try:
        result = export_project(
            project, get_format(args.format), args.out.expanduser() if args.out else None,
            options, force=args.force, replace_own=replace_own, progress=on_progress)
    finally:
        progress.clear()
    if getattr(args, "json", False):  # run --json: the last of its JSON lines
        sys.stdout.write(json_text({"export": str(result.path)}) + "\n")
    else:
        sys.stdout.write(f"{result.path}\n")
    sys.stdout.flush()
    err = sys.stderr
    err.write(f"Exported {result.images} image(s), {result.captions} caption(s) "
              f"({result.bytes_written / 1e6:.1f} MB)"
              f"{'; replaced the previous export' if result.replaced_own else ''}.\n")
    for change in result.renames:
        err.write(f"  renamed {change.path} -> {change.new_name} ({change.reason})\n")
    for change in result.conversions:
        err.write(f"  converted {change.path} -> {change.new_name} ({change.reason})\n")
    if result.untrainable:
        err.write(f"  {len(result.untrainable)} image(s) left out: too small for the trainer\n")
        for change in result.untrainable:
            err.write(f"    {change.path}: {change.reason}\n")
    if result.undecodable:
        several = len(result.undecodable) != 1
        err.write(f"  {len(result.undecodable)} image{'s' if several else ''} did not decode "
                  f"and {'were' if several else 'was'} left out:\n")
        for left in result.undecodable:
            marked = "; now marked invalid" if left.marked_invalid else ""
            err.write(f"    {left.path}: {left.reason}{marked}\n")
    if result.uncaptioned:
        err.write(f"  {len(result.uncaptioned)} image(s) exported without a caption.\n")
    if result.review_skipped:
        if by_default and review is ReviewFilter.NOT_REJECTED:
            err.write(f"  {len(result.review_skipped)} rejected image(s) left out; "
                      "--include-rejected exports them.\n")
        else:
            err.write(f"  {len(result.review_skipped)} image(s) left out by their review "
                      "mark.\n")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from loracap.core.errors import ProjectLockedError, ProjectNotWritableError
    from loracap.core.project import Project

    path = args.project.expanduser()
    try:
        project = Project.open(path)  # for writing, so the export is recorded
    except (ProjectLockedError, ProjectNotWritableError) as exc:
        # Open elsewhere (the window), or a read-only file or folder: export all the same,
        # without recording the export.
        log.info("%s; exporting from a read-only copy", exc)
        project = Project.open(path, read_only=True)
    with project:
        return _export(project, args, allow_uncaptioned=args.allow_uncaptioned,
                       replace_own=False)


def _other_projects(folder: Path, path: Path) -> list[tuple[Path, str]]:
    """The project files in ``folder`` other than ``path`` (backups left out), with their
    trigger words (``?`` when a file cannot be read)."""
    from loracap.core.project import PROJECT_SUFFIX, Project

    found: list[tuple[Path, str]] = []
    for other in sorted(folder.glob(f"*{PROJECT_SUFFIX}")):
        if other == path or _BACKUP_NAME.search(other.name):
            continue
        try:
            with Project.open(other, read_only=True) as project:
                trigger = project.settings.trigger
        except LoraCapError:
            trigger = "?"
        found.append((other, trigger))
    return found


def _open_for_run(args: argparse.Namespace, folder: Path, trigger: str) -> Project:
    """Reopen FOLDER/TRIGGER.loraproj (adding new images) or create it; see :func:`cmd_run`."""
    from loracap.core.project import Project, default_project_path
    from loracap.core.prompts import Profile, build_instructions

    path = default_project_path(folder, trigger)
    err = sys.stderr
    if path.is_file():
        project = Project.open(path)
        try:
            settings = project.settings
            if args.profile is not None and args.profile != settings.profile:
                raise InputError(
                    f"{path.name} uses the {settings.profile} profile, not {args.profile}; its "
                    f"captions were made with it. Leave out --profile to continue it, or start "
                    "a new project in another folder."
                )
            if args.prompt is not None and args.prompt != settings.custom_prompt:
                raise InputError(
                    f"{path.name} was made with a different prompt. Leave out --prompt to "
                    "continue it with its own (File > Settings… in the window changes it)."
                )
            known = {rec.path for rec in project.images()}
            files = _scan(folder)
            fresh = [f for f in files if project.stored_path(f.path) not in known]
            result = project.add_scanned(fresh)
            stats = project.stats()
            if stats.images == 0:
                _require_usable(folder, files)
            err.write(f"Reopened {path}: {stats.images} image(s), {stats.captioned} captioned")
            if result.added:
                err.write(f"; {result.added - result.invalid} new image(s) added")
            err.write(".\n")
            _write_added(err, fresh, result)
            _write_foreign_prefixes(err, fresh, settings.prefix_template, trigger)
        except BaseException:
            project.close()
            raise
        return project

    others = _other_projects(folder, path)
    if others:
        other, other_trigger = others[0]
        raise InputError(
            f"{folder} already holds the project {other.name} (trigger word {other_trigger}). "
            f"To continue it: loracap run {folder} --trigger {other_trigger}"
        )
    profile = Profile(args.profile or Profile.SPACE.value)
    prompt = args.prompt or ""
    build_instructions(profile, prompt)  # a custom profile needs a prompt: check early
    files = _scan(folder)
    _require_usable(folder, files)
    project = Project.create(path, trigger=trigger, profile=profile.value, custom_prompt=prompt,
                             name=folder.name, **_backend_kwargs(args))
    try:
        result = project.add_scanned(files)
    except BaseException:
        project.close()
        raise
    err.write(f"Created {path}: {result.added - result.invalid} image(s), "
              f"{result.imported_captions} caption(s) imported from .txt files.\n")
    _write_added(err, files, result)
    _write_foreign_prefixes(err, files, project.settings.prefix_template, trigger)
    return project


def cmd_run(args: argparse.Namespace) -> int:
    """``loracap run FOLDER --trigger WORD``: the whole job in one command, safe to repeat.

    Creates FOLDER/WORD.loraproj (as ``new``) or reopens it and adds new image files; refuses
    (exit 2) a folder holding another trigger word's project, a ``--profile``/``--prompt`` that
    contradicts the project, and a folder without usable images. Captions the images without a
    caption (failed ones included; edited, manual and imported captions are never replaced), then
    exports, replacing only this project's own unchanged earlier export without ``--force``.
    A stop exits with its code (3 key, 4 daily quota) and exports nothing; failed images exit 1.
    """
    from loracap.core.project import CaptionMode
    from loracap.core.trigger import validate_trigger

    trigger = validate_trigger(args.trigger)
    folder: Path = args.folder.expanduser().absolute()
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder.")
    with _open_for_run(args, folder, trigger) as project:
        ids, _protected = project.select_for_captioning(CaptionMode.MISSING)
        if ids:
            summary = _caption_batch(project, args, CaptionMode.MISSING)
            code = _report_batch(summary, args)
            if code != EXIT_OK:
                return code
        else:
            sys.stderr.write("Nothing to caption: every image has a caption.\n")
        return _export(project, args, allow_uncaptioned=False, replace_own=True)


def cmd_info(args: argparse.Namespace) -> int:
    from loracap.cli_backend import write_usage
    from loracap.core.project_reader import ProjectReader

    # Read without SQLAlchemy, after the same checks as Project.open, counted while they run
    # (issue 15: in under a fifth of a second for 10,000 images).
    with ProjectReader.open(args.project.expanduser(), count=True) as project:
        stats = project.stats()
        settings = project.settings
        records = project.images() if args.list else []
        # The text names one missing file; the counts need no records (issue 15).
        missing = [rec.path for rec in project.missing_images()] \
            if stats.missing_files and not args.json else []
        usage_text = io.StringIO()
        usage = write_usage(project.token_usage(), usage_text)
    if args.json:
        data = {
            "project": str(args.project.expanduser().absolute()),
            "images": stats.images,
            "invalid": stats.invalid,
            "captioned": stats.captioned,
            "failed": stats.failed,
            "missing_files": stats.missing_files,
            "provenance": stats.provenance,
            "trigger": settings.trigger,
            "prefix": settings.prefix,
            "profile": settings.profile,
            "backend": settings.backend,
            "model": settings.model,
            "base_url": settings.base_url,
            "language": settings.language,
            "usage": usage,
        }
        if args.list:
            data["files"] = [
                {"path": rec.path, "valid": rec.valid, "reason": rec.invalid_reason,
                 "provenance": rec.caption.provenance.value if rec.has_caption and rec.caption
                 else None, "error": rec.last_error, "outside": rec.outside,
                 "people": rec.people}
                for rec in records
            ]
        sys.stdout.write(json_text(data, indent=2) + "\n")
        return EXIT_OK
    from loracap.core.profiles import language_name

    out = sys.stdout
    where = f" at {settings.base_url}" if settings.base_url else ""
    language = f", captions in {language_name(settings.language)}" \
        if settings.language != "en" else ""
    out.write(f"{settings.name}: trigger word {settings.trigger}, profile {settings.profile}, "
              f"{settings.backend} {settings.model or '(model not chosen)'}{where}{language}\n")
    out.write(f"  {stats.images} image(s), {stats.invalid} invalid; {stats.captioned} captioned, "
              f"{stats.failed} failed\n")
    out.write("  " + ", ".join(f"{n} {name}" for name, n in stats.provenance.items()) + "\n")
    if missing:
        out.write(f"  {len(missing)} image file(s) missing on disk, e.g. {missing[0]}\n")
    if usage:
        out.write("Tokens paid for (every answer received, kept or not):\n")
        out.write(usage_text.getvalue())
    for rec in records:
        if not rec.valid:
            state = f"invalid: {rec.invalid_reason}"
        elif rec.has_caption and rec.caption:
            state = rec.caption.provenance.value
        elif rec.last_error:
            state = f"failed: {rec.last_error}"
        else:
            state = "uncaptioned"
        if rec.outside:
            state += " (outside the project folder)"
        if rec.people is not None:
            found = rec.people
            state += f" ({found} {'person' if found == 1 else 'people'})" if found else \
                " (no person found)"
        out.write(f"{tsv_field(rec.path)}\t{tsv_field(state)}\n")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from loracap.core.checks import check_project, summary_text
    from loracap.core.project import Project

    with Project.open(args.project.expanduser(), read_only=True) as project:
        progress = _Progress(sys.stderr)

        def on_progress(done: int, total: int) -> None:
            if progress.interactive:
                progress.show(f"Checking {done} of {total}", done / total)

        findings = check_project(project, near_duplicates=not args.no_near_duplicates,
                                 progress=on_progress)
        progress.clear()
        images = project.stats().images
    if args.json:
        data = [{"path": f.path, "kind": f.kind, "message": f.message, "image_id": f.image_id}
                for f in findings]
        sys.stdout.write(json_text(data, indent=2) + "\n")
    else:
        for f in findings:
            sys.stdout.write(f"{tsv_field(f.path)}\t{tsv_field(f.kind)}\t{tsv_field(f.message)}\n")
    sys.stderr.write(summary_text(findings, images) + "\n")
    return EXIT_OK


def cmd_tags(args: argparse.Namespace) -> int:
    from loracap.core.project import Project
    from loracap.core.tags import count_tags

    with Project.open(args.project.expanduser(), read_only=True) as project:
        counter = count_tags(project.images(), project.settings.tag_separator)
    if args.json:
        data = [{"tag": tag, "count": count} for tag, count in counter.most_common()]
        sys.stdout.write(json_text(data, indent=2) + "\n")
    elif args.counts:
        sys.stdout.write("".join(f"{tsv_field(tag)}\t{count}\n"
                                 for tag, count in counter.most_common()))
    else:
        sys.stdout.write(counter.export_tags_txt())
    return EXIT_OK


def _read_key() -> str:
    """The key to store: asked for with hidden input on a terminal, else all of standard input
    (``loracap key set < key.txt``). Raises :class:`InputError` (exit 2) when none is given."""
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        value = stdin.read() if stdin is not None else ""
        if not value.strip():
            raise InputError(
                "No key on standard input; nothing was stored. Run `loracap key set` in a "
                "terminal, or give the key on standard input: `loracap key set < key.txt`.")
        return value
    try:
        value = getpass.getpass("Gemini API key (input hidden): ")
    except EOFError:
        value = ""
    if not value.strip():
        raise InputError("No key entered; nothing was stored.")
    return value


def cmd_key(args: argparse.Namespace) -> int:
    from loracap.core.errors import ApiKeyMissingError
    from loracap.core.keys import delete_api_key, find_api_key, store_api_key

    backend = args.backend
    if args.action == "set":
        value = _read_key()
        store_api_key(value, backend)
        sys.stderr.write("Stored the key in the OS keychain.\n")
    elif args.action == "clear":
        delete_api_key(backend)
        sys.stderr.write("Removed the key from the OS keychain.\n")
    else:
        try:
            key = find_api_key(backend)
        except ApiKeyMissingError as exc:
            sys.stderr.write(f"{exc}\n")
            return exc.exit_code
        sys.stdout.write(f"An API key is set (from {key.source}).\n")
    return EXIT_OK


def cmd_qa(args: argparse.Namespace) -> int:
    """``loracap qa``: :func:`loracap.cli_qa.cmd_qa` (imported only for it)."""
    from loracap.cli_qa import cmd_qa as run

    return run(args)


def cmd_batch(args: argparse.Namespace) -> int:
    """``loracap batch``: :func:`loracap.cli_batch.cmd_batch` (imported only for it)."""
    from loracap.cli_batch import cmd_batch as run

    return run(args)


COMMANDS = {
    "run": cmd_run,
    "new": cmd_new,
    "caption": cmd_caption,
    "export": cmd_export,
    "info": cmd_info,
    "check": cmd_check,
    "tags": cmd_tags,
    "models": cmd_models,
    "prices": cmd_prices,
    "key": cmd_key,
    "qa": cmd_qa,
    "batch": cmd_batch,
}


_STREAM_ERRORS = "loracap.readable"


def _readable_errors(exc: UnicodeError) -> tuple[str, int]:
    """Encoding error handler of stdout and stderr: a byte of a name that is not valid UTF-8
    (read as a lone surrogate, ``surrogateescape``) is shown as ``\\xe9``, as Python and
    shells show it; any other character the console cannot show as ``?``."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    return "".join(f"\\x{ord(char) - 0xDC00:02x}" if 0xDC80 <= ord(char) <= 0xDCFF else "?"
                   for char in bad), exc.end


def _configure_streams() -> None:
    # Captions and file names may hold any character; a console that cannot show one must not
    # crash the run.
    codecs.register_error(_STREAM_ERRORS, _readable_errors)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors=_STREAM_ERRORS)


def _unknown_command(argv: Sequence[str]) -> str | None:
    """The error line for a first word that is not a command (``loracap help``), or None.

    ``loracap FOLDER`` and ``loracap PROJECT.loraproj`` with an existing path never get here:
    :mod:`loracap.__main__` opens the window for them.
    """
    for word in argv:
        if word in ("-h", "--help", "--version"):
            return None
        if not word.startswith("-"):
            break
    else:
        return None
    if word in COMMANDS:
        return None
    if "/" in word or os.sep in word or word.endswith(".loraproj"):
        return (f"{word}: no such folder or project file (`loracap FOLDER` and `loracap "
                "PROJECT.loraproj` open the window; `loracap --help` lists the commands).")
    return (f"{word} is not a command or an existing folder; the commands are "
            f"{', '.join(COMMANDS)} (see `loracap --help`).")


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` runs when only the options that take no value and print
    nothing come before it (``-v``, ``--verbose``, ``--debug``): the parser then needs only
    that subcommand's arguments (:func:`build_parser`). None otherwise (``--help``, an
    abbreviated or unknown option, no subcommand): the parser of every subcommand, which says
    what is wrong as before."""
    for word in argv:
        if word not in ("-v", "--verbose", "--debug"):
            return word if word in COMMANDS else None
    return None


def _unwritable(exc: BaseException, args: argparse.Namespace) -> str | None:
    """What to tell the user when ``exc`` (or an exception it was raised from) says that a file
    or folder cannot be written -- read-only, or not the user's -- else None.

    Recognised: :class:`PermissionError` and ``EROFS``, and SQLite's "attempt to write a
    readonly database" (a read-only project file, or a read-only folder, where SQLite cannot
    create the project's journal) or "unable to open database file" in a folder that is not
    writable.
    """
    import sqlite3

    where = getattr(args, "project", None) or getattr(args, "folder", None)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (
                errno.EACCES, errno.EPERM, errno.EROFS):
            if current.filename:
                where = os.fsdecode(current.filename)
            break
        if isinstance(current, sqlite3.OperationalError):
            text = str(current)
            if "readonly database" in text:
                break
            if "unable to open database file" in text and where is not None:
                folder = Path(where).expanduser()
                folder = folder if folder.is_dir() else folder.parent
                if folder.is_dir() and not os.access(folder, os.W_OK):
                    break
        current = current.__cause__ or current.__context__
    else:
        return None  # no such exception in the chain
    place = f" to {where}" if where is not None else ""
    return (f"Cannot write{place}: it or its folder is read-only, or you may not change it. "
            "Make both writable (or copy the folder to a place you can write to), then run the "
            "command again.")


#: Words of SQLite and SQLAlchemy that a user cannot act on.
_RAW_DATABASE_WORDS = ("sqlite3", "OperationalError", "database file", "readonly database")


def _raw(message: str) -> bool:
    """True when ``message`` passes on a database library's words instead of saying what to do."""
    return "\n" in message or any(word in message for word in _RAW_DATABASE_WORDS)


def _message(exc: BaseException) -> str:
    """``exc``'s text without the lines SQLAlchemy appends (``[SQL: …]``, "Background on this
    error at …") and without API keys."""
    lines = [line for line in str(exc).splitlines()
             if not line.startswith(("[SQL:", "[parameters:", "(Background on this error"))]
    return redact("\n".join(lines).strip())


def _stdout_closed() -> int:
    """Standard output was closed early (``| head``): say nothing, as Unix tools do, and point
    stdout at the null device so the final flush does not complain either."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    _configure_streams()
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, not at exit, where a closed pipe could not be caught
    except BrokenPipeError:
        return _stdout_closed()
    return code


def _main(argv: list[str]) -> int:
    unknown = _unknown_command(argv)
    if unknown is not None:
        sys.stderr.write(f"loracap: error: {unknown}\n")
        return EXIT_USAGE
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    configure_logging(
        user_dirs().logs,
        level=logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        stream_tracebacks=args.debug,
    )
    if args.command is None:  # only options such as -v were given
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        raise  # main(): a quiet exit
    except LoraCapError as exc:
        log.info("loracap %s failed: %s", args.command, exc, exc_info=args.debug)
        message, code = _message(exc), exc.exit_code
        unwritable = _unwritable(exc, args)
        if unwritable is not None:  # the place cannot be written: as bad input, exit 2
            code = EXIT_USAGE
            if _raw(message):  # SQLite's words: say what is wrong and what to do instead
                message = unwritable
        sys.stderr.write(f"loracap: error: {message}\n")
        return code
    except KeyboardInterrupt:
        sys.stderr.write("\nloracap: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # last resort: one line here, the traceback in the log file
        unwritable = _unwritable(exc, args)
        if unwritable is not None:
            log.info("loracap %s failed: %s", args.command, exc, exc_info=True)
            sys.stderr.write(f"loracap: error: {unwritable}\n")
            return EXIT_USAGE
        log.exception("Unexpected error in loracap %s", args.command)
        text = " ".join(_message(exc).split())
        sys.stderr.write(f"loracap: unexpected error: {type(exc).__name__}: {text} "
                         f"(details in the log file in {user_dirs().logs})\n")
        return EXIT_FAILURE
