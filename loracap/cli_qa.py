"""``loracap qa``: visual question-answer pairs from the command line (issue 14).

``qa generate`` asks a vision model for N pairs per image, ``qa answer`` answers the questions
a person wrote (``qa add``), ``qa list`` and ``qa stats`` show them, ``qa labels`` and
``qa schema`` set what label and custom-format answers are checked against, and ``qa export``
writes them in the layout a vision-language trainer reads (:mod:`loracap.core.qa.exports`).
The batches run on the captioning runner, with its pacing, retries, progress, Ctrl+C and crash
safety (:mod:`loracap.jobs.runner`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from loracap.core.errors import InputError
from loracap.core.text import json_text, tsv_field

if TYPE_CHECKING:
    from loracap.core.project import Project
    from loracap.core.qa.generate import QAOptions

EXIT_OK = 0


def add_qa_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                  ) -> None:
    """The ``qa`` command and its actions."""
    from loracap.cli import _add_batch_arguments
    from loracap.cli_backend import add_backend_arguments
    from loracap.core.qa.exports import QAStyle
    from loracap.core.qa.prompts import DEFAULT_QUESTIONS, MAX_QUESTIONS, PRESETS

    qa = sub.add_parser(
        "qa", help="visual question-answer pairs: generate, answer, list, export",
        description="Question-answer pairs about the project's images, for fine-tuning "
        "vision-language models (LLaVA, Qwen-VL, LLaMA-Factory).")
    actions = qa.add_subparsers(dest="qa_command", metavar="ACTION", required=True)

    gen = actions.add_parser(
        "generate", help="ask the vision model for N question-answer pairs per image",
        description="Ask the project's vision model for question-answer pairs; each image's "
        "result is printed as path<TAB>summary as it arrives (--json: one JSON object a line). "
        "A question already asked about an image is not added again.")
    gen.add_argument("project", type=Path)
    gen.add_argument("--questions", type=int, default=DEFAULT_QUESTIONS, metavar="N",
                     help=f"questions per image, 1-{MAX_QUESTIONS} (default "
                     f"{DEFAULT_QUESTIONS})")
    gen.add_argument("--language", default=None,
                     help="language of the questions and answers: en, zh-Hans (or zh-CN), tr, "
                     "de, … (default: the project's caption language)")
    gen.add_argument("--prompt", choices=list(PRESETS), default="descriptive",
                     help="kind of questions (default: descriptive)")
    gen.add_argument("--prompt-file", type=Path, default=None,
                     help="your own prompt template ({count} and {language} are filled in)")
    gen.add_argument("--answer-type", choices=["text", "label", "custom_format"],
                     default="text", help="text (default), label (from `qa labels`) or "
                     "custom_format (JSON following `qa schema`)")
    gen.add_argument("--only", choices=["missing", "all", "selected"], default="missing",
                     help="images without pairs (default), all, or those given with --image")
    gen.add_argument("--image", action="append", default=[], metavar="PATH",
                     help="just this image (repeatable; implies --only selected)")
    add_backend_arguments(gen, saved=False)
    _add_batch_arguments(gen)
    gen.add_argument("--json", action="store_true", help="one JSON line per image")

    ans = actions.add_parser(
        "answer", help="answer the questions that have no answer yet",
        description="Send each image with its unanswered questions (from `qa add`) to the "
        "vision model and store the answers.")
    ans.add_argument("project", type=Path)
    ans.add_argument("--image", action="append", default=[], metavar="PATH",
                     help="just this image (repeatable)")
    ans.add_argument("--language", default=None, help="language of the answers")
    add_backend_arguments(ans, saved=False)
    _add_batch_arguments(ans)
    ans.add_argument("--json", action="store_true", help="one JSON line per image")

    add = actions.add_parser("add", help="add your own question (and answer) to an image")
    add.add_argument("project", type=Path)
    add.add_argument("--image", required=True, metavar="PATH")
    add.add_argument("--question", required=True)
    add.add_argument("--answer", default="", help="the answer (none: `qa answer` writes it)")
    add.add_argument("--answer-type", choices=["text", "label", "custom_format"],
                     default="text")

    lst = actions.add_parser("list", help="print the pairs (TSV, or --json)")
    lst.add_argument("project", type=Path)
    lst.add_argument("--image", action="append", default=[], metavar="PATH")
    lst.add_argument("--json", action="store_true", help="one JSON object per pair")

    stats = actions.add_parser("stats", help="counts: entries, confirmed, average score, …")
    stats.add_argument("project", type=Path)
    stats.add_argument("--json", action="store_true")

    labels = actions.add_parser("labels", help="show or set the label list of label answers")
    labels.add_argument("project", type=Path)
    labels.add_argument("labels", nargs="*", help="the labels (none: print the list)")
    labels.add_argument("--clear", action="store_true", help="remove the list")

    schema = actions.add_parser("schema", help="show or set the JSON schema of custom_format "
                                "answers")
    schema.add_argument("project", type=Path)
    schema.add_argument("file", type=Path, nargs="?", help="a JSON schema file (none: print)")
    schema.add_argument("--clear", action="store_true", help="remove the schema")

    exp = actions.add_parser(
        "export", help="write the pairs for a trainer: llava, vqa, sharegpt, default, hf",
        description="Write the pairs as a JSON (or JSON Lines) file with the images copied "
        "into images/ beside it, or embedded with --base64; --style hf writes a Hugging Face "
        "imagefolder that datasets.load_dataset('imagefolder', data_dir=OUT) loads. Invalid "
        "answers are never exported.")
    exp.add_argument("project", type=Path)
    exp.add_argument("--style", choices=[style.value for style in QAStyle], default="default")
    exp.add_argument("--out", type=Path, default=None,
                     help="the JSON/JSONL file, or the folder for hf (default: beside the "
                     "project)")
    exp.add_argument("--jsonl", action="store_true", help="one record a line (large sets)")
    exp.add_argument("--base64", action="store_true", help="embed the images as data URLs")
    exp.add_argument("--per-pair", action="store_true",
                     help="llava/sharegpt/hf: one record a pair instead of one an image")
    exp.add_argument("--confirmed-only", action="store_true", help="only confirmed pairs")
    exp.add_argument("--min-score", type=int, default=None, metavar="S",
                     help="only pairs scored at least S (0-5)")
    exp.add_argument("--json", action="store_true", help="print the result as JSON")


def cmd_qa(args: argparse.Namespace) -> int:
    """Run ``loracap qa ACTION``."""
    action = {"generate": _generate, "answer": _answer, "add": _add, "list": _list,
              "stats": _stats, "labels": _labels, "schema": _schema, "export": _export}
    return action[args.qa_command](args)


def _open(args: argparse.Namespace, *, read_only: bool = False) -> Project:
    from loracap.core.project import Project

    return Project.open(args.project.expanduser(), read_only=read_only)


def _options(project: Project, args: argparse.Namespace, *, answer_only: bool) -> QAOptions:
    from loracap.core.qa.generate import QAOptions
    from loracap.core.qa.records import AnswerType

    settings = project.settings
    template = ""
    prompt_file = getattr(args, "prompt_file", None)
    if prompt_file is not None:
        try:
            template = prompt_file.expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise InputError(f"Cannot read the prompt file {prompt_file}: {exc}.") from exc
    only = "selected" if getattr(args, "image", None) else getattr(args, "only", "missing")
    return QAOptions(
        questions=getattr(args, "questions", 3), language=args.language or settings.language,
        preset=getattr(args, "prompt", "descriptive"), template=template,
        answer_type=AnswerType(getattr(args, "answer_type", "text")),
        labels=tuple(settings.qa_labels), schema=settings.qa_schema, answer_only=answer_only,
        only=only).checked()


def _batch(args: argparse.Namespace, *, answer_only: bool) -> int:
    from loracap.cli import _caption_batch, _report_batch, _resolve_images
    from loracap.core.records import CaptionMode

    with _open(args) as project:
        options = _options(project, args, answer_only=answer_only)
        ids = _resolve_images(project, args.image) if args.image else ()
        summary = _caption_batch(project, args, CaptionMode.SELECTED, ids, qa=options)
        return _report_batch(summary, args)


def _generate(args: argparse.Namespace) -> int:
    return _batch(args, answer_only=False)


def _answer(args: argparse.Namespace) -> int:
    return _batch(args, answer_only=True)


def _add(args: argparse.Namespace) -> int:
    from loracap.cli import _resolve_images
    from loracap.core.qa.generate import validate_answer
    from loracap.core.qa.records import AnswerType

    with _open(args) as project:
        [image_id] = _resolve_images(project, [args.image])
        answer_type = AnswerType(args.answer_type)
        answer, reason = args.answer, ""
        if answer.strip():
            settings = project.settings
            answer, reason = validate_answer(answer, answer_type, settings.qa_labels,
                                             settings.qa_schema)
        entry = project.add_question(image_id, args.question, answer, answer_type=answer_type)
        if reason:
            entry = project.edit_qa(entry.id, valid=False, invalid_reason=reason,
                                    label="Flag an invalid answer")
            sys.stderr.write(f"warning: the answer is stored but invalid: {reason}\n")
        sys.stdout.write(f"Added question {entry.id} to {args.image}.\n")
    return EXIT_OK


def _entry_json(path: str, entry: object) -> dict[str, object]:
    from loracap.core.qa.records import QAEntry

    assert isinstance(entry, QAEntry)
    return {"id": entry.id, "image": path, "question": entry.question, "answer": entry.answer,
            "answer_type": entry.answer_type.value, "confirmed": entry.confirmed,
            "score": entry.score, "tags": list(entry.tags), "note": entry.note,
            "model": entry.model, "provenance": entry.provenance.value, "valid": entry.valid,
            "invalid_reason": entry.invalid_reason}


def _list(args: argparse.Namespace) -> int:
    from loracap.cli import _resolve_images

    with _open(args, read_only=True) as project:
        ids = list(_resolve_images(project, args.image)) if args.image else None
        out = sys.stdout
        if not args.json:
            out.write("id\timage\tquestion\tanswer\tconfirmed\tscore\tvalid\n")
        for image in project.qa_images(image_ids=ids):
            for entry in image.entries:
                if args.json:
                    out.write(json_text(_entry_json(image.rel_path, entry)) + "\n")
                    continue
                score = "" if entry.score is None else str(entry.score)
                out.write("\t".join([str(entry.id), tsv_field(image.rel_path),
                                     tsv_field(entry.question), tsv_field(entry.answer),
                                     "yes" if entry.confirmed else "no", score,
                                     "yes" if entry.valid else "no"]) + "\n")
    return EXIT_OK


def stats_dict(project: Project) -> dict[str, object]:
    """``qa stats --json``: the project's QA counts (:meth:`Project.qa_stats`)."""
    stats = project.qa_stats()
    return {"entries": stats.entries, "confirmed": stats.confirmed,
            "average_score": stats.average_score, "by_answer_type": dict(stats.by_answer_type),
            "images_with_qa": stats.images_with_qa, "invalid": stats.invalid,
            "images": len(project.images())}


def _stats(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as project:
        values = stats_dict(project)
        lines = project.qa_stats().lines(len(project.images()))
    if args.json:
        sys.stdout.write(json.dumps(values, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _labels(args: argparse.Namespace) -> int:
    with _open(args, read_only=not (args.labels or args.clear)) as project:
        if args.clear or args.labels:
            labels = [] if args.clear else [part.strip() for item in args.labels
                                            for part in item.split(",") if part.strip()]
            project.update_settings(qa_labels=labels)
        for label in project.settings.qa_labels:
            sys.stdout.write(label + "\n")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from loracap.core.qa.generate import load_schema

    with _open(args, read_only=not (args.file or args.clear)) as project:
        if args.clear:
            project.update_settings(qa_schema="")
        elif args.file is not None:
            try:
                text = args.file.expanduser().read_text(encoding="utf-8")
            except (OSError, UnicodeError) as exc:
                raise InputError(f"Cannot read the schema file {args.file}: {exc}.") from exc
            load_schema(text)  # a schema that is not one: the reason, nothing stored
            project.update_settings(qa_schema=text.strip())
        if project.settings.qa_schema:
            sys.stdout.write(project.settings.qa_schema + "\n")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from loracap.core.qa.exports import default_output, export_qa

    with _open(args, read_only=True) as project:
        out = args.out.expanduser() if args.out else default_output(
            project.path, project.settings.trigger, args.style, args.jsonl)
        result = export_qa(project.qa_images(), out, style=args.style, jsonl=args.jsonl,
                           base64_images=args.base64, per_pair=args.per_pair,
                           confirmed_only=args.confirmed_only, min_score=args.min_score)
    skipped = {reason.value: count for reason, count in result.skipped.items()}
    if args.json:
        sys.stdout.write(json.dumps({
            "path": str(result.path), "style": result.style.value, "records": result.records,
            "images": result.images, "pairs": result.pairs, "skipped": skipped,
            "skipped_images": [{"path": item.rel_path, "reason": item.reason.value,
                                "detail": item.detail} for item in result.skipped_images]})
            + "\n")
        return EXIT_OK
    sys.stdout.write(f"Wrote {result.pairs} pairs of {result.images} images as "
                     f"{result.records} records to {result.path}\n")
    for reason, count in skipped.items():
        sys.stderr.write(f"left out: {count} pair(s): {reason}\n")
    for item in result.skipped_images:
        sys.stderr.write(f"left out: {item.rel_path}: {item.detail}\n")
    return EXIT_OK


__all__ = ["add_qa_parser", "cmd_qa", "stats_dict"]
