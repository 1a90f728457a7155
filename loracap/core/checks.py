"""The dataset check: problems in a project's captions and images that weaken a LoRA.

:func:`check_project` looks at every valid image of a project and returns :class:`Finding` s of
these kinds (see :data:`KIND_LABELS`):

``prefix_missing``
    The exported caption would not contain the trigger word at all: the prefix template is
    empty or has no ``{trigger}``, and the caption body does not mention the trigger word.
``prefix_twice``
    The trigger prefix would appear twice: LoRACap stores caption bodies without the prefix and
    adds it on export, so a body that itself starts with the rendered prefix (matched like
    :func:`~loracap.core.trigger.strip_prefix` does), or that contains ``photo of <trigger>``
    while the prefix already carries the trigger word, repeats it.
``prefix_other``
    The caption body starts with another trigger word's prefix (a *foreign prefix*, usually
    from sidecar caption files written for another LoRA): ``photo of other_name a hall`` would
    be exported as ``photo of ide_main_hall photo of other_name a hall``. Found with
    :func:`~loracap.core.trigger.find_foreign_prefix`: the prefix template rendered with
    another trigger-word-shaped token (one with an underscore or a digit, a well-known one such
    as ``TOK`` or ``sks``, or a word followed by "a", "an" or "the"). The window's Checks
    panel offers to strip it (one undo step); nothing here changes the caption.
``empty``
    The image has a caption, but its text is blank.
``duplicate``
    Another image has the same exported caption (compared ignoring letter case and runs of
    whitespace, as the CLIP tokenizer does). One finding per image of the group.
``too_long``
    The exported caption has more than :data:`CLIP_TOKEN_LIMIT` CLIP tokens; the rest is cut off
    by the trainer.
``untrainable``
    The image is too small for Replicate's trainer (ai-toolkit): a short side below
    :data:`~loracap.core.exports.replicate.AI_TOOLKIT_MIN_SHORT_SIDE` pixels gets a 0 × 0
    resolution bucket and aborts the whole run. Exports to such trainers stop on it unless it is
    left out (``--skip-untrainable``).
``small``
    The short side of the image (after EXIF orientation) is below :data:`MIN_SHORT_SIDE` pixels
    (but large enough to train on): the trainer has to upscale it.
``multi_line``
    The caption has several lines (a multi-person caption: one line per person, then the
    scene) and the project exports to a format that writes one line per caption: the export
    joins the lines with ``"; "`` (:func:`~loracap.core.exports.planner.join_lines`), because
    kohya reads only a caption file's first line, OneTrainer picks one line at random and
    ai-toolkit and Replicate's trainer rewrite line breaks. The format is the project's latest
    export's, else Replicate's (the first export most projects make); a format that keeps
    lines (``hf``) gives no such finding.
``near_duplicate``
    The image looks almost the same as another one (a resized or re-encoded copy, a burst
    shot): their difference hashes differ in at most :data:`NEAR_DUPLICATE_DISTANCE` bits.

Near-duplicates use a 64-bit dHash computed here with Pillow alone. The ``imagehash`` package is
deliberately not used: it pulls in SciPy (and NumPy), and the packaged app has a size budget.

Findings are information, not errors: nothing here changes the project. For ``prefix_other``,
:func:`foreign_prefix_edits` computes the stripped captions and :func:`strip_foreign_label` names
the step; the window stores them with :meth:`~loracap.core.project.Project.apply_edits` (one
undo step) when the user asks for it.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loracap.core.errors import InputError
from loracap.core.exports.base import TrainerFormat
from loracap.core.exports.replicate import AI_TOOLKIT_MIN_SHORT_SIDE, REPLICATE
from loracap.core.records import ImageRecord, ProjectSettings
from loracap.core.trigger import (
    TRIGGER_PLACEHOLDER,
    find_foreign_prefix,
    full_caption,
    strip_foreign_prefix,
    strip_prefix,
)

if TYPE_CHECKING:

    from loracap.core.project import Project

log = logging.getLogger(__name__)

CLIP_TOKEN_LIMIT = 75
"""CLIP tokens a caption may have before trainers cut it off.

The CLIP text encoder of the Stable Diffusion family (SD 1.x, SDXL, and the CLIP-L encoder of
SD3/Flux) has a context of 77 tokens, including the ``<start_of_text>`` and ``<end_of_text>``
markers (OpenAI CLIP ``context_length=77``); trainers such as kohya sd-scripts
(``--max_token_length``, default 75) truncate there, leaving 75 tokens for the caption itself.
"""

MIN_SHORT_SIDE = 512
"""Smallest short side, in pixels, of a training image (SD 1.5's native 512 px resolution)."""

NEAR_DUPLICATE_DISTANCE = 6
"""Default largest Hamming distance (of 64 bits) between the dHashes of two near-duplicates."""

KIND_LABELS: dict[str, tuple[str, str]] = {
    "prefix_missing": ("missing trigger word", "missing trigger words"),
    "prefix_twice": ("doubled prefix", "doubled prefixes"),
    "prefix_other": ("foreign prefix", "foreign prefixes"),
    "empty": ("empty caption", "empty captions"),
    "duplicate": ("duplicate", "duplicates"),
    "too_long": ("too long", "too long"),
    "untrainable": ("untrainable image", "untrainable images"),
    "small": ("small image", "small images"),
    "multi_line": ("multi-line caption", "multi-line captions"),
    "near_duplicate": ("near-duplicate", "near-duplicates"),
}
"""Every finding kind, in report order, with its singular and plural label for summaries."""

_MAX_NAMED = 5  # other files named in one message; the rest are counted


@dataclass(frozen=True)
class Finding:
    """One problem of one image. ``path`` is the image's stored (project-relative) path."""

    kind: str
    image_id: int
    path: str
    message: str


# ---------------------------------------------------------------------- CLIP tokens


class _Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


_tokenizer: _Encoder | None = None
_tokenizer_lock = threading.Lock()


def _get_tokenizer() -> _Encoder:
    global _tokenizer
    if _tokenizer is None:
        with _tokenizer_lock:
            if _tokenizer is None:
                # Imported on first use: the Rust extension ships the CLIP vocabulary inside
                # itself, so nothing is downloaded; it is only loaded when a check runs.
                module = importlib.import_module("instant_clip_tokenizer")
                _tokenizer = module.Tokenizer()
    return _tokenizer


def count_clip_tokens(text: str) -> int:
    """Return the number of CLIP BPE tokens of ``text``, without the start and end markers.

    Uses ``instant-clip-tokenizer`` (a Rust port of OpenAI's CLIP tokenizer with the vocabulary
    built in; it lowercases like the original). One tokenizer is created on first use and shared;
    encoding holds no Python state, so any thread may call this.
    """
    return len(_get_tokenizer().encode(text))


# ---------------------------------------------------------------------- perceptual hash


def dhash(path: Path) -> int:
    """Return the 64-bit difference hash of the image at ``path``.

    The image is decoded small (JPEG draft mode, then a thumbnail), turned as its EXIF
    orientation says, converted to grayscale and resized to 9x8 pixels; bit ``i`` is set when a
    pixel is brighter than its right-hand neighbour. Greyscale images deeper than 8 bits
    (16-bit PNGs among them) are first scaled to 8 bits with
    :func:`~loracap.core.imaging.to_8_bit`, so a 16-bit PNG
    and its 8-bit copy get the same hash. Raises ``OSError`` and Pillow's errors for unreadable
    files.
    """
    # Imported on first use, like the tokenizer: the caption editor imports this module at the
    # desktop window's startup, which needs no Pillow.
    from PIL import Image, ImageOps

    from loracap.core.imaging import to_8_bit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as opened:
            opened.draft("L", (64, 64))  # JPEG: decode at 1/8 scale at most; others: no-op
            # convert() keeps the image's EXIF data, so the orientation below still applies.
            im = to_8_bit(opened)
            im.thumbnail((128, 128))
            try:
                oriented = ImageOps.exif_transpose(im)
            except Exception as exc:  # malformed EXIF: hash the pixels as stored
                log.debug("EXIF orientation not applied to %s: %s", path, exc)
                oriented = im
            gray = oriented.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = gray.tobytes()  # mode L: one byte per pixel, row by row
    value = 0
    for row in range(8):
        for col in range(8):
            left = pixels[row * 9 + col]
            right = pixels[row * 9 + col + 1]
            value = (value << 1) | (1 if left > right else 0)
    return value


def near_duplicate_pairs(
    hashes: Sequence[tuple[int, int]], max_distance: int = NEAR_DUPLICATE_DISTANCE
) -> list[tuple[int, int, int]]:
    """Return ``(id_a, id_b, distance)`` for every pair of hashes at most ``max_distance`` apart.

    ``hashes`` holds ``(id, hash)`` pairs. Pigeonhole indexing keeps this fast for tens of
    thousands of images: the 64 bits are cut into ``max_distance + 1`` chunks, and two hashes
    within ``max_distance`` bits agree exactly on at least one chunk, so only hashes sharing a
    chunk value are compared. (Plain pairwise comparison would be fine up to about 5000 images;
    this stays near-linear unless very many images are alike.)
    """
    chunks = min(max_distance + 1, 64)
    bounds = [64 * i // chunks for i in range(chunks + 1)]
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, (_, value) in enumerate(hashes):
        for chunk in range(chunks):
            width = bounds[chunk + 1] - bounds[chunk]
            part = (value >> bounds[chunk]) & ((1 << width) - 1)
            buckets[(chunk, part)].append(index)
    seen: set[tuple[int, int]] = set()
    pairs: list[tuple[int, int, int]] = []
    for members in buckets.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if (a, b) in seen:
                    continue
                seen.add((a, b))
                distance = (hashes[a][1] ^ hashes[b][1]).bit_count()
                if distance <= max_distance:
                    pairs.append((hashes[a][0], hashes[b][0], distance))
    return pairs


# ---------------------------------------------------------------------- the check


def _word_pattern(word: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE)


def _name_others(names: Iterable[str]) -> str:
    listed = sorted(names)
    shown = ", ".join(listed[:_MAX_NAMED])
    if len(listed) > _MAX_NAMED:
        shown += f" and {len(listed) - _MAX_NAMED} more"
    return shown


def _caption_findings(rec: ImageRecord, settings: ProjectSettings) -> list[Finding]:
    """The findings about one image's own caption (all but duplicates)."""
    found: list[Finding] = []

    def add(kind: str, message: str) -> None:
        found.append(Finding(kind, rec.id, rec.path, message))

    if rec.caption is None:
        return found
    body = rec.caption.body
    if not body.strip():
        add("empty", "The caption is blank; the image would be trained without a description.")
        return found
    trigger = settings.trigger
    prefix = settings.prefix
    prefix_has_trigger = TRIGGER_PLACEHOLDER in settings.prefix_template
    if prefix.strip() and strip_prefix(body, settings.prefix_template, trigger) != body:
        add("prefix_twice", f'The caption text already starts with "{prefix.strip()}"; the '
            "export adds the prefix again.")
    elif prefix_has_trigger and re.search(
        r"(?<!\w)photo\s+of\s+" + re.escape(trigger) + r"(?!\w)", body, re.IGNORECASE
    ):
        add("prefix_twice", f'The caption text contains "photo of {trigger}"; the prefix '
            "already carries the trigger word.")
    foreign = find_foreign_prefix(body, settings.prefix_template, trigger)
    if foreign is not None:
        doubled = full_caption(settings.prefix_template, trigger, foreign)
        add("prefix_other", f'The caption starts with "{foreign}": another trigger word\'s '
            f'prefix; the export would read "{doubled} …".')
    if not prefix_has_trigger and not _word_pattern(trigger).search(body):
        add("prefix_missing", f"The exported caption does not contain the trigger word "
            f'"{trigger}" (the caption prefix has no {TRIGGER_PLACEHOLDER}).')
    caption = full_caption(settings.prefix_template, trigger, body)
    tokens = count_clip_tokens(caption)
    if tokens > CLIP_TOKEN_LIMIT:
        add("too_long", f"The caption has {tokens} CLIP tokens; trainers read the first "
            f"{CLIP_TOKEN_LIMIT} and drop the rest.")
    return found


def export_target_format(project: Project) -> TrainerFormat:
    """The format the project's captions are checked for: its latest export's, else
    Replicate's (an export format no longer known counts as Replicate's)."""
    from loracap.core.exports.registry import get_format

    for export in project.exports()[:1]:
        try:
            return get_format(export.format)
        except InputError:
            break
    return REPLICATE


def _multi_line_finding(rec: ImageRecord, fmt: TrainerFormat) -> Finding | None:
    if rec.caption is None or fmt.keeps_lines:
        return None
    lines = [line for line in rec.caption.body.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    return Finding("multi_line", rec.id, rec.path,
                   f"The caption has {len(lines)} lines; the {fmt.title} export joins them "
                   'into one with "; " (its trainer reads one line per caption). Export as '
                   "Hugging Face (hf) to keep the lines.")


def check_project(
    project: Project,
    *,
    near_duplicates: bool = True,
    max_distance: int = NEAR_DUPLICATE_DISTANCE,
    progress: Callable[[int, int], None] | None = None,
    export_format: TrainerFormat | None = None,
) -> list[Finding]:
    """Check every valid image of ``project``; return the findings sorted by path, then kind.

    ``progress(done, total)`` is called after each image. Files that are missing or cannot be
    read are left out of the near-duplicate search (they cause no finding here; ``loracap info``
    reports missing files). With ``near_duplicates=False`` no image file is opened at all.
    ``export_format`` is the format multi-line captions are checked for (default
    :func:`export_target_format`).
    """
    settings = project.settings
    fmt = export_format or export_target_format(project)
    records = [rec for rec in project.images() if rec.valid]
    total = len(records)
    findings: list[Finding] = []
    by_caption: dict[str, list[ImageRecord]] = defaultdict(list)
    hashes: list[tuple[int, int]] = []
    for done, rec in enumerate(records, start=1):
        findings.extend(_caption_findings(rec, settings))
        multi_line = _multi_line_finding(rec, fmt)
        if multi_line is not None:
            findings.append(multi_line)
        if rec.caption is not None and rec.caption.body.strip():
            caption = full_caption(settings.prefix_template, settings.trigger, rec.caption.body)
            by_caption[" ".join(caption.casefold().split())].append(rec)
        if rec.width is not None and rec.height is not None:
            short = min(rec.width, rec.height)
            if short < AI_TOOLKIT_MIN_SHORT_SIDE:
                findings.append(Finding(
                    "untrainable", rec.id, rec.path,
                    f"The image is {rec.width}x{rec.height} px: its short side is below "
                    f"{AI_TOOLKIT_MIN_SHORT_SIDE} px, which {REPLICATE.min_side_reason}. "
                    "Exports stop on it (or leave it out with --skip-untrainable).",
                ))
            elif short < MIN_SHORT_SIDE:
                findings.append(Finding(
                    "small", rec.id, rec.path,
                    f"The image is {rec.width}x{rec.height} px; its short side is below "
                    f"{MIN_SHORT_SIDE} px, so the trainer has to upscale it.",
                ))
        if near_duplicates:
            try:
                hashes.append((rec.id, dhash(rec.abs_path)))
            except Exception as exc:  # missing, unreadable or undecodable: skip, never crash
                log.info("Not hashing %s: %s", rec.path, exc)
        if progress is not None:
            progress(done, total)

    for group in by_caption.values():
        if len(group) < 2:
            continue
        for rec in group:
            others = _name_others(other.path for other in group if other is not rec)
            findings.append(Finding(
                "duplicate", rec.id, rec.path,
                f"Same caption as {others}; the LoRA cannot tell these images apart by text.",
            ))

    if near_duplicates:
        paths = {rec.id: rec.path for rec in records}
        alike: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for a, b, distance in near_duplicate_pairs(hashes, max_distance):
            alike[a].append((paths[b], distance))
            alike[b].append((paths[a], distance))
        for image_id, others_found in alike.items():
            others_found.sort()
            listed = _name_others(f"{path} ({distance}/64 bits differ)"
                                  for path, distance in others_found)
            findings.append(Finding(
                "near_duplicate", image_id, paths[image_id],
                f"Looks almost the same as {listed}; near-copies make the LoRA overfit.",
            ))

    findings.sort(key=lambda f: (f.path, f.kind, f.message))
    return findings


def summary_text(findings: Sequence[Finding], images: int) -> str:
    """One line for people: ``"3 findings in 32 images: 2 too long, 1 duplicate."``."""
    noun = "image" if images == 1 else "images"
    if not findings:
        return f"No problems found in {images} {noun}."
    counts: dict[str, int] = defaultdict(int)
    for finding in findings:
        counts[finding.kind] += 1
    parts = []
    for kind, (one, many) in KIND_LABELS.items():
        if counts.get(kind):
            parts.append(f"{counts[kind]} {one if counts[kind] == 1 else many}")
    parts.extend(f"{n} {kind}" for kind, n in counts.items() if kind not in KIND_LABELS)
    word = "finding" if len(findings) == 1 else "findings"
    return f"{len(findings)} {word} in {images} {noun}: {', '.join(parts)}."


# ---------------------------------------------------------------------- the prefix_other fix


def foreign_prefix_edits(project: Project, image_ids: Iterable[int]) -> dict[int, str]:
    """The new caption bodies that strip another trigger word's prefix from these images.

    Returns ``{image id: body}`` for each valid image whose current caption body starts with a
    foreign prefix (:func:`~loracap.core.trigger.strip_foreign_prefix` with the project's
    template and trigger word), ready for :meth:`~loracap.core.project.Project.apply_edits`.
    Captions are read now, not taken from the findings: an image whose caption has no foreign
    prefix any more is left out, and so is a caption that holds nothing but the prefix
    (stripping would blank it). Unknown ids are ignored.
    """
    settings = project.settings
    bodies: dict[int, str] = {}
    for rec in project.images_by_id(image_ids):
        if not rec.valid or rec.caption is None:
            continue
        body = strip_foreign_prefix(rec.caption.body, settings.prefix_template, settings.trigger)
        if body and body != rec.caption.body:
            bodies[rec.id] = body
    return bodies


def strip_foreign_label(count: int) -> str:
    """The undo step's label: ``"Strip another trigger word's prefix from 3 captions"``."""
    noun = "caption" if count == 1 else "captions"
    return f"Strip another trigger word's prefix from {count} {noun}"
