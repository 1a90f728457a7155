"""The WD14 tagger's tag list and tag choice: reading ``selected_tags.csv``, the settings that
choose tags (thresholds, MCut, rating, exclusions) and the choice itself.

Facts this module relies on (SmilingWolf's model cards and his ``wd-tagger`` Space on Hugging
Face, summed up in PRODUCT.md):

* ``selected_tags.csv`` has the columns ``tag_id,name,category,count``; row *i* names output
  *i*. Category 9 is a rating (general, sensitive, questionable, explicit), 0 a general tag,
  4 a character. Names use underscores for spaces; kaomoji (``^_^``) are written with them.
* The suggested thresholds are 0.35 for general tags and 0.85 for characters; a tag is kept
  when its score is *above* the threshold.
* MCut (Largeron et al., "MCut: a thresholding strategy for multi-label classification",
  2012) puts the threshold in the middle of the largest gap between the sorted scores; for
  characters the Space keeps a floor of 0.15.

Plain Python: no optional dependency is needed here.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loracap.core.backends.wd14_models import HF_OWNER, MODEL_FILE, TAGS_FILE, _detail
from loracap.core.errors import InputError

logger = logging.getLogger(__name__)

#: Category numbers of ``selected_tags.csv`` (SmilingWolf's model cards).
RATING, GENERAL, CHARACTER = 9, 0, 4

#: Suggested thresholds of the v3 model cards (scores 0-1; kept when above).
DEFAULT_GENERAL_THRESHOLD = 0.35
DEFAULT_CHARACTER_THRESHOLD = 0.85
#: Lowest character threshold MCut may give (SmilingWolf's wd-tagger Space).
MCUT_CHARACTER_FLOOR = 0.15

#: Tag names kept with their underscores: kaomoji, whose underscore is a mouth or a nose, not
#: a space. The list of SmilingWolf's wd-tagger Space, plus ``(^_^)``.
KAOMOJI: frozenset[str] = frozenset({
    "0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3",
    "6_9", ">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||", "(^_^)",
})

_OPTION_KEYS = frozenset({
    "general_threshold", "character_threshold", "mcut", "include_rating", "exclude",
    "model",  # the model last used with WD14 in the project (the registry's, not a setting)
})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


# --- tags -------------------------------------------------------------------------------------


def display_name(name: str) -> str:
    """A CSV tag name as written in captions: underscores become spaces, except in the
    :data:`KAOMOJI` (``long_hair`` -> ``long hair``, ``^_^`` stays)."""
    return name if name in KAOMOJI else name.replace("_", " ")


@dataclass(frozen=True)
class Tag:
    """One row of ``selected_tags.csv``: ``name`` as in the file, ``category`` (:data:`RATING`,
    :data:`GENERAL`, :data:`CHARACTER`; other numbers are never kept), ``display`` as written in
    captions (:func:`display_name`)."""

    name: str
    category: int
    display: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "display", display_name(self.name))


def read_tags(path: Path) -> list[Tag]:
    """The tags of a ``selected_tags.csv`` at ``path``, in file order (= the model's outputs).

    Reads the ``name`` and ``category`` columns (``tag_id`` and ``count`` are not needed); a
    UTF-8 byte-order mark is allowed. Raises :class:`InputError` naming the WD14 backend when
    the file is missing, not UTF-8 CSV, lacks those columns, has a category that is not a
    whole number, or lists no tag.
    """
    path = Path(path)
    where = path.parent
    try:
        with open(path, encoding="utf-8-sig", newline="") as fp:
            reader = csv.DictReader(fp)
            columns = {str(c).strip() for c in reader.fieldnames or ()}
            missing = {"name", "category"} - columns
            if missing:
                raise _TagsError(f"it has no {' or '.join(sorted(missing))} column")
            tags: list[Tag] = []
            for line, row in enumerate(reader, start=2):
                name = (row.get("name") or "").strip()
                category = (row.get("category") or "").strip()
                if not name:
                    raise _TagsError(f"line {line} has no tag name")
                try:
                    tags.append(Tag(name, int(category)))
                except ValueError:
                    raise _TagsError(
                        f"line {line} has the category '{category[:20]}', not a number"
                    ) from None
    except FileNotFoundError:
        raise InputError(
            f'The WD14 backend needs {TAGS_FILE} beside {MODEL_FILE} in "{where}": copy it '
            f"from the model's Hugging Face page (https://huggingface.co/{HF_OWNER}/<model>) "
            "or choose the folder that holds both files."
        ) from None
    except _TagsError as exc:
        raise _unreadable_tags(path, str(exc)) from None
    except UnicodeDecodeError:
        raise _unreadable_tags(path, "it is not UTF-8 text") from None
    except (csv.Error, OSError) as exc:
        raise _unreadable_tags(path, _detail(exc)) from None
    if not tags:
        raise _unreadable_tags(path, "it lists no tag")
    return tags


class _TagsError(Exception):
    """Internal: what is wrong with a selected_tags.csv."""


def _unreadable_tags(path: Path, reason: str) -> InputError:
    return InputError(
        f'The WD14 backend cannot read "{path}": {reason}. It must be the {TAGS_FILE} of a WD14 '
        "tagger (columns tag_id,name,category,count); copy it again from the model's page."
    )


# --- settings and tag selection ---------------------------------------------------------------


@dataclass(frozen=True)
class TaggerSettings:
    """How tags are chosen from a tagger's scores.

    ``general_threshold`` / ``character_threshold`` -- scores 0-1; a general tag or a character
    is kept when its score is above it (defaults 0.35 and 0.85, the model cards' suggestion).
    ``mcut`` -- choose both thresholds by MCut instead (:func:`mcut_threshold`; the character
    threshold never below :data:`MCUT_CHARACTER_FLOOR`); the fixed thresholds are then unused.
    ``include_rating`` -- begin the tags with the most likely rating (``general``,
    ``sensitive``, ``questionable``, ``explicit``); left out by default, as a rating describes
    the image's content level rather than something in it. ``exclude`` -- tags never written,
    compared without regard to case and with underscores as spaces (``Long_Hair`` leaves out
    ``long hair``).

    Raises :class:`InputError` for a threshold outside 0-1.
    """

    general_threshold: float = DEFAULT_GENERAL_THRESHOLD
    character_threshold: float = DEFAULT_CHARACTER_THRESHOLD
    mcut: bool = False
    include_rating: bool = False
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in ("general_threshold", "character_threshold"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and 0.0 <= value <= 1.0):
                raise InputError(f"The WD14 option {key} must be a number from 0 to 1, "
                                 f"not {value!r}.")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TaggerSettings:
        """Settings from a backend's stored options (:attr:`BackendConfig.options`), keys as the
        fields' names. Thresholds may be numbers or numeric text; ``mcut`` and
        ``include_rating`` booleans or ``"true"``/``"false"``/``"1"``/``"0"``/``"yes"``/
        ``"no"``; ``exclude`` a list of tags or one text of comma-separated tags. Missing keys
        take the defaults; unknown keys are ignored (a newer LoRACap's) and logged.

        Raises :class:`InputError` naming the option for a value of the wrong kind or out of
        range.
        """
        unknown = sorted(set(options) - _OPTION_KEYS)
        if unknown:
            logger.info("WD14: ignoring unknown options %s", ", ".join(map(str, unknown)))
        values: dict[str, Any] = {}
        for key in ("general_threshold", "character_threshold"):
            if key in options and options[key] is not None:
                values[key] = _threshold(key, options[key])
        for key in ("mcut", "include_rating"):
            if key in options and options[key] is not None:
                values[key] = _flag(key, options[key])
        if options.get("exclude") is not None:
            values["exclude"] = _tag_list(options["exclude"])
        return cls(**values)


def _threshold(key: str, value: Any) -> float:
    problem = InputError(f"The WD14 option {key} must be a number from 0 to 1, not {value!r}.")
    if isinstance(value, bool):
        raise problem
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise problem from None
    if not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise problem
    return float(value)


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InputError(f"The WD14 option {key} must be true or false, not {value!r}.")


def _tag_list(value: Any) -> tuple[str, ...]:
    items: list[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise InputError("The WD14 option exclude must be a list of tags, not "
                         f"{type(value).__name__}.")
    if not all(isinstance(item, str) for item in items):
        raise InputError("The WD14 option exclude must list tags as text.")
    return tuple(item.strip() for item in items if item.strip())


def _match_key(tag: str) -> str:
    """How excluded tags are compared: underscores as spaces, case folded, spaces collapsed."""
    return " ".join(tag.replace("_", " ").casefold().split())


def mcut_threshold(scores: Sequence[float]) -> float:
    """The MCut threshold of ``scores`` (0-1): the middle of the largest gap between two
    neighbours once sorted (Largeron et al. 2012; SmilingWolf's wd-tagger Space). Raises
    ValueError for fewer than two scores (there is no gap)."""
    ordered = sorted((float(s) for s in scores), reverse=True)
    if len(ordered) < 2:
        raise ValueError("MCut needs at least two scores")
    gaps = [ordered[i] - ordered[i + 1] for i in range(len(ordered) - 1)]
    cut = max(range(len(gaps)), key=gaps.__getitem__)  # the first of equal gaps
    return (ordered[cut] + ordered[cut + 1]) / 2.0


def select_tags(tags: Sequence[Tag], scores: Sequence[float], settings: TaggerSettings
                ) -> list[tuple[str, float]]:
    """The tags to write for one image, as ``(display name, score)`` pairs.

    ``scores`` are the model's outputs for one image, one per tag (same order). General tags
    and characters above their thresholds (``settings``; MCut if asked) are kept, excluded tags
    dropped, and the rest ordered by score, highest first (ties in file order). With
    ``include_rating`` the most likely rating comes first, whatever its score. Raises
    ValueError when the two lengths differ.
    """
    if len(scores) != len(tags):
        raise ValueError(f"{len(scores)} scores for {len(tags)} tags")
    general = [(tag, float(s)) for tag, s in zip(tags, scores, strict=True)
               if tag.category == GENERAL]
    characters = [(tag, float(s)) for tag, s in zip(tags, scores, strict=True)
                  if tag.category == CHARACTER]
    general_threshold = settings.general_threshold
    character_threshold = settings.character_threshold
    if settings.mcut:
        if len(general) >= 2:
            general_threshold = mcut_threshold([s for _, s in general])
        if len(characters) >= 2:
            character_threshold = max(MCUT_CHARACTER_FLOOR,
                                      mcut_threshold([s for _, s in characters]))
    excluded = {_match_key(tag) for tag in settings.exclude}
    kept = [(tag, s) for tag, s in general if s > general_threshold]
    kept += [(tag, s) for tag, s in characters if s > character_threshold]
    kept = [(tag, s) for tag, s in kept if _match_key(tag.display) not in excluded]
    kept.sort(key=lambda pair: -pair[1])
    chosen = [(tag.display, s) for tag, s in kept]
    if settings.include_rating:
        ratings = [(tag, float(s)) for tag, s in zip(tags, scores, strict=True)
                   if tag.category == RATING]
        if ratings:
            best, score = max(ratings, key=lambda pair: pair[1])
            if _match_key(best.display) not in excluded:
                chosen.insert(0, (best.display, score))
    return chosen


def tags_text(tags: Sequence[tuple[str, float]]) -> str:
    """Tags with scores as text, one ``tag<TAB>score`` line each (scores to 4 decimals): the
    ``raw`` answer of a WD14 caption."""
    return "\n".join(f"{name}\t{score:.4f}" for name, score in tags)
