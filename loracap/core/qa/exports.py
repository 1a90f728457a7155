"""Question-answer exports: the pairs of a project in the layouts vision-language trainers read.

:func:`export_qa` writes one of five styles (:class:`QAStyle`), streamed: one image at a time,
so memory stays flat however many images there are (only the set of names already given to
copied images grows, about 100 bytes an image). Each record's shape and the source of its
rule:

* ``llava`` -- a JSON list (LLaVA's ``docs/Finetune_Custom_Data.md``, haotian-liu/LLaVA):
  ``{"id": "12", "image": "images/a.jpg", "conversations": [{"from": "human", "value":
  "<image>\\nQ1"}, {"from": "gpt", "value": "A1"}, {"from": "human", "value": "Q2"}, …]}``.
  Turns alternate ``human``/``gpt`` starting with ``human`` (``preprocess_v1`` in
  ``llava/train/train.py`` asserts it) and only the first human turn carries ``<image>\\n``.
  LLaVA reads the file with ``json.load`` (``LazySupervisedDataset``: a JSON list, not JSON
  Lines) and opens ``os.path.join(--image_folder, image)``: pass the JSON file's folder as
  ``--image_folder``. ``id`` is the image id as a string, ``"12_7"`` (image id, question id)
  with ``per_pair``.
* ``vqa`` -- one record a pair: ``{"question_id", "image_id", "image", "question", "answer",
  "answer_type"}`` (the field names of the VQA annotation files, in one flat record;
  ``answer_type`` is LoRACap's :class:`~loracap.core.qa.records.AnswerType`, not VQA's
  ``yes/no``/``number``/``other``).
* ``sharegpt`` -- LLaMA-Factory's multimodal sharegpt (``data/README.md``, "Multimodal Image
  Dataset", and its ``mllm_demo.json``): ``{"messages": [{"role": "user", "content":
  "<image>Q1"}, {"role": "assistant", "content": "A1"}, …], "images": ["images/a.jpg"]}``.
  The number of ``<image>`` tokens must equal the number of paths in ``images``
  (``mm_plugin.py`` raises otherwise), so the one image of a record is one ``<image>`` at the
  start of the first user message; user turns are odd, assistant turns even. Its
  ``dataset_info.json`` entry needs ``"formatting": "sharegpt"``, ``"columns": {"messages":
  "messages", "images": "images"}`` and ``"tags": {"role_tag": "role", "content_tag":
  "content", "user_tag": "user", "assistant_tag": "assistant"}``. LLaMA-Factory joins a
  relative path to ``media_dir`` (default: ``dataset_dir``, the folder of
  ``dataset_info.json``): keep the JSON file in that folder.
* ``default`` -- LoRACap's own, every field of a pair, one record a pair: ``{"image",
  "question", "answer", "answer_type", "score", "confirmed", "tags", "note", "model"}``
  (``score`` null when not scored, ``tags`` a list, ``model`` ``""`` for a person's answer).
* ``hf`` -- a Hugging Face ``imagefolder`` (``datasets`` docs, "Create an image dataset" >
  ImageFolder): ``OUT/train/`` holds the images and ``metadata.jsonl``, whose ``file_name``
  is the image's path relative to it (a ``train`` folder makes everything one ``train``
  split; see :mod:`loracap.core.exports.hf`). With ``per_pair`` a row a pair: ``{"file_name",
  "question", "answer", "answer_type"}``; without, a row an image: ``{"file_name",
  "conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"}, …]}``
  (no ``<image>`` token: the picture is the ``image`` column). A row a pair names the same
  image several times; ``datasets`` makes one example of each metadata row since 3.4.0
  (PR #7424, "allow repeated media"; checked with 5.2.0), so each image is copied once.
  ``datasets`` before 3.4.0 keyed the rows by ``file_name`` and kept one per image.

Images and paths: for the JSON styles ``out`` is the ``.json``/``.jsonl`` file and the images
are copied into ``images/`` beside it, named after their file (safe on every system with
:func:`~loracap.core.exports.planner.safe_stem`; a later image whose name is taken, compared
case-insensitively as macOS and Windows do, becomes ``a_2.jpg``), and records hold
``images/a.jpg``. ``images/`` belongs to the export (it holds LoRACap's export marker, so a
scan never takes it for photos) and is replaced by the next question-answer export beside it
(JSON files in one folder share it: the last export's images are the ones there); any other
``images/`` folder is never touched (the export stops instead). Likewise an ``hf`` folder
replaces only an earlier question-answer export (or an empty folder). With
``base64_images`` the records hold ``data:<MIME>;base64,…`` URLs instead (MIME from the
format Pillow reads in the file) and nothing is copied; LLaVA's and LLaMA-Factory's training
loaders open paths only, so this suits readers that take data URLs.

``jsonl``: one record a line (JSON Lines). Otherwise a JSON list, written as ``[``, the
records one a line separated by ``,``, ``]``. A large JSON Lines file read with
``datasets.load_dataset("json")`` takes its column types from its first 10 MB
(``packaged_modules/json``, ``chunksize``; checked with 5.2.0): a ``default`` export whose
first 10 MB hold only unscored pairs or no tags fails there unless ``features`` are given; a
JSON list is read whole.

Filters (:class:`SkipReason`): an invalid answer is never exported; ``confirmed_only`` keeps
confirmed pairs; ``min_score`` keeps pairs scored at least that (unscored ones out). For
``llava`` and ``sharegpt`` a question or answer holding ``<image>`` is left out too: both
trainers would read it as a second image. An image left without pairs gives no record and no
file. An image whose file is gone or unreadable is left out and listed
(:attr:`QAExportResult.skipped_images`), its pairs counted as skipped.

Atomic: everything is written under temporary names beside the target
(``.<name>.<random>.loracap-part``) and moved into place at the end, the JSON file last; a
failure leaves the previous export as it was.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TextIO

from loracap import __version__
from loracap.core.errors import ExportError, InputError, NothingToExportError, OutputExistsError
from loracap.core.exports.base import EXPORT_MARKER
from loracap.core.exports.planner import safe_stem
from loracap.core.exports.writer import (
    _discard,
    _move_into_place,
    _temp_name,
    remove_stale_parts,
)
from loracap.core.qa.records import MAX_SCORE, MIN_SCORE, QAEntry, QAImage


class QAStyle(StrEnum):
    """The layout of a question-answer export (the module's docstring gives each shape)."""

    LLAVA = "llava"
    VQA = "vqa"
    SHAREGPT = "sharegpt"
    DEFAULT = "default"
    HF = "hf"


class SkipReason(StrEnum):
    """Why a pair was not exported (the first that applies, in this order)."""

    INVALID = "invalid"  # the answer failed its label list or schema
    UNANSWERED = "unanswered"  # a question with no answer yet (``loracap qa answer`` writes it)
    UNCONFIRMED = "unconfirmed"  # confirmed_only, and no person confirmed it
    UNSCORED = "unscored"  # min_score, and no score
    LOW_SCORE = "low_score"  # min_score, and a lower score
    IMAGE_TOKEN = "image_token"  # llava/sharegpt: the text holds "<image>"
    IMAGE_MISSING = "image_missing"  # the image file is gone
    IMAGE_UNREADABLE = "image_unreadable"  # the image file cannot be read (or, embedded,
    # is not an image Pillow reads)


#: The image placeholder of LLaVA (``DEFAULT_IMAGE_TOKEN``) and LLaMA-Factory
#: (``IMAGE_PLACEHOLDER``).
IMAGE_TOKEN = "<image>"

#: The folder beside a JSON export that holds its images.
IMAGES_FOLDER = "images"

#: The split folder and metadata file of the ``hf`` style (:mod:`loracap.core.exports.hf`).
HF_SPLIT, HF_METADATA = "train", "metadata.jsonl"

_JSON_SUFFIXES = (".json", ".jsonl")


@dataclass(frozen=True)
class SkippedImage:
    """An image left out with its pairs: ``path`` (absolute), ``rel_path`` (as in the
    project), ``reason`` (:attr:`SkipReason.IMAGE_MISSING` or
    :attr:`SkipReason.IMAGE_UNREADABLE`) and ``detail``, a few words for the user."""

    path: Path
    rel_path: str
    reason: SkipReason
    detail: str


@dataclass(frozen=True)
class QAExportResult:
    """What :func:`export_qa` wrote: ``path`` (the JSON file, or the ``hf`` folder),
    ``records`` (JSON records, or ``metadata.jsonl`` rows), ``images`` (images copied or
    embedded), ``pairs`` (pairs written), ``skipped`` (pairs not written, by reason; reasons
    with none are absent) and ``skipped_images`` (images left out, in export order)."""

    path: Path
    style: QAStyle
    records: int
    images: int
    pairs: int
    skipped: Mapping[SkipReason, int]
    skipped_images: tuple[SkippedImage, ...]

    @property
    def skipped_pairs(self) -> int:
        """How many pairs were not written, for every reason."""
        return sum(self.skipped.values())


Record = dict[str, object]
Pair = tuple[int, QAEntry]  # (question id, entry)


def default_output(project_file: Path, trigger: str, style: QAStyle | str, jsonl: bool) -> Path:
    """Where an export goes unless told: beside the project file, ``<trigger>_qa_<style>.json``
    (``.jsonl``), or the folder ``<trigger>_qa_hf``."""
    style = _style(style)
    stem = f"{trigger}_qa_{style.value}"
    if style is QAStyle.HF:
        return project_file.parent / stem
    return project_file.parent / (stem + (".jsonl" if jsonl else ".json"))


def export_qa(images: Iterable[QAImage], out: Path, *, style: QAStyle | str,
              jsonl: bool = False, base64_images: bool = False, per_pair: bool = False,
              confirmed_only: bool = False, min_score: int | None = None,
              on_progress: Callable[[int], None] | None = None) -> QAExportResult:
    """Write the pairs of ``images`` (in their order) to ``out`` in ``style``.

    ``out``: the ``.json`` or ``.jsonl`` file for the JSON styles, a folder for ``hf`` (absent,
    empty, or an earlier LoRACap export, which is replaced). ``per_pair``: one record a pair
    for ``llava`` and ``sharegpt`` (each with its own ``<image>``), rows of
    ``question``/``answer`` for ``hf``; ``vqa`` and ``default`` are always a record a pair.
    ``jsonl`` is for the JSON styles (``hf`` always writes JSON Lines). A question id is the
    entry's ``id``, or for an entry without one (0) its number in the export, from 1.
    ``on_progress(done)`` is called after each image with the number of images handled so far.

    Raises :class:`~loracap.core.errors.InputError` for options that do not fit (an unknown
    style, ``base64_images`` with ``hf``, ``min_score`` outside 0-5, an ``out`` of the wrong
    kind, an image inside the folder the export replaces);
    :class:`~loracap.core.errors.OutputExistsError` when ``out`` or ``images/`` is something
    LoRACap did not write; :class:`~loracap.core.errors.NothingToExportError` when no pair is
    left; :class:`~loracap.core.errors.ExportError` when writing fails. In every case the
    previous export at ``out`` is left as it was.
    """
    style = _style(style)
    _check_options(style, base64_images, min_score)
    out = Path(os.path.abspath(out))
    staging = _Staging(style, out, base64_images=base64_images)
    pick = _Filter(confirmed_only=confirmed_only, min_score=min_score,
                   chat=style in (QAStyle.LLAVA, QAStyle.SHAREGPT))
    try:
        with staging.records_file() as handle:
            run = _Run(style, staging, pick, _Records(handle, jsonl=jsonl or style is QAStyle.HF),
                       per_pair=per_pair)
            for done, image in enumerate(images, 1):
                run.add(image)
                if on_progress is not None:
                    on_progress(done)
            run.sink.close()
        if not run.sink.count:
            raise NothingToExportError(_nothing_message(run.images_seen, pick.skipped))
        staging.commit()
    except OSError as exc:
        staging.discard()
        raise ExportError(f"Cannot write {out}: {exc.strerror or exc}. Nothing was written; "
                          "an earlier export there is unchanged.") from exc
    except BaseException:
        staging.discard()
        raise
    return QAExportResult(path=out, style=style, records=run.sink.count, images=run.images,
                          pairs=run.pairs, skipped=dict(+pick.skipped),
                          skipped_images=tuple(run.skipped_images))


class _Run:
    """One export under way: each image's pairs filtered, its file placed, its records
    written; the counts so far."""

    def __init__(self, style: QAStyle, staging: _Staging, pick: _Filter, sink: _Records, *,
                 per_pair: bool) -> None:
        self.style = style
        self.staging = staging
        self.pick = pick
        self.sink = sink
        self.per_pair = per_pair
        self.images_seen = self.images = self.pairs = 0
        self.skipped_images: list[SkippedImage] = []

    def add(self, image: QAImage) -> None:
        self.images_seen += 1
        kept = self.pick.keep(image.entries)
        if not kept:
            return
        self.staging.check_source(image)
        try:
            ref = self.staging.place(image)
        except _Unreadable as why:
            self.skipped_images.append(
                SkippedImage(image.path, image.rel_path, why.reason, why.detail))
            self.pick.skipped[why.reason] += len(kept)
            return
        numbered = [(entry.id or self.pairs + n, entry) for n, entry in enumerate(kept, 1)]
        for record in _records(self.style, image, ref, numbered, self.per_pair):
            self.sink.write(record)
        self.images += 1
        self.pairs += len(kept)


def _style(style: QAStyle | str) -> QAStyle:
    try:
        return QAStyle(style)
    except ValueError:
        names = ", ".join(item.value for item in QAStyle)
        raise InputError(f"Unknown question-answer export style {style!r}; choose one of "
                         f"{names}.") from None


def _check_options(style: QAStyle, base64_images: bool, min_score: int | None) -> None:
    if base64_images and style is QAStyle.HF:
        raise InputError("The hf style keeps its images as files beside metadata.jsonl; "
                         "embedding them (base64) is for the JSON styles.")
    if min_score is not None and not MIN_SCORE <= min_score <= MAX_SCORE:
        raise InputError(f"The lowest score to export must be {MIN_SCORE} to {MAX_SCORE}, "
                         f"not {min_score}.")


def _nothing_message(images: int, skipped: Counter[SkipReason]) -> str:
    if not images:
        return "There are no images with question-answer pairs; nothing was written."
    reasons = ", ".join(f"{count} {reason.value.replace('_', ' ')}"
                        for reason, count in skipped.most_common())
    detail = f" ({reasons})" if reasons else ""
    return f"No question-answer pair is left to export{detail}; nothing was written."


# ---------------------------------------------------------------------- filters


class _Filter:
    """Which pairs of an image are exported; counts the others by reason."""

    def __init__(self, *, confirmed_only: bool, min_score: int | None, chat: bool) -> None:
        self.confirmed_only = confirmed_only
        self.min_score = min_score
        self.chat = chat
        self.skipped: Counter[SkipReason] = Counter()

    def reason(self, entry: QAEntry) -> SkipReason | None:
        """Why ``entry`` is left out, or None when it is exported."""
        if not entry.valid:
            return SkipReason.INVALID
        if not entry.answer.strip():
            return SkipReason.UNANSWERED
        if self.confirmed_only and not entry.confirmed:
            return SkipReason.UNCONFIRMED
        if self.min_score is not None:
            if entry.score is None:
                return SkipReason.UNSCORED
            if entry.score < self.min_score:
                return SkipReason.LOW_SCORE
        if self.chat and (IMAGE_TOKEN in entry.question or IMAGE_TOKEN in entry.answer):
            return SkipReason.IMAGE_TOKEN
        return None

    def keep(self, entries: Iterable[QAEntry]) -> list[QAEntry]:
        kept = []
        for entry in entries:
            reason = self.reason(entry)
            if reason is None:
                kept.append(entry)
            else:
                self.skipped[reason] += 1
        return kept


# ---------------------------------------------------------------------- records


def _turns(pairs: list[Pair], *, keys: tuple[str, str], roles: tuple[str, str],
           token: str) -> list[dict[str, str]]:
    """A conversation: question, answer, question, … as ``{keys[0]: role, keys[1]: text}``,
    ``token`` before the first question."""
    role_key, text_key = keys
    turns = []
    for n, (_, entry) in enumerate(pairs):
        question = f"{token}{entry.question}" if n == 0 else entry.question
        turns.append({role_key: roles[0], text_key: question})
        turns.append({role_key: roles[1], text_key: entry.answer})
    return turns


_LLAVA = {"keys": ("from", "value"), "roles": ("human", "gpt")}
_SHAREGPT = {"keys": ("role", "content"), "roles": ("user", "assistant")}


def _records(style: QAStyle, image: QAImage, ref: str, pairs: list[Pair],
             per_pair: bool) -> Iterator[Record]:
    """The records of one image whose file is at ``ref`` (a relative path or a data URL)
    and whose exported ``pairs`` (at least one) are given."""
    groups = [[pair] for pair in pairs] if per_pair else [pairs]
    if style is QAStyle.LLAVA:
        for group in groups:
            key = f"{image.image_id}_{group[0][0]}" if per_pair else str(image.image_id)
            yield {"id": key, "image": ref,
                   "conversations": _turns(group, **_LLAVA, token=f"{IMAGE_TOKEN}\n")}
    elif style is QAStyle.SHAREGPT:
        for group in groups:
            yield {"messages": _turns(group, **_SHAREGPT, token=IMAGE_TOKEN), "images": [ref]}
    elif style is QAStyle.HF and not per_pair:
        yield {"file_name": ref, "conversations": _turns(pairs, **_LLAVA, token="")}
    else:
        for question_id, entry in pairs:
            yield _pair_record(style, image, ref, question_id, entry)


def _pair_record(style: QAStyle, image: QAImage, ref: str, question_id: int,
                 entry: QAEntry) -> Record:
    """The record of one pair in the styles that have one record a pair."""
    text: Record = {"question": entry.question, "answer": entry.answer,
                    "answer_type": str(entry.answer_type)}
    if style is QAStyle.VQA:
        return {"question_id": question_id, "image_id": image.image_id, "image": ref, **text}
    if style is QAStyle.HF:
        return {"file_name": ref, **text}
    return {"image": ref, **text, "score": entry.score, "confirmed": entry.confirmed,
            "tags": list(entry.tags), "note": entry.note, "model": entry.model}


class _Records:
    """Records written to an open text file as they come: JSON Lines, or a JSON list."""

    def __init__(self, handle: TextIO, *, jsonl: bool) -> None:
        self.handle = handle
        self.jsonl = jsonl
        self.count = 0

    def write(self, record: Record) -> None:
        line = json.dumps(record, ensure_ascii=False)
        if self.jsonl:
            self.handle.write(f"{line}\n")
        else:
            self.handle.write(f"{',' if self.count else '['}\n{line}")
        self.count += 1

    def close(self) -> None:
        if not self.jsonl:
            self.handle.write("\n]\n" if self.count else "[]\n")


# ---------------------------------------------------------------------- images


class _Unreadable(Exception):
    """An image file that cannot be exported: the reason and a few words for the user."""

    def __init__(self, reason: SkipReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _open_source(image: QAImage) -> io.BufferedReader:
    """``image``'s file opened for reading; :class:`_Unreadable` when it is gone (or not a
    regular file, which would block or fail) or cannot be opened."""
    if not image.path.is_file():
        raise _Unreadable(SkipReason.IMAGE_MISSING, "the file is missing (moved or deleted?)")
    try:
        return image.path.open("rb")
    except OSError as exc:
        raise _Unreadable(SkipReason.IMAGE_UNREADABLE,
                          f"cannot be read: {exc.strerror or exc}") from exc


def _data_url(data: bytes) -> str:
    """``data`` (an image file's bytes) as a ``data:<MIME>;base64,…`` URL (RFC 2397), the MIME
    type from the format Pillow reads (``Image.MIME``; an MPO -- a phone's JPEG with extra
    frames -- is ``image/jpeg``). Raises :class:`ValueError` when Pillow reads no image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or ""
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise ValueError("not an image Pillow can read") from exc
    mime = "image/jpeg" if fmt == "MPO" else Image.MIME.get(fmt)
    if mime is None:
        raise ValueError(f"{fmt or 'its'} format has no MIME type")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class _Copies:
    """Images copied into ``folder`` under unique safe names; refs are ``prefix + name``."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder = folder
        self.prefix = prefix
        self.used: set[str] = set()

    def name(self, rel_path: str) -> str:
        """A safe name for ``rel_path``'s file, not given before (case-insensitively)."""
        safe = PurePosixPath(safe_stem(PurePosixPath(rel_path).name))
        stem, suffix = safe.stem, safe.suffix
        name, n = safe.name, 1
        while name.casefold() in self.used:
            n += 1
            name = f"{stem}_{n}{suffix}"
        self.used.add(name.casefold())
        return name

    def __call__(self, image: QAImage) -> str:
        with _open_source(image) as source:
            name = self.name(image.rel_path)
            with (self.folder / name).open("xb") as target:
                shutil.copyfileobj(source, target)
        return self.prefix + name


def _embed(image: QAImage) -> str:
    with _open_source(image) as source:
        data = source.read()
    try:
        return _data_url(data)
    except ValueError as exc:
        raise _Unreadable(SkipReason.IMAGE_UNREADABLE, str(exc)) from exc


# ---------------------------------------------------------------------- staging


#: What the export marker of a question-answer export says it is (``kind``).
_MARKER_KIND = "question-answer export"


def _marker() -> bytes:
    data = {"written_by": f"LoRACap {__version__}", "kind": _MARKER_KIND,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds")}
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def _is_own_or_empty(folder: Path) -> bool:
    """True when ``folder`` may be replaced: absent, empty, or an earlier question-answer
    export (its marker says so; a caption export's folder is not one)."""
    if not os.path.lexists(folder):
        return True
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        marker = json.loads((folder / EXPORT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return not any(folder.iterdir())
    return isinstance(marker, dict) and marker.get("kind") == _MARKER_KIND


class _Staging:
    """The temporary files of one export beside its target, and moving them into place.

    JSON styles: ``.<out>.<random>.loracap-part`` (the records) and, unless images are
    embedded, ``.images.<random>.loracap-part/`` (the copies). ``hf``: one temporary folder
    ``.<out>.<random>.loracap-part/`` holding ``train/``. Checks the target on creation."""

    def __init__(self, style: QAStyle, out: Path, *, base64_images: bool) -> None:
        if not out.parent.is_dir():
            raise ExportError(f"Cannot write {out}: the folder {out.parent} does not exist.")
        self.out = out
        self.folder: Path | None  # the folder the export replaces (images/, or the hf one)
        self.temp_folder: Path | None = None
        if style is QAStyle.HF:
            self._check_folder(out)
            self.folder = out
            self.temp_folder = _temp_name(out)
            self.temp_records = self.temp_folder / HF_SPLIT / HF_METADATA
            self.place: Callable[[QAImage], str] = _Copies(self.temp_records.parent, "")
        else:
            self._check_file(out)
            self.temp_records = _temp_name(out)
            self.folder = None if base64_images else out.parent / IMAGES_FOLDER
            self.place = _embed
            if self.folder is not None:
                self._check_folder(self.folder)
                self.temp_folder = _temp_name(self.folder)
                self.place = _Copies(self.temp_folder, f"{IMAGES_FOLDER}/")
        for target in (out, self.folder):
            if target is not None:
                remove_stale_parts(target)

    @staticmethod
    def _check_file(out: Path) -> None:
        if out.suffix.lower() not in _JSON_SUFFIXES:
            raise InputError(f"{out.name}: a question-answer export is a .json or .jsonl "
                             "file (the hf style writes a folder).")
        if os.path.lexists(out) and (out.is_symlink() or not out.is_file()):
            raise OutputExistsError(f"{out} exists and is not a regular file; an export never "
                                    "replaces it. Choose another file.")

    @staticmethod
    def _check_folder(folder: Path) -> None:
        if not _is_own_or_empty(folder):
            raise OutputExistsError(
                f"{folder} exists and LoRACap did not write it (it may hold your photos); an "
                "export never replaces it. Export to another folder"
                + (", or embed the images (base64)." if folder.name == IMAGES_FOLDER else "."))

    def check_source(self, image: QAImage) -> None:
        """Refuse an image the export would write over or delete with the folder it
        replaces."""
        path = Path(os.path.abspath(image.path))
        if path == self.out or (self.folder is not None and path.is_relative_to(self.folder)):
            raise InputError(f"{image.rel_path} lies in {self.folder or self.out}, which the "
                             "export replaces; export to another folder.")

    def records_file(self) -> TextIO:
        """The temporary records file, opened for writing (UTF-8, ``\\n`` line ends)."""
        if self.temp_folder is not None:
            self.temp_folder.mkdir()
        self.temp_records.parent.mkdir(exist_ok=True)
        return self.temp_records.open("w", encoding="utf-8", newline="\n")

    def commit(self) -> None:
        """Move everything into place: the copies' folder first, the records file last."""
        if self.temp_folder is not None and self.folder is not None:
            (self.temp_folder / EXPORT_MARKER).write_bytes(_marker())
            _move_into_place(self.temp_folder, self.folder, replace_existing=True)
        if self.folder != self.out:
            os.replace(self.temp_records, self.out)

    def discard(self) -> None:
        """Remove the temporary files (the target is untouched)."""
        for temp in (self.temp_records, self.temp_folder):
            if temp is not None and os.path.lexists(temp):
                _discard(temp)
